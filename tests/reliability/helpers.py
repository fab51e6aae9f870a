"""Shared helpers of the reliability suite: process sampling, HTTP probes, tiny load generators."""

from __future__ import annotations

import os
import random
import socket
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import dns.message
import dns.rcode

FUZZ_EXAMPLES = int(os.environ.get("KDNS_FUZZ_EXAMPLES", "300"))


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET, or None when the server does not answer in time."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


def wait_status(url: str, status: int, timeout: float = 15.0) -> float:
    """Poll until ``url`` answers ``status``; returns the seconds it took."""
    start = time.monotonic()
    got = None
    while time.monotonic() - start < timeout:
        got = http_status(url, timeout=1.0)
        if got == status:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{url} is {got}, wanted {status}")


def metric_value(port: int, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` whose label text contains ``labels``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def query_wire(name: str, rdtype: str = "A", qid: int | None = None) -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = random.randrange(65536) if qid is None else qid
    return q.to_wire()


@dataclass
class LoadResult:
    sent: int = 0
    answered: int = 0
    timeouts: int = 0
    rcodes: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(len(s) * q))]

    @property
    def failures(self) -> int:
        return self.timeouts + sum(n for rc, n in self.rcodes.items() if rc != dns.rcode.NOERROR)


def udp_probe(port: int, names: list[str], *, qps: float, duration: float,
              host: str = "127.0.0.1", timeout: float = 2.0) -> LoadResult:
    """Paced queries over one UDP socket, each awaited (at most ``timeout``) before the next
    slot; rcodes and latencies recorded. For canaries and moderate rates."""
    res = LoadResult()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < duration:
            slot = start + i / qps
            now = time.monotonic()
            if slot > now:
                time.sleep(slot - now)
            name = names[i % len(names)]
            i += 1
            qid = random.randrange(65536)
            s.send(query_wire(name, qid=qid))
            res.sent += 1
            t0 = time.monotonic()
            s.settimeout(timeout)
            while True:
                try:
                    data = s.recv(65535)
                except TimeoutError:
                    res.timeouts += 1
                    break
                if len(data) >= 12 and struct.unpack_from("!H", data)[0] == qid:
                    res.latencies.append(time.monotonic() - t0)
                    rc = data[3] & 0xF
                    res.rcodes[rc] = res.rcodes.get(rc, 0) + 1
                    break
    return res


class pinned:
    """The plan's CPU layout while measuring latency (section 9.1): kdns on core 0, this test
    process (the load generator) on core 1; restored afterwards. No-op on one core."""

    def __init__(self, kdns_pid: int) -> None:
        self.pid = kdns_pid
        self.saved: tuple[set[int], set[int]] | None = None

    def __enter__(self) -> pinned:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            self.saved = (os.sched_getaffinity(self.pid), os.sched_getaffinity(0))
            os.sched_setaffinity(self.pid, {cpus[0]})
            os.sched_setaffinity(0, {cpus[1]})
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            try:
                os.sched_setaffinity(self.pid, self.saved[0])
            except ProcessLookupError:
                pass
            os.sched_setaffinity(0, self.saved[1])


def histogram_quantile_bound(port: int, name: str, labels: str, bound: float) -> float:
    """Fraction of a histogram's observations (samples whose labels contain ``labels``) that
    are <= ``bound`` (an exact bucket edge)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    below = total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "_bucket{") or labels not in line:
            continue
        le = line.split('le="', 1)[1].split('"', 1)[0]
        value = float(line.rsplit(" ", 1)[1])
        if le == "+Inf":
            total += value
        elif float(le) == bound:
            below += value
    return below / total if total else float("nan")
