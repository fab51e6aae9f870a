"""K12: glibc-style parallel A+AAAA from one socket through a DNAT service VIP, and use-vc
(TCP-only) clients.

Two kdns behind the VIP 127.0.0.10:53 in a ``krel-*`` netns (tests/reliability/vip.py). glibc's
getaddrinfo sends the A and the AAAA query back to back from one fresh UDP socket (same
5-tuple): through DNAT the second packet can race the first one's conntrack entry, and the
loser is dropped by the kernel (insert_failed / drop in ``conntrack -S``), which the client sees
as a 5 s timeout (kubernetes#56903). Such drops are counted and reported separately, not blamed
on kdns. 1,000 pairs for ``web.demo.svc.cluster.local`` (dual-stack: 10.96.0.20, fd00:96::20),
250 pairs/s from one thread, up to ~10 pairs in flight; then 500 use-vc resolutions, each a new
TCP connection carrying both queries at once, as glibc's ``options use-vc`` does.
"""

from __future__ import annotations

import random
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.reliability.vip import (
    VIP,
    KubeProxy,
    in_netns,
    netns_fixture,  # noqa: F401 (the netns fixture)
    sh,
    start_backend,
    stop_backends,
    wait_ready_set,
)

pytestmark = [pytest.mark.root]

NAME = "web.demo.svc.cluster.local."
EXPECTED = {"A": "10.96.0.20", "AAAA": "fd00:96::20"}
PAIRS = 1000
PAIR_RATE = 250.0
TCP_CLIENTS = 500
TIMEOUT = 2.0
LATENCY_BOUND = 0.010
CT_KEYS = ("insert_failed", "drop", "early_drop", "clash_resolve")

def conntrack_stats(ns: str) -> dict[str, int]:
    totals = dict.fromkeys(CT_KEYS, 0)
    for line in sh(ns, "conntrack", "-S").splitlines():
        for item in line.split():
            key, _, value = item.partition("=")
            if key in totals:
                totals[key] += int(value)
    return totals


def query(rdtype: str, qid: int) -> bytes:
    q = dns.message.make_query(NAME, rdtype)
    q.id = qid
    return q.to_wire()


def check(data: bytes, rdtype: str) -> str | None:
    """None when ``data`` is the right answer, else what is wrong with it."""
    r = dns.message.from_wire(data)
    got = [rd.to_text() for rr in r.answer for rd in rr]
    if r.rcode() != dns.rcode.NOERROR or got != [EXPECTED[rdtype]]:
        return f"{rdtype}: {dns.rcode.to_text(r.rcode())} {got}"
    return None


@dataclass
class Pair:
    sock: socket.socket
    sent: float
    ids: dict[int, str]  # query ID -> qtype still awaited
    latency: dict[str, float] = field(default_factory=dict)


@dataclass
class UdpResult:
    pairs: list[Pair] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def latencies(self) -> list[float]:
        return sorted(x for p in self.pairs for x in p.latency.values())

    def incomplete(self) -> list[Pair]:
        return [p for p in self.pairs if len(p.latency) < 2]


def udp_pairs(n: int, rate: float) -> UdpResult:
    """``n`` A+AAAA pairs, each from a fresh connected UDP socket, paced at ``rate`` pairs/s."""
    res = UdpResult()
    sel = selectors.DefaultSelector()
    open_pairs: dict[int, Pair] = {}
    start = time.monotonic()
    sent = 0
    while sent < n or open_pairs:
        now = time.monotonic()
        while sent < n and start + sent / rate <= now:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((VIP, 53))
            s.setblocking(False)
            a, aaaa = random.sample(range(65536), 2)
            p = Pair(s, time.monotonic(), {a: "A", aaaa: "AAAA"})
            s.send(query("A", a))  # back to back, as glibc's sendmmsg
            s.send(query("AAAA", aaaa))
            sel.register(s, selectors.EVENT_READ, p)
            open_pairs[s.fileno()] = p
            res.pairs.append(p)
            sent += 1
        for key, _ in sel.select(timeout=0.001):
            p = key.data
            t = time.monotonic()
            while True:
                try:
                    data = p.sock.recv(65535)
                except BlockingIOError:
                    break
                rdtype = p.ids.pop(struct.unpack_from("!H", data)[0], None)
                if rdtype is None:
                    continue
                p.latency[rdtype] = t - p.sent
                if (err := check(data, rdtype)) is not None:
                    res.wrong.append(err)
        now = time.monotonic()
        for fd, p in list(open_pairs.items()):
            if not p.ids or now - p.sent > TIMEOUT:
                sel.unregister(p.sock)
                p.sock.close()
                del open_pairs[fd]
    return res


