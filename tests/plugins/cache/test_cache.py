"""cache in the real kdns process, in front of forward to knotd and the fault-injecting upstream."""

from __future__ import annotations

import time
from collections.abc import Callable

import dns.flags
import dns.rcode

from tests.kdnsproc import KdnsProcess, dig, rrtext
from tests.upstream.fakeupstream import FakeUpstream
from tests.upstream.stack import uniq, upstream_fixtures

COREFILE = """\
example.test:{port} {
    cache 30
    forward . {knot}
}
.:{port} {
    cache {
        denial 1000 1800 0
        servfail 1s
        serve_stale 1h
    }
    forward . {fake} {
        max_fails 0
    }
}
"""

fake, kd = upstream_fixtures(COREFILE)


def wait_for(cond: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_cached_answers_from_knot_count_down(kd: KdnsProcess) -> None:
    first = kd.query("short.example.test", "A")
    assert rrtext(first) == ["short.example.test. 30 A 192.0.2.11"]
    time.sleep(2.1)
    later = kd.query("short.example.test", "A")
    assert rrtext(later) in (["short.example.test. 28 A 192.0.2.11"],
                             ["short.example.test. 27 A 192.0.2.11"])
    assert later.flags & dns.flags.AA
    capped = kd.query("www.example.test", "A")  # knot says 300; `cache 30` caps it
    assert rrtext(capped) == ["www.example.test. 30 A 192.0.2.10"]
    out = dig(kd.port, "SHORT.example.test")
    assert "SHORT.example.test.\t2" in out  # case echoed from the cache, TTL counted down


def test_hits_do_not_reach_the_upstream(kd: KdnsProcess, fake: FakeUpstream) -> None:
    name = uniq("ok")
    for _ in range(5):
        assert kd.query(name).answer
    assert kd.query(name.upper()).answer
    assert kd.query(name, tcp=True).answer
    assert fake.count(name) == 1


def test_do_and_cd_variants_are_separate_entries(kd: KdnsProcess, fake: FakeUpstream) -> None:
    name = uniq("ok")
    kd.query(name)
    kd.query(name, want_dnssec=True)
    kd.query(name, flags=dns.flags.RD | dns.flags.CD)
    kd.query(name, "AAAA")
    assert fake.count(name) == 4
    assert {(s.qtype, bool(s.flags & dns.flags.CD)) for s in fake.queries(name)} == {
        ("A", False), ("A", True), ("AAAA", False)}


def test_nxdomain_cached_for_soa_minimum_then_requeried(kd: KdnsProcess,
                                                        fake: FakeUpstream) -> None:
    name = uniq("nxdomain-300-2")
    r = kd.query(name)
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].ttl == 2
    time.sleep(1.2)
    r = kd.query(name)
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].ttl == 1
    assert fake.count(name) == 1
    time.sleep(1.0)
    kd.query(name)  # expired: re-queried (in the background, as serve_stale is on here)
    assert wait_for(lambda: fake.count(name) == 2)


def test_negative_answers_without_soa_are_not_cached(kd: KdnsProcess, fake: FakeUpstream) -> None:
    name = uniq("nxnosoa")
    assert kd.query(name).rcode() == dns.rcode.NXDOMAIN
    assert kd.query(name).rcode() == dns.rcode.NXDOMAIN
    assert fake.count(name) == 2


def test_servfail_cached_for_the_servfail_duration(kd: KdnsProcess, fake: FakeUpstream) -> None:
    name = uniq("servfail")
    assert kd.query(name).rcode() == dns.rcode.SERVFAIL
    assert kd.query(name).rcode() == dns.rcode.SERVFAIL
    assert fake.count(name) == 1
    time.sleep(1.1)
    kd.query(name)
    assert fake.count(name) == 2


def test_poison_in_extra_sections_never_answers_other_names(kd: KdnsProcess,
                                                           fake: FakeUpstream) -> None:
    name = uniq("poison")
    assert kd.query(name).answer
    r = kd.query("victim.example.", "A")
    assert all("6.6.6.6" not in line for line in rrtext(r))
    assert fake.count("victim.example.") == 1  # asked upstream, not taken from the cache


def test_stale_answer_served_at_once_while_upstream_is_down(kd: KdnsProcess,
                                                            fake: FakeUpstream) -> None:
    name = uniq("ok")
    fake.ttl = 1
    try:
        kd.query(name)  # stored for 5 s (the minimum TTL)
    finally:
        fake.ttl = 300
    fake.mode = "blackhole"
    try:
        time.sleep(5.2)
        start = time.monotonic()
        r = kd.query(name, timeout=3)
        elapsed = time.monotonic() - start
        assert r.rcode() == 0 and rrtext(r) == [f"{name} 0 A 192.0.2.1"]
        assert elapsed < 0.2  # immediate mode: no waiting on the dead upstream
    finally:
        fake.mode = ""


def test_truncated_replies_are_not_cached(kd: KdnsProcess, fake: FakeUpstream) -> None:
    name = uniq("big-100")
    assert kd.query(name, use_edns=False).flags & dns.flags.TC
    assert len(kd.query(name, tcp=True).answer[0]) == 100
    # The full TCP answer is cacheable (it has no TC); the first truncated one to the client was
    # rendered from it, so only one upstream exchange per protocol happened.
    assert fake.count(name) <= 2
