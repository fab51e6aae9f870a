"""Start the real ``kdns`` program for a test and query it over real sockets on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (best effort, as any test suite does)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class KdnsProcess:
    """A running ``kdns -conf FILE`` with its output collected line by line."""

    def __init__(self, corefile: str, port: int, workdir: Path,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.port = port
        self.workdir = workdir
        self.corefile_path = workdir / "Corefile"
        self.corefile_path.write_text(corefile)
        self.lines: list[str] = []
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kdns", "-conf", str(self.corefile_path),
             "-dns.port", str(port), *extra_args],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=full_env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and text not in self.output:
                break
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not seen in kdns output:\n{self.output}")

    def wait_serving(self, timeout: float = 15.0) -> None:
        """Wait until a TCP connect to the DNS port succeeds (the listeners are bound)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kdns exited with {self.proc.returncode}:\n{self.output}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"kdns did not start serving:\n{self.output}")

    def query(self, name: str, rdtype: str | int = "A", *, tcp: bool = False,
              timeout: float = 2.0, **make_kw: object) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **make_kw)  # type: ignore[arg-type]
        return self.send(q, tcp=tcp, timeout=timeout)

    def send(self, q: dns.message.Message, *, tcp: bool = False,
             timeout: float = 2.0) -> dns.message.Message:
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout,
                             ignore_unexpected=True)

    def send_raw_udp(self, data: bytes, timeout: float = 1.0) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(data, ("127.0.0.1", self.port))
            try:
                return s.recv(65535)
            except TimeoutError:
                return None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)
        return self.proc.returncode


@contextmanager
def run_kdns(corefile: str, *, port: int | None = None, extra_args: tuple[str, ...] = (),
             env: dict[str, str] | None = None, wait: bool = True,
             workdir: Path | None = None) -> Iterator[KdnsProcess]:
    """Run kdns with ``corefile``; ``{port}`` in the text is replaced by the DNS port."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="kdns-test-") as tmp:
        wd = workdir or Path(tmp)
        k = KdnsProcess(corefile.replace("{port}", str(port)), port, wd, extra_args, env)
        try:
            if wait:
                k.wait_serving()
            yield k
        finally:
            k.stop()


def dig(port: int, *args: str, timeout: float = 10.0) -> str:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
                         capture_output=True, text=True, timeout=timeout)
    return out.stdout


def rrtext(msg: dns.message.Message, section: str = "answer") -> list[str]:
    """Records of a section as sorted text lines, for table-driven assertions."""
    rrsets = getattr(msg, section)
    lines = []
    for rrset in rrsets:
        for rd in rrset:
            lines.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd}")
    return sorted(lines)
