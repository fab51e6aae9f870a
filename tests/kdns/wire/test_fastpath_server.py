"""The fast path in a real kdns: cache hits are replayed (TTLs counting down) and every replay
is counted in /metrics exactly as the slow path would have counted it."""

from __future__ import annotations

import re
import time
import urllib.request

import dns.message

from tests.kdnsproc import free_port, run_kdns

COREFILE = """.:{port} {
    prometheus 127.0.0.1:%d
    cache 30
    hosts {
        10.0.0.1 web.example.org
        ttl 60
    }
}
"""


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^((?:coredns|kdns)_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def test_replays_count_in_metrics_and_ttls_count_down() -> None:
    mport = free_port()
    with run_kdns(COREFILE % mport) as k:
        wire = dns.message.make_query("web.example.org", "A").to_wire()
        replies = []
        for _ in range(50):
            r = k.send_raw_udp(wire)
            assert r is not None
            replies.append(r)
        first = dns.message.from_wire(replies[0])
        assert first.answer[0].ttl == 30  # hosts' 60 s capped by cache 30
        # The same bytes apart from the ID (nothing else changed within this second or two).
        assert len({r[2:] for r in replies}) <= 2
        time.sleep(2.1)
        later = dns.message.from_wire(k.send_raw_udp(wire) or b"")
        assert 26 <= later.answer[0].ttl <= 28, later.answer[0].ttl
        m = scrape(mport)
        assert m["coredns_dns_requests_total"] == 51
        assert m["coredns_dns_responses_total"] == 51
        assert m["coredns_dns_request_duration_seconds_count"] == 51
        assert m["coredns_cache_requests_total"] == 51
        assert m["coredns_cache_misses_total"] == 1
        assert m["coredns_cache_hits_total"] == 50
        # Only the first query took the slow path: the miss's reply (hosts sets AA, as a cache
        # hit would) was stored and every later query was replayed from its bytes.
        assert m["kdns_fastpath_replays_total"] == 50
