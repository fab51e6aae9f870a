"""Request.drop(): a chain that asks for silence gets no reply on the wire, never memoized."""

from __future__ import annotations

import dns.message
import dns.rcode

from kdns.chain import Chain, Listener
from kdns.metrics import ServerStats
from kdns.plugin import Request
from kdns.query import QueryProcessor


class DropsSome:
    """Drops queries from 127.9.0.0/16, answers the rest (and says the answer is reusable)."""

    name = "dropsome"

    async def serve(self, req: Request) -> dns.message.Message:
        req.reusable()
        if req.client[0].startswith("127.9."):
            req.drop()
        return req.reply(by=self.name)


def _processor() -> tuple[QueryProcessor, ServerStats]:
    lst = Listener("dns", 53)
    h = DropsSome()
    lst.zones["."] = Chain((".",), h, [h], [h.name])
    stats = ServerStats()
    return QueryProcessor(lst, stats=stats), stats


async def test_dropped_query_gets_no_reply_and_is_not_memoized() -> None:
    p, _ = _processor()
    wire = dns.message.make_query("example.org", "A").to_wire()
    for proto in ("udp", "tcp"):
        assert await p.process(wire, ("127.9.0.1", 5353), proto) is None
        assert p.fast(wire, ("127.9.0.1", 5353), proto) is None
        assert not p.memos[proto].entries
    # The same query from a client that is answered is answered (and then memoized).
    out = await p.process(wire, ("127.0.0.1", 5353), "udp")
    assert out is not None and dns.message.from_wire(out).rcode() == dns.rcode.NOERROR
    assert p.memos["udp"].entries


async def test_dropped_query_is_counted_as_a_request() -> None:
    p, stats = _processor()
    wire = dns.message.make_query("example.org", "A").to_wire()
    await p.process(wire, ("127.9.0.1", 5353), "udp")
    assert sum(stats.requests.values()) == 1
