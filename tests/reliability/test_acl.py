"""S1 (reliability.md section 9): an open-resolver check. Clients outside the allowlist (here
127.9.0.0/16, while kdns allows 127.0.0.0/16) ask for external names, names an allowed client
has just had answered (so they sit in the cache and the fast-path memo), cluster names and
search-path-expanded names, over UDP and TCP. Criteria: 100% REFUSED (or no reply with
``drop``), 0 upstream queries caused, never a cached answer. Run with -s for the numbers.

kdns has no autopath, so "search-path expansion" is the client's: the names a pod's resolver
builds from its search list (``example.com.default.svc.cluster.local`` ...)."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.reliability.helpers import metric_value, wait_status
from tests.reliability.k8sharness import NS, base_objects, svc_name
from tests.upstream.fakeupstream import FakeUpstream

COREFILE = """\
.:{port} {
    errors
    prometheus 127.0.0.1:%(metrics)d
    acl {
        allow net 127.0.0.0/16
        %(action)s
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %(api)s
    }
    forward . %(upstream)s
    cache 30
}
"""
ALLOWED = "127.0.0.1"
BLOCKED = ("127.9.0.1", "127.9.1.2", "127.9.255.254")
N = 100  # names per kind
SEARCH = (f"{NS}.svc.cluster.local", "svc.cluster.local", "cluster.local")


def external_names() -> list[str]:
    """Asked only by blocked clients: any upstream query for them is a leak."""
    return [f"ext{i}.example.com." for i in range(N)]


def cached_names() -> list[str]:
    """Asked first by the allowed client (answered via forward, then cached and memoized)."""
    return [f"warm{i}.example.net." for i in range(N)]


def cluster_names() -> list[str]:
    """Cluster services, and search-path expansions of external names (NXDOMAIN from
    kubernetes for an allowed client), both asked first by the allowed client too."""
    expanded = [f"ext{i}.example.com.{s}." for i in range(N // len(SEARCH))
                for s in SEARCH]
    return [svc_name(i) for i in range(20)] + expanded


@dataclass
class Tally:
    sent: int = 0
    rcodes: Counter[str] | None = None
    silent: int = 0
    with_records: int = 0

    def add(self, r: dns.message.Message | None) -> None:
        self.sent += 1
        if self.rcodes is None:
            self.rcodes = Counter()
        if r is None:
            self.silent += 1
            return
        self.rcodes[dns.rcode.to_text(r.rcode())] += 1
        if r.answer or r.authority:
            self.with_records += 1


class Client:
    """One source address, one UDP socket and one TCP connection to kdns."""

    def __init__(self, source: str, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.source = source
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((source, 0))
        self.tcp: socket.socket | None = None  # connected on first use (kdns closes idle ones)

    def ask(self, name: str, tcp: bool) -> dns.message.Message | None:
        q = dns.message.make_query(name, "A")
        try:
            if tcp:
                if self.tcp is None:
                    self.tcp = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                                        source_address=(self.source, 0))
                    self.tcp.settimeout(self.timeout)  # receive_tcp waits by this, not expiration
                dns.query.send_tcp(self.tcp, q, expiration=None)
                r, _ = dns.query.receive_tcp(self.tcp, expiration=time.time() + self.timeout)
            else:
                self.udp.sendto(q.to_wire(), ("127.0.0.1", self.port))
                self.udp.settimeout(self.timeout)
                r = dns.message.from_wire(self.udp.recv(65535))
        except (TimeoutError, dns.exception.Timeout):
            return None
        assert r.id == q.id
        return r

    def close(self) -> None:
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()


@contextmanager
def s1_kdns(action: str) -> Iterator[tuple[KdnsProcess, FakeUpstream, int]]:
    with FakeApiServer(bookmark_interval=0.5) as api, FakeUpstream() as up:
        api.put_many(base_objects(20))
        metrics = free_port()
        text = COREFILE % {"metrics": metrics, "action": action, "api": api.url,
                           "upstream": up.addr}
        with run_kdns(text) as k:
            wait_status(f"http://127.0.0.1:{metrics}/metrics", 200)
            yield k, up, metrics
            assert "Traceback" not in k.output, k.output


@pytest.mark.parametrize("action", ["block", "drop"])
def test_s1_blocked_sources(action: str) -> None:
    timeout = 0.25 if action == "drop" else 2.0
    with s1_kdns(action) as (k, up, metrics):
        ok = Client(ALLOWED, k.port, 2.0)
        bad = [Client(src, k.port, timeout) for src in BLOCKED]
        try:
            # The allowed client warms the cache (and the fast-path memo) on both transports.
            for tcp in (False, True):
                for name in cached_names() + cluster_names():
                    r = ok.ask(name, tcp)
                    assert r is not None and r.rcode() in (dns.rcode.NOERROR,
                                                           dns.rcode.NXDOMAIN), name
            assert ok.ask(svc_name(0), False).answer  # type: ignore[union-attr]
            upstream_before = len(up.queries())
            kinds = {"external": external_names(), "cached": cached_names(),
                     "cluster+search": cluster_names()}
            tallies = {kind: Tally() for kind in kinds}
            rounds = 2 if action == "block" else 1  # drop waits out a timeout per query
            for _ in range(rounds):
                for tcp in (False, True):
                    for kind, names in kinds.items():
                        for i, name in enumerate(names):
                            if action == "drop" and i % 10:
                                continue  # a sample: each silent query costs the timeout
                            tallies[kind].add(bad[i % len(bad)].ask(name, tcp))
            leaked = len(up.queries()) - upstream_before
            ext_upstream = sum(up.count(n) for n in external_names())
            # The allowed client is still answered, from the cache.
            r = ok.ask(cached_names()[0], False)
            assert r is not None and r.answer
        finally:
            ok.close()
            for c in bad:
                c.close()
        metric = f"coredns_acl_{'blocked' if action == 'block' else 'dropped'}_requests_total"
        counted = metric_value(metrics, metric)
    total = sum(t.sent for t in tallies.values())
    print(f"\nS1 ({action}): sources {', '.join(BLOCKED)}, UDP+TCP")
    for kind, t in tallies.items():
        print(f"  {kind:15s} sent {t.sent:4d}  rcodes {dict(t.rcodes or {})}  "
              f"no reply {t.silent}  replies with records {t.with_records}")
    print(f"  upstream queries while blocked clients asked: {leaked} "
          f"(for external names, ever: {ext_upstream}); {metric} = {counted:.0f}")
    for t in tallies.values():
        assert t.with_records == 0
        if action == "block":
            assert t.rcodes == Counter({"REFUSED": t.sent}) and t.silent == 0
        else:
            assert t.silent == t.sent
    assert leaked == 0 and ext_upstream == 0
    assert counted == total
