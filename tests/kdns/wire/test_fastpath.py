"""The fast path must give byte-identical answers to the slow path (differential test)."""

from __future__ import annotations

import os
import random
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rrset

from kdns.chain import Chain, Listener
from kdns.metrics import ServerStats
from kdns.plugin import Request
from kdns.query import QueryProcessor, answer_rotation
from kdns.wire.fastpath import Memo, Version, question_end

ZONE_NAMES = [f"svc{i}.ns{i % 7}.svc.cluster.local." for i in range(50)]


class Table:
    """A deterministic authoritative plugin that opts in to reuse."""

    name = "table"

    def __init__(self) -> None:
        self.version = Version()
        self.data = {n: [f"10.0.{i}.{j}" for j in range(1 + i % 4)]
                     for i, n in enumerate(ZONE_NAMES)}
        self._rdatas: dict[tuple[str, ...], list[dns.rdata.Rdata]] = {}

    async def serve(self, req: Request) -> dns.message.Message:
        req.reusable(self.version)
        addrs = self.data.get(req.qname)
        if addrs is None:
            r = req.reply(dns.rcode.NXDOMAIN, aa=True, by=self.name)
            r.authority.append(dns.rrset.from_text(
                "cluster.local.", 5, "IN", "SOA",
                "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"))
            return r
        r = req.reply(aa=True, by=self.name)
        if req.qtype == 1:
            rdatas = self._rdatas.get(tuple(addrs))
            if rdatas is None:
                rdatas = self._rdatas[tuple(addrs)] = list(
                    dns.rrset.from_text("x.", 5, "IN", "A", *addrs))
            r.answer.append(dns.rrset.from_rdata_list(req.name, 5, rdatas))
        return r


def make(table: Table) -> QueryProcessor:
    lst = Listener("dns", 53)
    lst.zones["cluster.local."] = Chain(("cluster.local.",), table, [table], ["table"])
    return QueryProcessor(lst, stats=ServerStats())


def random_query(rng: random.Random, extra: int = 0) -> bytes:
    """A query built byte by byte (dnspython is too slow to make 100,000 of them); ``extra``
    adds that many more names that do not exist."""
    name = rng.choice([*ZONE_NAMES, "nope.cluster.local.", "x.svc.cluster.local."])
    if extra and rng.random() < 0.3:
        name = f"x{rng.randrange(extra)}.svc.cluster.local."
    name = "".join(c.upper() if rng.random() < 0.3 else c for c in name)  # 0x20
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")[:-1])
    flags = 0x0100 if rng.random() < 0.7 else 0  # RD
    if rng.random() < 0.2:
        flags |= 0x0010  # CD
    edns = rng.random() < 0.5
    header = struct.pack("!HHHHHH", rng.randrange(65536), flags, 1, 0, 0, 1 if edns else 0)
    question = qname + b"\x00" + struct.pack("!HH", rng.choice([1, 28, 33]), 1)
    opt = b""
    if edns:
        do = 0x8000 if rng.random() < 0.5 else 0
        opt = b"\x00" + struct.pack("!HHBBHH", 41, rng.choice([512, 1232, 4096]), 0, 0, do, 0)
    return header + question + opt


async def test_differential_fast_equals_slow() -> None:
    """N generated queries (KDNS_DIFF_QUERIES, default 100,000): every fast-path reply equals
    the reply a fresh slow path builds for the same bytes."""
    rng = random.Random(20261126)
    table = Table()
    warm, cold = make(table), make(table)
    n = int(os.environ.get("KDNS_DIFF_QUERIES", "100000"))
    reference: dict[bytes, bytes] = {}
    fast_hits = 0
    for i in range(n):
        wire = random_query(rng)
        if i % 20000 == 19999:
            table.data[ZONE_NAMES[i % 50]].append(f"10.9.{i % 250}.1")
            table.version.bump()  # a watch event: every dependent entry must go
            reference.clear()
        got = warm.fast(wire, ("127.0.0.1", 1), "udp")
        if got is None:
            got = await warm.process(wire, ("127.0.0.1", 1), "udp")
        else:
            fast_hits += 1
        # The reference differs from any cached reply only in ID and question case.
        ref_key = wire[2:12] + wire[12:].lower()
        ref = reference.get(ref_key)
        if ref is None:
            ref = await cold.process(wire, ("127.0.0.1", 1), "udp")
            assert ref is not None
            reference[ref_key] = ref
        qend = question_end(wire)
        expect = wire[:2] + ref[2:12] + wire[12:qend] + ref[qend:]
        assert got == expect, f"query {i} differs"
    assert fast_hits > n * 0.6


