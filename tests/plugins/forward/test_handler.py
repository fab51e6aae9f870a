"""forward's logic with a MockTransport: no sockets, timeouts shortened where a test waits."""

from __future__ import annotations

import asyncio
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from kdns.errors import PluginError, UpstreamError
from kdns.plugin import Request
from kdns.plugins.forward.handler import Forward
from kdns.plugins.forward.metrics import (
    HEALTHCHECK_BROKEN,
    HEALTHCHECK_FAILURES,
    MAX_CONCURRENT_REJECTS,
    REQUEST_DURATION,
)
from kdns.plugins.forward.parse import ForwardConfig, Upstream
from kdns.plugins.forward.transport import MockTransport

U1, U2, U3 = Upstream("10.0.0.1"), Upstream("10.0.0.2"), Upstream("10.0.0.3")


class Next:
    name = "next"

    def __init__(self) -> None:
        self.calls = 0

    async def serve(self, req: Request) -> dns.message.Message:
        self.calls += 1
        r = req.reply(dns.rcode.NOERROR, by="next")
        r.answer.append(dns.rrset.from_text(req.name, 1, "IN", "TXT", '"from next"'))
        return r


def request(name: str = "www.example.org.", rdtype: str = "A", proto: str = "udp",
            **kw: object) -> Request:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return Request(q, ("127.0.0.1", 40000), proto, server="dns://:53")


def answer(q: dns.message.Message, ip: str = "192.0.2.1", rcode: int = 0,
           tc: bool = False) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.Rcode(rcode))
    if tc:
        r.flags |= dns.flags.TC
    elif rcode == 0:
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", ip))
    return r


def forward(handler, upstreams=(U1,), *, next=None, **cfg):  # type: ignore[no-untyped-def]
    """A Forward on a MockTransport, with short timeouts (try 0.3 s, deadline 1 s)."""
    t = MockTransport(handler)
    cfg.setdefault("policy", "sequential")
    f = Forward(next or Next(), ForwardConfig(".", tuple(upstreams), **cfg), t,
                try_timeout=0.3, deadline=1.0, probe_timeout=0.2)
    return f, t


async def test_answer_keeps_client_id_question_case_and_edns() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q)
    f, t = forward(h)
    req = request("WwW.ExAmple.org.", use_edns=False)
    r = await f.serve(req)
    assert r.id == req.msg.id
    assert r.question[0].name.to_text() == "WwW.ExAmple.org."
    assert r.edns == -1
    assert [str(rd) for rd in r.answer[0]] == ["192.0.2.1"]
    sent = t.calls[0][1]
    assert sent.question[0].name.to_text() == "WwW.ExAmple.org."  # exact spelling upstream
    assert sent.edns == 0 and sent.payload == 1232
    assert req.answered_by == "forward"


async def test_identical_queries_share_one_upstream_query() -> None:
    gate = asyncio.Event()

    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await gate.wait()
        return answer(q)
    f, t = forward(h)
    reqs = [request("Same.example.org.") for _ in range(50)]
    tasks = [asyncio.create_task(f.serve(r)) for r in reqs]
    await asyncio.sleep(0.05)
    gate.set()
    replies = await asyncio.gather(*tasks)
    assert len(t.calls) == 1
    assert all(r.answer for r in replies)
    assert [r.id for r in replies] == [q.msg.id for q in reqs]


async def test_coalescing_key_separates_type_and_do_bit() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.02)
        return answer(q)
    f, t = forward(h)
    await asyncio.gather(f.serve(request()), f.serve(request(rdtype="AAAA")),
                         f.serve(request(want_dnssec=True)))
    assert len(t.calls) == 3


