"""NetTransport against the fault-injecting upstream over real loopback sockets (RFC 5452)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import pytest

from kdns.errors import UpstreamError, UpstreamTimeout
from kdns.plugins.forward.metrics import (
    CONN_CACHE_HITS,
    CONN_CACHE_MISSES,
    MISMATCHES,
    TCP_FALLBACKS,
)
from kdns.plugins.forward.parse import Upstream
from kdns.plugins.forward.transport import NetTransport
from kdns.plugins.forward.wire import (
    build_query,
    is_near_miss,
    question_end,
    reply_matches,
    with_random_id,
)
from tests.kdnsproc import free_port
from tests.upstream.fakeupstream import FakeUpstream

PORT_RANGE = tuple(int(x) for x in
                   Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as u:
        yield u


def query(name: str, rdtype: int = 1) -> bytes:
    return with_random_id(build_query(dns.name.from_text(name), rdtype, 1))


def mismatches(up: FakeUpstream) -> float:
    return MISMATCHES.labels(f"127.0.0.1:{up.port}")._value.get()


def target(up: FakeUpstream) -> Upstream:
    return Upstream("127.0.0.1", up.port)


async def test_plain_exchange(up: FakeUpstream) -> None:
    r = await NetTransport().exchange(target(up), query("Ok.Example.org."), "udp", 1.0)
    assert r.question[0].name.to_text() == "Ok.Example.org."
    assert str(r.answer[0][0]) == "192.0.2.1"


async def test_forgeries_are_ignored_and_the_wait_goes_on(up: FakeUpstream) -> None:
    before = mismatches(up)
    for i in range(5):
        r = await NetTransport().exchange(target(up), query(f"spoofq-50.t{i}.example."), "udp",
                                          2.0)
        assert [str(rd) for rd in r.answer[0]] == ["192.0.2.1"]  # never 6.6.6.6
        assert [s.proto for s in up.queries(f"spoofq-50.t{i}.example.")] == ["udp"]
    # 50 forgeries per query, 10 of them from another port (dropped by the kernel: the socket
    # is connected); the other 40 reach us, are counted, and the genuine reply still wins.
    assert mismatches(up) - before == 5 * 40


async def test_wrong_id_for_our_question_moves_the_query_to_tcp(up: FakeUpstream) -> None:
    label = f"127.0.0.1:{up.port}"
    before = TCP_FALLBACKS.labels(label)._value.get()
    for i in range(5):
        name = f"spoof-50.w{i}.example."
        r = await NetTransport().exchange(target(up), query(name), "udp", 2.0)
        assert [str(rd) for rd in r.answer[0]] == ["192.0.2.1"]
        assert [s.proto for s in up.queries(name)] == ["udp", "tcp"]
    assert TCP_FALLBACKS.labels(label)._value.get() == before + 5


@pytest.mark.parametrize("mode", ["wrongq", "garbage", "qr0"])
async def test_bad_datagrams_alone_end_in_timeout(up: FakeUpstream, mode: str) -> None:
    before = mismatches(up)
    start = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="i/o timeout"):
        await NetTransport().exchange(target(up), query(f"{mode}.example."), "udp", 0.3)
    assert time.monotonic() - start >= 0.29  # kept waiting after the bad datagram
    assert mismatches(up) == before + 1


async def test_upstream_that_only_sends_wrong_ids_fails_fast_over_tcp(up: FakeUpstream) -> None:
    start = time.monotonic()
    with pytest.raises(UpstreamError, match="does not match"):
        await NetTransport().exchange(target(up), query("wrongid.x.example."), "udp", 1.0)
    assert time.monotonic() - start < 0.5
    assert [s.proto for s in up.queries("wrongid.x.example.")] == ["udp", "tcp"]


async def test_duplicate_replies_are_delivered_once(up: FakeUpstream) -> None:
    t = NetTransport()
    r = await t.exchange(target(up), query("dup.example."), "udp", 1.0)
    assert r.answer
    r2 = await t.exchange(target(up), query("ok.after-dup.example."), "udp", 1.0)
    assert r2.question[0].name.to_text() == "ok.after-dup.example."


async def test_every_query_gets_a_fresh_random_port_and_id(up: FakeUpstream) -> None:
    up.clear()
    t = NetTransport()
    n = 400
    for batch in range(0, n, 40):  # batches: the fake upstream's socket buffer is small
        await asyncio.gather(*(t.exchange(target(up), query(f"ok.r{i}.example."), "udp", 2.0)
                               for i in range(batch, batch + 40)))
    seen = up.queries()
    assert len(seen) == n
    lo, hi = PORT_RANGE
    ports = {s.src[1] for s in seen}
    ids = {s.id for s in seen}
    assert all(lo <= p <= hi for p in ports)
    # Uniform draws: 400 of 65536 IDs collide ~1.2 times on average; sequential ports or IDs, or
    # one pooled socket, would fail these bounds.
    assert len(ids) >= n - 10
    assert len(ports) >= n - 40
    assert not _is_sequential(sorted(s.id for s in seen))


def _is_sequential(ids: list[int]) -> bool:
    return sum(1 for a, b in itertools.pairwise(ids) if b - a == 1) > len(ids) // 4


async def test_closed_port_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(UpstreamError):
        await NetTransport().exchange(Upstream("127.0.0.1", free_port()), query("a.example."),
                                      "udp", 2.0)
    assert time.monotonic() - start < 0.5


async def test_tcp_connections_are_pooled_and_expire(up: FakeUpstream) -> None:
    t = NetTransport(expire=0.3)
    up.clear()
    label = f"127.0.0.1:{up.port}"
    hits0 = CONN_CACHE_HITS.labels("forward", label, "tcp")._value.get()
    misses0 = CONN_CACHE_MISSES.labels("forward", label, "tcp")._value.get()
    for i in range(3):
        r = await t.exchange(target(up), query(f"ok.tcp{i}.example."), "tcp", 1.0)
        assert r.answer
    ports = {s.src[1] for s in up.queries() if s.proto == "tcp"}
    assert len(ports) == 1  # one connection reused
    assert t.pooled(target(up)) == 1
    assert CONN_CACHE_HITS.labels("forward", label, "tcp")._value.get() == hits0 + 2
    assert CONN_CACHE_MISSES.labels("forward", label, "tcp")._value.get() == misses0 + 1
    await asyncio.sleep(0.4)
    await t.exchange(target(up), query("ok.tcp-late.example."), "tcp", 1.0)
    ports = {s.src[1] for s in up.queries() if s.proto == "tcp"}
    assert len(ports) == 2  # the idle one expired; a new connection was dialled
    await t.close()


async def test_tcp_close_mid_message_is_an_error(up: FakeUpstream) -> None:
    with pytest.raises(UpstreamError, match="closed mid-message"):
        await NetTransport().exchange(target(up), query("tcpclose.example."), "tcp", 1.0)


async def test_pooled_connection_closed_by_peer_is_replaced(up: FakeUpstream) -> None:
    t = NetTransport()
    await t.exchange(target(up), query("ok.p1.example."), "tcp", 1.0)
    for pool in t._pools.values():  # the peer closes the idle connection
        for conn in pool:
            conn.writer.transport.abort()  # type: ignore[attr-defined]
            conn.writer.close()
    r = await t.exchange(target(up), query("ok.p2.example."), "tcp", 1.0)
    assert r.answer


def test_reply_matching_rules() -> None:
    q = query("Ab.example.")
    qend = question_end(q)
    assert qend is not None
    good = dns.message.make_response(dns.message.from_wire(q)).to_wire()
    assert reply_matches(good, q, qend)
    assert not reply_matches(q, q, qend)  # QR=0
    assert not reply_matches(bytes([good[0] ^ 1]) + good[1:], q, qend)  # ID
    lower = good.replace(b"\x02Ab", b"\x02ab")
    assert not reply_matches(lower, q, qend)  # the exact spelling we sent
    assert not reply_matches(good[:qend - 1], q, qend)
    assert question_end(b"\x00" * 12 + b"\xc0\x0c\x00\x01\x00\x01") is None
    wrong_id = bytes([good[0] ^ 1]) + good[1:]
    assert is_near_miss(wrong_id, q, qend)
    assert not is_near_miss(good, q, qend)  # right ID: a match, not a near miss
    assert not is_near_miss(lower, q, qend)  # another spelling: only ignored
    assert not is_near_miss(bytes([q[0] ^ 1]) + q[1:], q, qend)  # QR=0


async def test_ipv6_upstream() -> None:
    with FakeUpstream(host="::1") as up6:
        t = NetTransport()
        for proto in ("udp", "tcp"):
            r = await t.exchange(Upstream("::1", up6.port), query("ok.v6.example."), proto, 1.0)
            assert r.answer
        assert {s.src[0] for s in up6.queries()} == {"::1"}
        await t.close()


async def test_source_address_is_used_for_udp_and_tcp(up: FakeUpstream) -> None:
    t = NetTransport(source="127.0.0.2")
    await t.exchange(target(up), query("ok.src-udp.example."), "udp", 1.0)
    await t.exchange(target(up), query("ok.src-tcp.example."), "tcp", 1.0)
    assert up.queries("ok.src-udp.example.")[0].src[0] == "127.0.0.2"
    assert up.queries("ok.src-tcp.example.")[0].src[0] == "127.0.0.2"
    await t.close()


async def test_max_age_and_max_idle_limit_the_pool(up: FakeUpstream) -> None:
    t = NetTransport(expire=60, max_age=0.2, max_idle=1)
    await asyncio.gather(*(t.exchange(target(up), query(f"ok.pool{i}.example."), "tcp", 1.0)
                           for i in range(3)))
    assert t.pooled(target(up)) == 1  # three connections were needed; one is kept
    label = f"127.0.0.1:{up.port}"
    hits = CONN_CACHE_HITS.labels("forward", label, "tcp")._value.get()
    misses = CONN_CACHE_MISSES.labels("forward", label, "tcp")._value.get()
    await t.exchange(target(up), query("ok.young.example."), "tcp", 1.0)
    assert CONN_CACHE_HITS.labels("forward", label, "tcp")._value.get() == hits + 1
    await asyncio.sleep(0.3)  # older than max_age, though not idle for expire
    await t.exchange(target(up), query("ok.aged.example."), "tcp", 1.0)
    assert CONN_CACHE_HITS.labels("forward", label, "tcp")._value.get() == hits + 1
    assert CONN_CACHE_MISSES.labels("forward", label, "tcp")._value.get() == misses + 1
    assert t.pooled(target(up)) == 1
    await t.close()


async def test_helper_transport_counts_no_forward_metrics(up: FakeUpstream) -> None:
    label = f"127.0.0.1:{up.port}"
    before = CONN_CACHE_MISSES.labels("forward", label, "udp")._value.get()
    await NetTransport(metrics=False).exchange(target(up), query("ok.quiet.example."), "udp", 1.0)
    assert CONN_CACHE_MISSES.labels("forward", label, "udp")._value.get() == before
    await NetTransport().exchange(target(up), query("ok.loud.example."), "udp", 1.0)
    assert CONN_CACHE_MISSES.labels("forward", label, "udp")._value.get() == before + 1
