"""QueryProcessor (sans-IO): bytes in, bytes out, with fake chains."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset
import pytest

from kdns.chain import Chain, Listener
from kdns.errors import PluginError
from kdns.metrics import ServerStats
from kdns.plugin import Request
from kdns.query import QueryProcessor


class Answer:
    name = "answer"

    def __init__(self, n: int = 1) -> None:
        self.n = n

    async def serve(self, req: Request) -> dns.message.Message:
        r = req.reply(aa=True, by=self.name)
        rrset = dns.rrset.from_text(req.name, 5, "IN", "A",
                                    *[f"10.0.{i // 256}.{i % 256}" for i in range(self.n)])
        r.answer.append(rrset)
        return r


class Boom:
    name = "boom"

    async def serve(self, req: Request) -> dns.message.Message:
        raise RuntimeError("plugin bug")


class Fails:
    name = "fails"

    async def serve(self, req: Request) -> dns.message.Message:
        raise PluginError("upstream down", dns.rcode.SERVFAIL)


def processor(**zones: object) -> tuple[QueryProcessor, ServerStats]:
    lst = Listener("dns", 53)
    for zone, handler in zones.items():
        z = "." if zone == "root" else zone.replace("_", ".") + "."
        lst.zones[z] = Chain((z,), handler, [handler], [handler.name])  # type: ignore[attr-defined]
    stats = ServerStats()
    return QueryProcessor(lst, stats=stats), stats


async def ask(p: QueryProcessor, q: dns.message.Message | bytes, proto: str = "udp") -> (
        dns.message.Message | None):
    wire = q if isinstance(q, bytes) else q.to_wire()
    out = await p.process(wire, ("127.0.0.1", 5555), proto)
    return None if out is None else dns.message.from_wire(out)


async def test_longest_zone_wins_and_refused_outside() -> None:
    p, _ = processor(example_org=Answer(), sub_example_org=Fails())
    r = await ask(p, dns.message.make_query("a.example.org", "A"))
    assert r is not None and r.rcode() == dns.rcode.NOERROR
    r = await ask(p, dns.message.make_query("a.sub.example.org", "A"))
    assert r is not None and r.rcode() == dns.rcode.SERVFAIL
    r = await ask(p, dns.message.make_query("example.com", "A"))
    assert r is not None and r.rcode() == dns.rcode.REFUSED


async def test_root_zone_is_catch_all() -> None:
    p, _ = processor(root=Answer())
    r = await ask(p, dns.message.make_query("anything.test", "A"))
    assert r is not None and r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA


async def test_panic_answers_servfail_and_counts() -> None:
    p, stats = processor(root=Boom())
    q = dns.message.make_query("x.test", "A")
    r = await ask(p, q)
    assert r is not None and r.rcode() == dns.rcode.SERVFAIL and r.id == q.id
    assert stats.panics == 1
    # The next query is still answered.
    assert await ask(p, q) is not None


async def test_silence_for_runts_and_responses() -> None:
    p, _ = processor(root=Answer())
    assert await ask(p, b"\x00\x01\x02") is None
    q = dns.message.make_query("x.test", "A")
    q.flags |= dns.flags.QR
    assert await ask(p, q) is None


@pytest.mark.parametrize("mangle", [
    lambda w: w[:-2],  # truncated question
    lambda w: w + b"\x00junk",  # trailing junk
    lambda w: w[:4] + b"\x00\x02" + w[6:],  # qdcount 2 with one question
])
async def test_formerr_for_malformed(mangle) -> None:  # type: ignore[no-untyped-def]
    p, _ = processor(root=Answer())
    q = dns.message.make_query("x.test", "A", id=4242)
    out = await p.process(mangle(q.to_wire()), ("127.0.0.1", 1), "udp")
    assert out is not None
    qid, flags = struct.unpack_from("!HH", out)
    assert qid == 4242 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR


async def test_notimp_badvers_and_class() -> None:
    p, _ = processor(root=Answer())
    q = dns.message.make_query("x.test", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    r = await ask(p, q)
    assert r is not None and r.rcode() == dns.rcode.NOTIMP and r.opcode() == dns.opcode.NOTIFY
    q = dns.message.make_query("x.test", "A", use_edns=1)
    r = await ask(p, q)
    assert r is not None and r.rcode() == dns.rcode.BADVERS and r.edns == 0
    q = dns.message.make_query("x.test", "A", rdclass="CH")
    r = await ask(p, q)
    assert r is not None and r.rcode() == dns.rcode.REFUSED


async def test_edns_do_cd_and_case_echoed() -> None:
    p, _ = processor(root=Answer())
    q = dns.message.make_query("MiXeD.TeSt", "A", want_dnssec=True, payload=4096)
    q.flags |= dns.flags.CD
    out = await p.process(q.to_wire(), ("127.0.0.1", 1), "udp")
    assert out is not None
    r = dns.message.from_wire(out)
    assert r.flags & dns.flags.CD and r.ednsflags & dns.flags.DO and r.payload == 1232
    assert b"\x05MiXeD\x04TeSt\x00" in out
    assert r.answer[0].name.to_text() == "MiXeD.TeSt."
    # No EDNS in the query, none in the answer.
    r = await ask(p, dns.message.make_query("x.test", "A"))
    assert r is not None and r.edns == -1


@pytest.mark.parametrize("payload,edns,proto,fits", [
    (None, False, "udp", False),   # 512 bytes without EDNS
    (4096, True, "udp", False),    # capped at 1232 whatever the client offers
    (None, False, "tcp", True),
])
async def test_truncation_whole_rrsets_only(payload, edns, proto, fits) -> None:  # type: ignore[no-untyped-def]
    p, _ = processor(root=Answer(n=100))  # 100 A records: ~1.6 KB
    q = dns.message.make_query("big.test", "A", use_edns=0 if edns else None,
                               payload=payload or 1232)
    out = await p.process(q.to_wire(), ("127.0.0.1", 1), proto)
    assert out is not None
    r = dns.message.from_wire(out)
    if fits:
        assert not r.flags & dns.flags.TC and len(r.answer[0]) == 100
    else:
        assert r.flags & dns.flags.TC and r.answer == []  # never a partial RRset
        assert len(out) <= (1232 if edns else 512)


async def test_metrics_counted() -> None:
    p, stats = processor(root=Answer())
    await ask(p, dns.message.make_query("x.test", "AAAA"))
    await ask(p, dns.message.make_query("x.test", "NAPTR"))
    assert stats.requests[("dns://:53", ".", "udp", "1", "AAAA")] == 1
    assert stats.requests[("dns://:53", ".", "udp", "1", "other")] == 1
    assert stats.responses[("dns://:53", ".", "NOERROR", "answer")] == 2