async def test_max_concurrent_refuses_beyond_the_limit() -> None:
    gate = asyncio.Event()

    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await gate.wait()
        return answer(q)
    f, _ = forward(h, max_concurrent=2)
    before = MAX_CONCURRENT_REJECTS._value.get()
    t1 = asyncio.create_task(f.serve(request("a.example.org.")))
    t2 = asyncio.create_task(f.serve(request("b.example.org.")))
    await asyncio.sleep(0.01)
    with pytest.raises(PluginError) as e:
        await f.serve(request("c.example.org."))
    assert e.value.rcode == dns.rcode.REFUSED
    assert str(e.value) == "concurrent queries exceeded maximum 2"
    assert MAX_CONCURRENT_REJECTS._value.get() == before + 1
    gate.set()
    await asyncio.gather(t1, t2)
    assert (await f.serve(request("c.example.org."))).answer


async def test_failed_upstream_falls_through_to_the_next() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        if u == U1:
            raise UpstreamError("connection refused")
        return answer(q, "192.0.2.2")
    f, t = forward(h, (U1, U2))
    r = await f.serve(request())
    assert str(r.answer[0][0]) == "192.0.2.2"
    assert [c[0] for c in t.calls[:2]] == [U1, U2]


async def test_upstream_marked_down_after_max_fails_and_skipped() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        if u == U1:
            raise UpstreamError("connection refused")
        return answer(q)
    f, t = forward(h, (U1, U2), max_fails=2, hc_interval=60.0)
    for i in range(3):
        await f.serve(request(f"n{i}.example.org."))
    assert f.states[0].down(2)
    t.calls.clear()
    await f.serve(request("after.example.org."))
    assert [c[0] for c in t.calls if c[1].question[0].name.to_text() == "after.example.org."] \
        == [U2]


async def test_health_probe_is_dot_ns_and_revives_the_upstream() -> None:
    alive = False

    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        if not alive:
            raise UpstreamError("refused")
        return answer(q)
    f, t = forward(h, (U1,), hc_interval=0.02, max_fails=1)
    with pytest.raises(PluginError):
        await f.serve(request())
    await asyncio.sleep(0.1)
    probes = [c for c in t.calls if c[1].question[0].name.to_text() == "."]
    assert probes and probes[0][1].question[0].rdtype == 2  # . IN NS
    assert probes[0][1].flags & dns.flags.RD
    assert f.states[0].down(1)
    alive = True
    await asyncio.sleep(0.1)
    assert f.states[0].fails == 0
    assert (await f.serve(request())).answer
    await f.stop()


async def test_no_rec_and_domain_change_the_probe() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        raise UpstreamError("refused")
    f, t = forward(h, (U1,), hc_interval=0.02, hc_recursion=False, hc_domain="example.net.")
    with pytest.raises(PluginError):
        await f.serve(request())
    await asyncio.sleep(0.05)
    probes = [c[1] for c in t.calls if c[1].question[0].name.to_text() == "example.net."]
    assert probes and not probes[0].flags & dns.flags.RD
    await f.stop()


async def test_all_down_failfast_answers_servfail_at_once() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        raise UpstreamError("refused")
    f, t = forward(h, (U1, U2), failfast_all_unhealthy=True, hc_interval=60.0, max_fails=1)
    for s in f.states:
        s.fails = 5
    t.calls.clear()
    start = time.monotonic()
    with pytest.raises(PluginError) as e:
        await f.serve(request())
    assert time.monotonic() - start < 0.05  # no upstream attempt (0.3 s here)
    assert str(e.value) == "no healthy proxies" and e.value.rcode == dns.rcode.SERVFAIL
    assert t.calls == []


async def test_all_down_without_failfast_tries_one_canary_others_fail_fast() -> None:
    gate = asyncio.Event()

    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await gate.wait()
        return answer(q)
    f, _ = forward(h, (U1, U2), hc_interval=60.0, max_fails=1)
    for s in f.states:
        s.fails = 5
    before = HEALTHCHECK_BROKEN._value.get()
    canary = asyncio.create_task(f.serve(request("one.example.org.")))
    await asyncio.sleep(0.01)
    start = time.monotonic()
    with pytest.raises(PluginError, match="no healthy proxies"):
        await f.serve(request("two.example.org."))
    assert time.monotonic() - start < 0.05
    gate.set()
    assert (await canary).answer  # the canary got through and revived its upstream
    assert HEALTHCHECK_BROKEN._value.get() >= before + 2
    assert any(s.fails == 0 for s in f.states)