async def test_no_reuse_without_opt_in_or_with_opt_out() -> None:
    class Whoami(Table):
        async def serve(self, req: Request) -> dns.message.Message:
            r = await super().serve(req)
            req.not_reusable()
            return r

    p = make(Whoami())
    wire = dns.message.make_query(ZONE_NAMES[0], "A").to_wire()
    await p.process(wire, ("127.0.0.1", 1), "udp")
    assert p.fast(wire, ("127.0.0.1", 1), "udp") is None


def test_question_end_rejects_unusual_queries() -> None:
    plain = dns.message.make_query("a.example", "A").to_wire()
    assert question_end(plain) == len(plain)
    edns = dns.message.make_query("a.example", "A", use_edns=0).to_wire()
    assert question_end(edns) == len(edns) - 11
    cookie = dns.message.make_query("a.example", "A", use_edns=0,
                                    options=[dns.edns.GenericOption(10, b"12345678")]).to_wire()
    assert question_end(cookie) == 0
    assert question_end(plain[:-1]) == 0
    assert question_end(b"\x00" * 11) == 0
    notify = bytearray(plain)
    notify[2] |= 0x20
    assert question_end(bytes(notify)) == 0


def test_memo_is_bounded() -> None:
    memo = Memo(max_entries=10)
    from kdns.wire.fastpath import Entry

    for i in range(25):
        wire = dns.message.make_query(f"n{i}.example", "A").to_wire()
        memo.store(wire, wire, Entry(b"", b"", (), float("inf")))
        assert len(memo.entries) <= 10


def test_rotation_replays_like_loadbalance() -> None:
    q = dns.message.make_query("a.example", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("a.example.", 5, "IN", "A", "1.1.1.1", "2.2.2.2",
                                        "3.3.3.3"))
    wire = r.to_wire()
    assert answer_rotation(wire) == (0, 16, 3)
    memo = Memo()
    from kdns.wire.fastpath import Entry

    memo.store(q.to_wire(), wire, Entry(b"", b"", (), float("inf"), answer_rotation(wire)))
    orders = []
    for _ in range(3):
        hit = memo.lookup(q.to_wire(), 0.0)
        assert hit is not None
        orders.append([rd.address for rd in dns.message.from_wire(hit[0]).answer[0]])
    first = orders[0]
    assert orders == [first, first[1:] + first[:1], first[2:] + first[:2]]


# --- the stock chain's shape: loadbalance -> cache -> an authoritative plugin ----------------

class Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


class Authority(Table):
    """Like Table, with per-name TTLs (1-40 s, so cache caps and expiry both happen) and an
    SOA on NXDOMAIN and NODATA (so the cache stores denials too)."""

    async def serve(self, req: Request) -> dns.message.Message:
        req.reusable(self.version)
        addrs = self.data.get(req.qname)
        ttl = 1 + sum(req.qname.encode()) % 40
        if addrs is None or req.qtype != 1:
            r = req.reply(dns.rcode.NXDOMAIN if addrs is None else dns.rcode.NOERROR, aa=True,
                          by=self.name)
            r.authority.append(dns.rrset.from_text(
                "cluster.local.", ttl, "IN", "SOA",
                f"ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 {ttl}"))
            return r
        r = req.reply(aa=True, by=self.name)
        r.answer.append(dns.rrset.from_text(req.name, ttl, "IN", "A", *addrs))
        return r


def stock_like(clock: Clock, stats: ServerStats) -> tuple[QueryProcessor, QueryProcessor,
                                                          Authority, object]:
    from kdns.plugins.cache.handler import Cache
    from kdns.plugins.cache.parse import CacheConfig
    from kdns.plugins.loadbalance.handler import LoadBalance
    from kdns.plugins.loadbalance.parse import LoadBalanceConfig

    table = Authority()
    # The smallest capacity (4 entries per shard): evictions of fresh entries happen.
    cache = Cache(table, CacheConfig(zones=(".",), success_ttl=30, denial_ttl=30,
                                     success_capacity=1024, denial_capacity=1024),
                  f"dns://:{random.randrange(1 << 30)}", clock)
    lb = LoadBalance(cache, LoadBalanceConfig())
    lst = Listener("dns", 53)
    lst.zones["."] = Chain((".",), lb, [lb, cache, table], ["loadbalance", "cache", "table"])
    warm = QueryProcessor(lst, stats=stats, clock=clock)
    reference = QueryProcessor(lst, stats=ServerStats(), clock=clock)
    return warm, reference, table, cache


