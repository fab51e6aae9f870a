"""cache's logic with a scripted next plugin and a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from kdns.errors import PluginError
from kdns.plugin import Request
from kdns.plugins.cache import metrics as m
from kdns.plugins.cache.handler import Cache
from kdns.plugins.cache.parse import CacheConfig
from kdns.wire.render import render

Responder = Callable[[Request], dns.message.Message]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Next:
    """Answers with ``respond(req)``; counts calls per lower-case name."""

    name = "next"

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.calls: dict[str, int] = {}

    async def serve(self, req: Request) -> dns.message.Message:
        self.calls[req.qname] = self.calls.get(req.qname, 0) + 1
        return self.respond(req)


def positive(ttl: int = 300, ip: str = "192.0.2.1") -> Responder:
    def respond(req: Request) -> dns.message.Message:
        r = req.reply(by="next")
        r.answer.append(dns.rrset.from_text(req.name, ttl, "IN", "A", ip))
        return r
    return respond


def negative(rcode: int = dns.rcode.NXDOMAIN, soa_ttl: int = 300, minimum: int = 60,
             soa: bool = True) -> Responder:
    def respond(req: Request) -> dns.message.Message:
        r = req.reply(rcode, by="next")
        if soa:
            r.authority.append(dns.rrset.from_text(
                "example.org.", soa_ttl, "IN", "SOA", f"ns. host. 1 2 3 4 {minimum}"))
        return r
    return respond


def rcode_only(rcode: int) -> Responder:
    return lambda req: req.reply(rcode, by="next")


def request(name: str = "www.example.org.", rdtype: str = "A", **kw: object) -> Request:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return Request(q, ("127.0.0.1", 5353), "udp", server="dns://:53")


def cache(respond: Responder, **cfg: object) -> tuple[Cache, Next, Clock]:
    nxt, clock = Next(respond), Clock()
    base = CacheConfig(zones=(".",))
    c = Cache(nxt, replace(base, **cfg), f"dns://:{secrets.token_hex(3)}", clock)  # type: ignore[arg-type]
    return c, nxt, clock


def ttls(msg: dns.message.Message) -> set[int]:
    return {rr.ttl for rr in [*msg.answer, *msg.authority, *msg.additional]}


def value(metric: object) -> float:
    return metric._value.get()  # type: ignore[attr-defined, no-any-return]


async def test_hit_counts_down_and_is_authoritative() -> None:
    c, nxt, clock = cache(positive(300), success_ttl=30, denial_ttl=30)
    first = await c.serve(request())
    assert ttls(first) == {30}  # capped on the way in, too
    clock.t += 2.5
    hit = await c.serve(request())
    assert ttls(hit) == {28} and hit.flags & dns.flags.AA
    assert nxt.calls == {"www.example.org.": 1}
    clock.t += 27.6  # 30.1 s after storing: expired
    await c.serve(request())
    assert nxt.calls["www.example.org."] == 2
    assert value(c.metrics.requests) == 3
    assert value(c.metrics.hits["success"]) == 1 and value(c.metrics.misses) == 2
    assert value(c.metrics.entries["success"]) == 1


@pytest.mark.parametrize("upstream_ttl,cached", [(0, 5), (1, 5), (100, 100),
                                                 (2**31 - 1, 3600)])
async def test_positive_ttls_are_clamped(upstream_ttl: int, cached: int) -> None:
    c, _, _ = cache(positive(upstream_ttl))
    assert ttls(await c.serve(request())) == {cached}


async def test_nxdomain_cached_for_the_soa_minimum() -> None:
    c, nxt, clock = cache(negative(soa_ttl=300, minimum=60))
    r = await c.serve(request("nx.example.org."))
    assert r.rcode() == dns.rcode.NXDOMAIN and ttls(r) == {60}
    clock.t += 59.5
    r = await c.serve(request("nx.example.org."))
    assert r.rcode() == dns.rcode.NXDOMAIN and ttls(r) == {1}
    assert nxt.calls["nx.example.org."] == 1
    assert value(c.metrics.hits["denial"]) == 1
    clock.t += 1
    await c.serve(request("nx.example.org."))
    assert nxt.calls["nx.example.org."] == 2


async def test_nodata_uses_soa_ttl_when_smaller_and_denial_cap() -> None:
    c, _, _ = cache(negative(dns.rcode.NOERROR, soa_ttl=20, minimum=600))
    assert ttls(await c.serve(request("nodata.example.org."))) == {20}
    c2, _, _ = cache(negative(soa_ttl=86400, minimum=86400))
    assert ttls(await c2.serve(request("nx.example.org."))) == {1800}


@pytest.mark.parametrize("respond", [
    negative(soa=False), negative(dns.rcode.NOERROR, soa=False), rcode_only(dns.rcode.REFUSED),
    rcode_only(dns.rcode.FORMERR), rcode_only(dns.rcode.NOTIMP),
])
async def test_uncacheable_replies_are_not_stored(respond: Responder) -> None:
    c, nxt, _ = cache(respond)
    await c.serve(request("x.example.org."))
    await c.serve(request("x.example.org."))
    assert nxt.calls["x.example.org."] == 2


async def test_truncated_reply_is_not_stored() -> None:
    def respond(req: Request) -> dns.message.Message:
        r = positive()(req)
        r.flags |= dns.flags.TC
        return r
    c, nxt, _ = cache(respond)
    await c.serve(request())
    await c.serve(request())
    assert nxt.calls["www.example.org."] == 2


async def test_servfail_cached_five_seconds_then_refetched() -> None:
    c, nxt, clock = cache(rcode_only(dns.rcode.SERVFAIL))
    await c.serve(request())
    clock.t += 4.5
    assert (await c.serve(request())).rcode() == dns.rcode.SERVFAIL
    assert nxt.calls["www.example.org."] == 1
    clock.t += 1
    await c.serve(request())
    assert nxt.calls["www.example.org."] == 2
    c0, nxt0, _ = cache(rcode_only(dns.rcode.SERVFAIL), servfail_ttl=0.0)
    await c0.serve(request())
    await c0.serve(request())
    assert nxt0.calls["www.example.org."] == 2


async def test_reply_to_another_question_is_dropped_not_cached() -> None:
    def respond(req: Request) -> dns.message.Message:
        r = dns.message.make_response(dns.message.make_query("victim.example.org.", "A"))
        r.answer.append(dns.rrset.from_text("victim.example.org.", 300, "IN", "A", "6.6.6.6"))
        return r
    c, nxt, _ = cache(respond)
    await c.serve(request())
    await c.serve(request())
    assert nxt.calls["www.example.org."] == 2 and value(c.metrics.drops) == 2
    assert len(c.pcache) == 0


async def test_key_variants() -> None:
    c, nxt, _ = cache(positive())
    await c.serve(request("Case.Example.ORG."))
    hit = dns.message.from_wire(render(await c.serve(request("cAsE.example.org."))))  # as sent
    assert nxt.calls == {"case.example.org.": 1}
    assert hit.question[0].name.to_text() == "cAsE.example.org."
    assert hit.answer[0].name.to_text() == "cAsE.example.org."
    await c.serve(request("case.example.org.", want_dnssec=True))
    cd = request("case.example.org.")
    cd.cd = True
    await c.serve(cd)
    await c.serve(request("case.example.org.", "AAAA"))
    assert nxt.calls == {"case.example.org.": 4}


async def test_out_of_zone_names_bypass_the_cache() -> None:
    c, nxt, _ = cache(positive(), zones=("example.org.",))
    await c.serve(request("www.example.com."))
    await c.serve(request("www.example.com."))
    assert nxt.calls["www.example.com."] == 2
    assert value(c.metrics.requests) == 0


async def test_disable_success_and_denial_per_zone() -> None:
    c, nxt, _ = cache(positive(), disable_success=("cluster.local.",))
    for _ in range(2):
        await c.serve(request("svc.cluster.local."))
        await c.serve(request("www.example.org."))
    assert nxt.calls == {"svc.cluster.local.": 2, "www.example.org.": 1}
    c2, nxt2, _ = cache(negative(), disable_denial=("example.org.",))
    await c2.serve(request("nx.example.org."))
    await c2.serve(request("nx.example.org."))
    assert nxt2.calls["nx.example.org."] == 2


async def test_keepttl_freezes_the_served_ttl() -> None:
    c, _, clock = cache(positive(100), keepttl=True)
    await c.serve(request())
    clock.t += 50
    assert ttls(await c.serve(request())) == {100}


async def test_ad_bit_only_for_do_or_ad_clients() -> None:
    def respond(req: Request) -> dns.message.Message:
        r = positive()(req)
        r.flags |= dns.flags.AD
        return r
    c, _, _ = cache(respond)
    await c.serve(request())
    assert not (await c.serve(request())).flags & dns.flags.AD
    ad = request()
    ad.msg.flags |= dns.flags.AD
    assert (await c.serve(ad)).flags & dns.flags.AD


async def test_prefetch_refreshes_popular_entries_before_expiry() -> None:
    c, nxt, clock = cache(positive(100), prefetch=2, prefetch_percentage=50)
    await c.serve(request())  # miss, stored with TTL 100
    clock.t += 10
    await c.serve(request())  # hit 1: not popular yet
    clock.t += 45  # 45 s left <= 50 % of 100
    await c.serve(request())  # hit 2: popular and due -> background refresh
    await asyncio.sleep(0.01)
    assert nxt.calls["www.example.org."] == 2
    assert value(c.metrics.prefetches) == 1
    assert ttls(await c.serve(request())) == {100}  # the refreshed entry


async def test_serve_stale_immediate_answers_ttl_zero_and_refreshes_in_background() -> None:
    state = {"up": True}

    def respond(req: Request) -> dns.message.Message:
        if not state["up"]:
            raise PluginError("upstream down")
        return positive(10)(req)
    c, nxt, clock = cache(respond, stale_up_to=3600.0)
    await c.serve(request())
    state["up"] = False
    clock.t += 20  # expired 10 s ago
    stale = await c.serve(request())
    assert stale.answer and ttls(stale) == {0}
    await asyncio.sleep(0.01)
    assert nxt.calls["www.example.org."] == 2  # one background refresh, failed
    clock.t += 5
    await c.serve(request())
    await asyncio.sleep(0.01)
    assert nxt.calls["www.example.org."] == 2  # no new attempt within 30 s of the failure
    clock.t += 30
    await c.serve(request())
    await asyncio.sleep(0.01)
    assert nxt.calls["www.example.org."] == 3
    assert value(c.metrics.served_stale) == 3
    clock.t += 3600  # more than serve_stale's window past expiry
    with pytest.raises(PluginError):
        await c.serve(request())


async def test_servfail_never_replaces_a_stale_positive() -> None:
    state = {"rcode": 0}

    def respond(req: Request) -> dns.message.Message:
        return positive(10)(req) if state["rcode"] == 0 else rcode_only(state["rcode"])(req)
    c, _, clock = cache(respond, stale_up_to=3600.0)
    await c.serve(request())
    state["rcode"] = dns.rcode.SERVFAIL
    clock.t += 20
    r = await c.serve(request())
    await asyncio.sleep(0.01)  # the refresh stored a SERVFAIL in the denial cache
    assert len(c.ncache) == 1
    r = await c.serve(request())
    assert r.rcode() == dns.rcode.NOERROR and r.answer and ttls(r) == {0}


async def test_serve_stale_verify_prefers_a_fresh_answer() -> None:
    state = {"ip": "192.0.2.1", "up": True}

    def respond(req: Request) -> dns.message.Message:
        if not state["up"]:
            raise PluginError("down")
        return positive(10, state["ip"])(req)
    c, _, clock = cache(respond, stale_up_to=3600.0, stale_verify=True)
    await c.serve(request())
    state["ip"] = "192.0.2.2"
    clock.t += 20
    fresh = await c.serve(request())
    assert str(fresh.answer[0][0]) == "192.0.2.2" and ttls(fresh) == {10}
    state["up"] = False
    clock.t += 20
    stale = await c.serve(request())
    assert str(stale.answer[0][0]) == "192.0.2.2" and ttls(stale) == {0}


def _many(req: Request, n: int) -> dns.message.Message:
    r = req.reply(by="next")
    r.answer.append(dns.rrset.from_text(req.name, 60, "IN", "A",
                                        *[f"10.0.0.{i}" for i in range(n)]))
    return r


async def test_evictions_are_counted_at_capacity() -> None:
    c, _, _ = cache(positive(), success_capacity=1)  # 256 shards x 4
    for i in range(1500):
        await c.serve(request(f"n{i}.example.org."))
    assert len(c.pcache) <= 1024
    assert value(c.metrics.evictions["success"]) == 1500 - len(c.pcache)
    assert value(c.metrics.entries["success"]) == len(c.pcache)


def test_metric_names_match_coredns() -> None:
    names = {mt._name for mt in (m.ENTRIES, m.REQUESTS, m.HITS, m.MISSES, m.PREFETCHES,
                                   m.DROPS, m.SERVED_STALE, m.EVICTIONS)}
    assert names == {"coredns_cache_entries", "coredns_cache_requests", "coredns_cache_hits",
                     "coredns_cache_misses", "coredns_cache_prefetch", "coredns_cache_drops",
                     "coredns_cache_served_stale", "coredns_cache_evictions"}
    assert m.HITS._labelnames == ("server", "type", "zones", "view")
    assert m.REQUESTS._labelnames == ("server", "zones", "view")


