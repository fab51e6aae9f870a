"""A kube-proxy-like service VIP in a network namespace, in front of real kdns processes
(K8, K12).

``netns`` (fixture; import ``netns_fixture``) makes ``krel-<random>`` with lo up and deletes it
afterwards (needs root).
``start_backend`` runs kdns inside it on 127.0.0.1:<port>; ``KubeProxy`` keeps an nftables
``nat output`` DNAT rule from VIP:53 (UDP and TCP) to the ready backends (new flows split at
random, like kube-proxy's ``statistic``) by polling every backend's /ready every 100 ms, and
deletes a removed backend's UDP conntrack entries (kube-proxy's ``conntrack -D -p udp
--orig-dst VIP --dst-nat BACKEND``, plus ``--reply-port-src`` because the backends share
127.0.0.1: kdns answers UDP from a wildcard socket, so the reply's source address is the
kernel's choice - 127.0.0.1 on lo - and distinct 127.x backend addresses would not match the
DNAT's reply tuple). ``enter_netns`` moves a thread into the namespace. Each backend answers
``who.test`` with its own address, which shows who answered when.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.reliability.helpers import http_status

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "plugins" / "kubernetes" / "examples" / "demo-cluster.yaml"
VIP = "127.0.0.10"
COREFILE = """\
.:%(port)d {
    health 127.0.0.1:%(health)d {
        lameduck %(lameduck)ss
    }
    ready 127.0.0.1:%(ready)d
    hosts {
        %(ip)s who.test
        fallthrough
    }
    kubernetes cluster.local {
        manifests %(manifest)s
    }
}
"""

def sh(ns: str, *cmd: str, input: str | None = None) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, *cmd], input=input, capture_output=True,
                         text=True, timeout=20)
    if out.returncode:
        raise RuntimeError(f"{cmd}: {out.stderr.strip()}")
    return out.stdout


@pytest.fixture(name="netns")
def netns_fixture() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespace, nftables, conntrack)")
    for tool in ("ip", "nft", "conntrack"):
        assert shutil.which(tool), f"{tool} is required (apt: iproute2 nftables conntrack)"
    name = f"krel-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        sh(name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def enter_netns(ns: str) -> None:
    """Move the calling thread into ``ns`` (setns affects only this thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread inside ``ns`` (setns changes only the calling thread)."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        enter_netns(ns)
        try:
            out.append(fn())
        except BaseException as e:  # re-raised in the caller
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


@dataclass
class Backend:
    ip: str  # its who.test answer
    port: int
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port + 1000}/ready"


def start_backend(ns: str, ip: str, port: int, workdir: Path, lameduck: float = 5.0) -> Backend:
    """kdns in ``ns`` on 127.0.0.1:``port`` (/ready on port+1000, /health on port+2000),
    answering ``who.test`` with ``ip`` and serving the demo cluster."""
    conf = workdir / f"Corefile-{ip}"
    conf.write_text(COREFILE % {"port": port, "ip": ip, "lameduck": int(lameduck),
                                "manifest": MANIFEST, "health": port + 2000,
                                "ready": port + 1000})
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "kdns", "-conf", str(conf)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    b = Backend(ip, port, proc)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            b.log.append(line.rstrip())

    threading.Thread(target=read, daemon=True).start()
    return b


class KubeProxy:
    """Polls /ready of every backend (from inside the netns) and keeps the VIP's DNAT rule and
    conntrack in line with the ready set."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.backends: list[Backend] = []
        self.ready: tuple[str, ...] = ()
        self.events: list[tuple[float, str]] = []
        self.flushes: list[tuple[float, float]] = []  # (start, end) of conntrack deletions
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        sh(ns, "nft", "-f", "-", input=(
            "table ip krel {\n"
            "  chain out { type nat hook output priority -100; }\n"
            "}\n"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _apply(self, ready: tuple[str, ...]) -> None:
        by_ip = {b.ip: b for b in self.backends}
        rules = "flush chain ip krel out\n"
        if ready:
            targets = ", ".join(f"{i} : 127.0.0.1 . {by_ip[ip].port}"
                                for i, ip in enumerate(ready))
            for proto in ("udp", "tcp"):
                rules += (f"add rule ip krel out ip daddr {VIP} {proto} dport 53 dnat ip to "
                          f"numgen random mod {len(ready)} map {{ {targets} }}\n")
        sh(self.ns, "nft", "-f", "-", input=rules)
        for gone in set(self.ready) - set(ready):
            t_flush = time.monotonic()
            subprocess.run(["ip", "netns", "exec", self.ns, "conntrack", "-D", "-p", "udp",
                            "--orig-dst", VIP, "--dst-nat", "127.0.0.1",
                            "--reply-port-src", str(by_ip[gone].port)], capture_output=True)
            self.flushes.append((t_flush, time.monotonic()))
        self.events.append((round(time.monotonic() - self.t0, 3), f"ready={list(ready)}"))
        self.ready = ready

    def _run(self) -> None:
        enter_netns(self.ns)
        while not self._stop.is_set():
            ready = tuple(b.ip for b in list(self.backends) if b.proc.poll() is None
                          and http_status(b.ready_url(), timeout=0.5) == 200)
            if ready != self.ready:
                self._apply(ready)
            time.sleep(0.1)


def stop_backends(*backends: Backend | None) -> None:
    for b in backends:
        if b is not None and b.proc.poll() is None:
            b.proc.send_signal(signal.SIGTERM)
            try:
                b.proc.wait(10)
            except subprocess.TimeoutExpired:
                b.proc.kill()


def wait_ready_set(proxy: KubeProxy, ips: set[str], timeout: float = 20.0) -> None:
    """Until the emulator routes the VIP to exactly ``ips``."""
    deadline = time.monotonic() + timeout
    while set(proxy.ready) != ips:
        assert time.monotonic() < deadline, [b.log for b in proxy.backends]
        time.sleep(0.05)