def canonical(reply: bytes) -> bytes:
    """``reply`` with a rotatable answer section in sorted order (loadbalance shuffles the slow
    path's answers and rotates replays: both are correct, so order is compared separately)."""
    rot = answer_rotation(reply)
    if rot is None:
        return reply
    from kdns.query import question_end_of_reply

    qend = question_end_of_reply(reply)
    _, size, count = rot
    rrs = sorted(reply[qend + i * size:qend + (i + 1) * size] for i in range(count))
    return reply[:qend] + b"".join(rrs) + reply[qend + size * count:]


async def test_differential_cache_chain_with_countdown_and_rotation() -> None:
    """Through loadbalance and cache with a fake clock that moves 0-2 ms per query: every
    fast-path reply (TTLs counting down, entries expiring, evicted, replaced) equals what the
    slow path answers at that moment, and replays are counted in the server's and the cache's
    metrics."""
    from kdns.metrics import ServerStatsCollector

    rng = random.Random(7)
    clock = Clock()
    stats = ServerStats()
    warm, reference, table, cache = stock_like(clock, stats)
    n = int(os.environ.get("KDNS_DIFF_QUERIES", "100000")) // 5  # each runs the slow path too
    fast_hits = 0
    countdown_hits = 0
    for i in range(n):
        clock.t += rng.random() * 0.002
        if i % 10000 == 9999:
            table.data[ZONE_NAMES[i % 50]].append(f"10.9.{i % 250}.1")
            table.version.bump()  # the cache keeps serving what it has, on both paths
        wire = random_query(rng, extra=200)
        got = warm.fast(wire, ("127.0.0.1", 1), "udp")
        if got is None:
            got = await warm.process(wire, ("127.0.0.1", 1), "udp")
        else:
            fast_hits += 1
            entry = warm.memos["udp"].entries[wire[2:].lower()]
            countdown_hits += entry.ttl_orig >= 0 and clock.t - entry.ttl_since >= 1
        ref = await reference.process(wire, ("127.0.0.1", 1), "udp")
        assert got is not None and ref is not None
        qend = question_end(wire)
        assert got[:qend] == ref[:qend], f"query {i}: header or question differs"
        assert canonical(got) == canonical(ref), f"query {i} differs"
    assert fast_hits > n * 0.3
    assert countdown_hits > n * 0.2  # replays with TTLs patched below the stored value
    # Every query counted once by the server, replays included.
    families = list(ServerStatsCollector(stats).collect())
    totals = {m.name: sum(s.value for s in m.samples) for m in families}
    assert totals["coredns_dns_requests"] == n
    assert totals["coredns_dns_responses"] == n
    counts = {s.name: s.value for m in families for s in m.samples if s.name.endswith("_count")}
    assert counts == {"coredns_dns_request_duration_seconds_count": n,
                      "coredns_dns_request_size_bytes_count": n,
                      "coredns_dns_response_size_bytes_count": n}
    # Each query passed the cache once on each processor: 2n cache requests in all.
    cache.count_replays()  # type: ignore[attr-defined]
    assert cache.metrics.requests._value.get() == 2 * n  # type: ignore[attr-defined]
    hits = sum(h._value.get() for h in cache.metrics.hits.values())  # type: ignore[attr-defined]
    misses = cache.metrics.misses._value.get()  # type: ignore[attr-defined]
    assert hits + misses == 2 * n


def test_memo_key_is_exact_for_letters_outside_the_name() -> None:
    """The key lower-cases the whole query; a query with ASCII letters outside its name (type
    97 = 0x0061 would share a key with type 65 = 0x0041 HTTPS) is never stored."""
    from kdns.wire.fastpath import Entry

    memo = Memo()
    q97 = dns.message.make_query("a.example", 97).to_wire()
    q65 = dns.message.make_query("a.example", 65).to_wire()
    assert q97[2:].lower() == q65[2:].lower()
    assert not memo.store(q97, q97, Entry(b"", b"", (), float("inf")))
    assert memo.lookup(q65, 0.0) is None
    plain = dns.message.make_query("A.Example", "AAAA").to_wire()
    assert memo.store(plain, plain, Entry(b"", b"", (), float("inf")))
    other_case = dns.message.make_query("a.EXAMPLE", "AAAA").to_wire()
    assert memo.lookup(other_case, 0.0) is not None
