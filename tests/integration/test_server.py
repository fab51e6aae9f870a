"""The real kdns process: CLI, Corefile errors, signals, reload, listeners."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.kdnsproc import dig, free_port, run_kdns


def kdns_cli(*args: str, cwd: Path | None = None, timeout: float = 20) -> (
        subprocess.CompletedProcess[str]):
    return subprocess.run([sys.executable, "-m", "kdns", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_version_and_plugins() -> None:
    out = kdns_cli("-version")
    assert out.returncode == 0 and out.stdout.startswith("kdns-")
    out = kdns_cli("-plugins")
    assert out.returncode == 0 and "dns.whoami" in out.stdout


def test_extra_arguments_and_unknown_flags() -> None:
    out = kdns_cli("-conf", "x", "extra")
    assert out.returncode == 1 and "extra command line arguments: ['extra']" in out.stderr
    out = kdns_cli("-nosuchflag")
    assert out.returncode == 2


@pytest.mark.parametrize("corefile,msg", [
    (". {\n  whoami\n  foo\n}\n", "Corefile:3 - Error during parsing: Unknown directive 'foo'"),
    (". {\n  whoami\n  whoami\n}\n",
     "plugin/whoami: Corefile:3 - Error during parsing: this plugin can only be used once"),
    (". {\n  dnssec\n}\n", "plugin/dnssec: Corefile:2 - Error during parsing: plugin 'dnssec' "
     "is not implemented in kdns"),
    (". {\n  whoami\n}\n. {\n  whoami\n}\n", "cannot serve dns://.:{port} - it is already defined"),
    (". {\n  whoami\n", "Corefile:2 - Error during parsing: Unexpected EOF"),
])
def test_corefile_errors_exit_1_with_file_line(tmp_path: Path, corefile: str, msg: str) -> None:
    port = free_port()
    (tmp_path / "Corefile").write_text(corefile)
    out = kdns_cli("-conf", "Corefile", "-dns.port", str(port), cwd=tmp_path)
    assert out.returncode == 1
    assert msg.replace("{port}", str(port)) in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_missing_conf_file(tmp_path: Path) -> None:
    out = kdns_cli("-conf", str(tmp_path / "nope"))
    assert out.returncode == 1 and "nope" in out.stderr and "Traceback" not in out.stderr


def test_default_corefile_is_whoami_and_log(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kdns", "-dns.port", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        out = ""
        while time.monotonic() < deadline and "status: NOERROR" not in out:
            out = dig(port, "example.org")
            time.sleep(0.1)
        assert "status: NOERROR" in out and "127.0.0.1" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert f".:{port}" in stdout


def test_sigterm_exits_zero_and_removes_pidfile(tmp_path: Path) -> None:
    pidfile = tmp_path / "kdns.pid"
    with run_kdns(".:{port} {\n whoami\n}\n", extra_args=("-pidfile", str(pidfile))) as k:
        assert pidfile.read_text().strip() == str(k.proc.pid)
        assert k.query("a.test").rcode() == 0
        code = k.stop()
    assert code == 0
    assert not pidfile.exists()
    assert "[INFO] SIGTERM: Shutting down servers then terminating" in k.output


def test_quiet_suppresses_banner() -> None:
    with run_kdns(".:{port} {\n whoami\n}\n", extra_args=("-quiet",)) as k:
        k.query("a.test")
    assert "kdns-" not in k.output


def test_sigusr1_reload_and_broken_reload_keeps_old() -> None:
    with run_kdns("example.org:{port} {\n whoami\n}\n") as k:
        assert k.query("a.example.org").rcode() == dns.rcode.NOERROR
        assert k.query("a.example.net").rcode() == dns.rcode.REFUSED
        k.corefile_path.write_text(f"example.net:{k.port} {{\n whoami\n}}\n")
        k.signal(signal.SIGUSR1)
        k.wait_for_line("Reloading complete")
        assert k.query("a.example.net").rcode() == dns.rcode.NOERROR
        assert k.query("a.example.org").rcode() == dns.rcode.REFUSED
        k.corefile_path.write_text(f"example.org:{k.port} {{\n whoami\n bogus\n}}\n")
        k.signal(signal.SIGUSR1)
        k.wait_for_line("Restart failed")
        assert "Unknown directive 'bogus'" in k.output
        assert k.query("a.example.net").rcode() == dns.rcode.NOERROR
        k.signal(signal.SIGHUP)  # ignored, as CoreDNS does
        time.sleep(0.2)
        assert k.proc.poll() is None


def test_empty_block_answers_refused() -> None:
    with run_kdns("example.org:{port} {\n}\n.:{port} {\n whoami\n}\n") as k:
        assert k.query("a.example.org").rcode() == dns.rcode.REFUSED
        assert k.query("a.example.com").rcode() == dns.rcode.NOERROR


def test_tcp_pipelining_answers_every_query() -> None:
    with run_kdns(".:{port} {\n whoami\n}\n") as k:
        queries = [dns.message.make_query(f"q{i}.test", "A", id=1000 + i) for i in range(20)]
        payload = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
        with socket.create_connection(("127.0.0.1", k.port), timeout=5) as s:
            s.sendall(payload)
            ids = set()
            buf = b""
            while len(ids) < 20:
                chunk = s.recv(65535)
                assert chunk, "connection closed early"
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    ids.add(dns.message.from_wire(buf[2:2 + n]).id)
                    buf = buf[2 + n:]
        assert ids == {1000 + i for i in range(20)}


def test_python_dash_m_and_console_script_agree() -> None:
    out = subprocess.run(["kdns", "-version"], capture_output=True, text=True, timeout=20,
                         env=dict(os.environ))
    assert out.returncode == 0 and out.stdout == kdns_cli("-version").stdout


def test_reload_of_undecodable_corefile_keeps_serving_and_reloads_later() -> None:
    with run_kdns("example.org:{port} {\n whoami\n}\n") as k:
        k.corefile_path.write_bytes(b"example.org:1 {\n \xff\xfe\n}\n")
        k.signal(signal.SIGUSR1)
        k.wait_for_line("Restart failed")
        assert k.query("a.example.org").rcode() == dns.rcode.NOERROR
        k.corefile_path.write_text(f"example.net:{k.port} {{\n whoami\n}}\n")
        k.signal(signal.SIGUSR1)
        k.wait_for_line("Reloading complete")
        assert k.query("a.example.net").rcode() == dns.rcode.NOERROR