async def test_truncated_udp_reply_is_retried_over_tcp() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q, tc=(proto == "udp"))
    f, t = forward(h)
    r = await f.serve(request())
    assert [c[2] for c in t.calls] == ["udp", "tcp"]
    assert r.answer and not r.flags & dns.flags.TC


@pytest.mark.parametrize("opts,client,expect", [
    ({}, "udp", "udp"), ({}, "tcp", "tcp"), ({"force_tcp": True}, "udp", "tcp"),
    ({"prefer_udp": True}, "tcp", "udp"),
])
async def test_upstream_protocol(opts: dict[str, bool], client: str, expect: str) -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q)
    f, t = forward(h, **opts)
    await f.serve(request(proto=client))
    assert t.calls[0][2] == expect


async def test_next_rcodes_pass_to_the_next_plugin() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q, rcode=dns.rcode.NXDOMAIN)
    nxt = Next()
    f, _ = forward(h, next=nxt, next_rcodes=frozenset({dns.rcode.NXDOMAIN}))
    r = await f.serve(request())
    assert nxt.calls == 1 and r.answer[0].rdtype == 16


async def test_failover_rcodes_try_the_next_upstream() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q, rcode=dns.rcode.SERVFAIL) if u == U1 else answer(q)
    f, t = forward(h, (U1, U2), failover_rcodes=frozenset({dns.rcode.SERVFAIL}))
    r = await f.serve(request())
    assert r.rcode() == 0 and [c[0] for c in t.calls] == [U1, U2]


async def test_upstream_servfail_passes_through_without_failover() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q, rcode=dns.rcode.SERVFAIL)
    f, _ = forward(h, (U1, U2))
    assert (await f.serve(request())).rcode() == dns.rcode.SERVFAIL


async def test_deadline_bounds_the_wait() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await asyncio.sleep(10)
        return answer(q)
    f, t = forward(h, (U1, U2, U3), hc_interval=60.0)
    start = time.monotonic()
    with pytest.raises(PluginError):
        await f.serve(request())
    assert time.monotonic() - start < 1.1  # deadline 1.0 in this test
    assert len(t.calls) >= 3  # each upstream tried for try_timeout 0.3


async def test_except_and_from_zone_select_what_is_forwarded() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q)
    nxt = Next()
    t = MockTransport(h)
    f = Forward(nxt, ForwardConfig("example.org.", (U1,), except_zones=("in.example.org.",)), t)
    await f.serve(request("www.example.org."))
    await f.serve(request("in.example.org."))
    await f.serve(request("x.in.example.org."))
    await f.serve(request("www.example.com."))
    assert [c[1].question[0].name.to_text() for c in t.calls] == ["www.example.org."]
    assert nxt.calls == 3
    f2 = Forward(nxt, ForwardConfig("example.org.", (U1,), except_zones=("example.org.",)), t)
    await f2.serve(request("example.org."))
    assert t.calls[-1][1].question[0].name.to_text() == "example.org."


@pytest.mark.parametrize("policy,expect", [
    ("sequential", [U1, U1, U1]), ("round_robin", [U1, U2, U3]),
])
async def test_policy_order(policy: str, expect: list[Upstream]) -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q)
    f, t = forward(h, (U1, U2, U3), policy=policy)
    for i in range(3):
        await f.serve(request(f"p{i}.example.org."))
    assert [c[0] for c in t.calls] == expect