def tcp_clients(n: int) -> tuple[list[str], list[float]]:
    """``n`` use-vc resolutions: a new TCP connection each, A and AAAA written at once, both
    answers read (in any order). Returns the failures and the resolution times."""
    failures: list[str] = []
    took: list[float] = []
    for _ in range(n):
        a, aaaa = random.sample(range(65536), 2)
        ids = {a: "A", aaaa: "AAAA"}
        t0 = time.monotonic()
        try:
            with socket.create_connection((VIP, 53), timeout=TIMEOUT) as s:
                s.sendall(b"".join(struct.pack("!H", len(w)) + w
                                   for w in (query("A", a), query("AAAA", aaaa))))
                while ids:
                    head = s.recv(2, socket.MSG_WAITALL)
                    body = s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                    rdtype = ids.pop(struct.unpack_from("!H", body)[0])
                    if (err := check(body, rdtype)) is not None:
                        failures.append(err)
            took.append(time.monotonic() - t0)
        except (OSError, struct.error, KeyError) as e:
            failures.append(f"{type(e).__name__}: {e}")
    return failures, took


def test_k12_parallel_a_aaaa_through_dnat_and_use_vc(netns: str, tmp_path: Path) -> None:
    proxy = KubeProxy(netns)
    backends = [start_backend(netns, ip, port, tmp_path)
                for ip, port in (("10.0.0.21", 5321), ("10.0.0.22", 5322))]
    proxy.backends += backends
    proxy.start()
    try:
        wait_ready_set(proxy, {b.ip for b in backends})
        ct0 = conntrack_stats(netns)
        udp = in_netns(netns, lambda: udp_pairs(PAIRS, PAIR_RATE))
        ct1 = conntrack_stats(netns)
        tcp_failures, tcp_took = in_netns(netns, lambda: tcp_clients(TCP_CLIENTS))
    finally:
        proxy.stop()
        stop_backends(*backends)
    ct = {k: ct1[k] - ct0[k] for k in CT_KEYS}
    lat = udp.latencies()
    missing = sum(2 - len(p.latency) for p in udp.pairs)
    slow = [x for x in lat if x > LATENCY_BOUND]
    conntrack_dropped = ct["insert_failed"] + ct["drop"]
    tcp_took.sort()
    print(f"K12 UDP: {len(udp.pairs)} pairs, {len(udp.pairs) - len(udp.incomplete())} with both "
          f"answers, {missing} answers missing, conntrack {ct}; latency p50 "
          f"{lat[len(lat) // 2] * 1000:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms, "
          f"max {lat[-1] * 1000:.2f} ms, {len(slow)} over 10 ms; wrong {udp.wrong[:5]}")
    print(f"K12 use-vc: {TCP_CLIENTS} clients, {len(tcp_failures)} failures {tcp_failures[:5]}; "
          f"resolution p50 {tcp_took[len(tcp_took) // 2] * 1000:.2f} ms, max "
          f"{tcp_took[-1] * 1000:.2f} ms")
    assert udp.wrong == []
    # A missing answer is kdns's fault unless the kernel dropped that many packets at the DNAT.
    assert missing <= conntrack_dropped, (missing, ct)
    assert tcp_failures == []
    if slow:
        # Load-sensitive, like K11 (not strict): max 2.4 ms on a quiet machine, 250 of 2,000
        # answers over 10 ms (max 118 ms) at load average 6.8 from other suites.
        pytest.xfail(f"{len(slow)} answers over 10 ms (max {lat[-1] * 1000:.1f} ms)")