async def test_random_policy_spreads_queries() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        return answer(q)
    f, t = forward(h, (U1, U2, U3), policy="random")
    for i in range(60):
        await f.serve(request(f"r{i}.example.org."))
    assert {c[0] for c in t.calls} == {U1, U2, U3}


async def test_mismatched_reply_is_never_delivered() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        bad = dns.message.make_query("evil.example.org.", "A")
        bad.id = q.id
        return answer(bad, "6.6.6.6")
    f, _ = forward(h)
    with pytest.raises(PluginError):
        await f.serve(request())


async def test_loop_detected_disables_only_the_upstreams_that_carried_the_probe() -> None:
    gate = asyncio.Event()

    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        if q.question[0].name.to_text() == "1.2.":
            await gate.wait()
        return answer(q)
    f, _ = forward(h, (U1, U2))
    probe = asyncio.create_task(f.serve(request("1.2.", "HINFO")))
    await asyncio.sleep(0.01)
    assert f.loop_detected("1.2.") == ["10.0.0.1:53"]
    assert not f.halted
    gate.set()
    await probe
    r = await f.serve(request("still.example.org."))
    assert r.answer  # served by U2
    assert f.loop_detected("unknown.") == ["10.0.0.1:53", "10.0.0.2:53"]
    start = time.monotonic()
    with pytest.raises(PluginError, match="loop detected"):
        await f.serve(request("any.example.org."))
    assert time.monotonic() - start < 0.05


def _hist_count(to: str, rcode: str) -> float:
    for metric in REQUEST_DURATION.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {
                    "proxy_name": "forward", "to": to, "rcode": rcode}:
                return sample.value
    return 0.0


async def test_metrics_for_exchanges_and_probes() -> None:
    u = Upstream("10.9.9.9")
    state = {"up": False}

    async def h(up, q, proto):  # type: ignore[no-untyped-def]
        if not state["up"]:
            raise UpstreamError("refused")
        return answer(q, rcode=dns.rcode.NXDOMAIN)
    f, _ = forward(h, (u,), hc_interval=0.01)
    before_ok = _hist_count("10.9.9.9:53", "NXDOMAIN")
    before_hc = HEALTHCHECK_FAILURES.labels("forward", "10.9.9.9:53")._value.get()
    with pytest.raises(PluginError):
        await f.serve(request())
    await asyncio.sleep(0.05)
    assert HEALTHCHECK_FAILURES.labels("forward", "10.9.9.9:53")._value.get() > before_hc
    assert _hist_count("10.9.9.9:53", "NXDOMAIN") == before_ok  # failures are not observed
    state["up"] = True
    await asyncio.sleep(0.05)
    await f.serve(request())
    assert _hist_count("10.9.9.9:53", "NXDOMAIN") == before_ok + 1
    await f.stop()


async def test_stop_lets_queries_in_flight_finish() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1)
        return answer(q)
    f, _ = forward(h)
    pending = asyncio.create_task(f.serve(request()))
    await asyncio.sleep(0.01)
    await f.stop()  # e.g. the old chain after a reload
    assert (await pending).answer


async def test_without_probes_an_upstream_is_never_marked_down() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        raise UpstreamError("refused")
    f, t = forward(h, (U1,), hc_interval=0.0, failfast_all_unhealthy=True)
    for _ in range(5):
        with pytest.raises(PluginError, match="refused"):
            await f.serve(request())
    assert len(t.calls) == 10  # every query still tried (2 attempts each), never "no healthy"


async def test_read_timeout_sets_the_per_attempt_timeout() -> None:
    async def h(u, q, proto):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.5)
        return answer(q)
    t = MockTransport(h)
    f = Forward(Next(), ForwardConfig(".", (U1,), read_timeout=0.1, policy="sequential"), t,
                deadline=1.0)
    start = time.monotonic()
    with pytest.raises(PluginError, match="i/o timeout"):
        await f.serve(request())
    assert time.monotonic() - start < 0.4  # two attempts of 0.1 s, not of 2 s
