"""Log behind the sans-IO QueryProcessor: lines come from the reply as rendered (truncation,
crashes), rules are tried in order, and logged answers are never replayed."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rrset
import pytest

from kdns.chain import Chain, Listener
from kdns.metrics import ServerStats
from kdns.plugin import Handler, Request
from kdns.plugins.log import handler as log_handler
from kdns.plugins.log.handler import Log
from kdns.plugins.log.parse import Rule
from kdns.query import QueryProcessor


class Big:
    """50 A records: more than 512 bytes, so a UDP client without EDNS gets TC=1."""

    name = "big"

    async def serve(self, req: Request) -> dns.message.Message:
        r = req.reply(aa=True, by=self.name)
        r.answer = [dns.rrset.from_text(req.name, 60, "IN", "A",
                                        *[f"10.0.0.{i}" for i in range(50)])]
        req.reusable()
        return r


class Crash:
    name = "crash"

    async def serve(self, req: Request) -> dns.message.Message:
        raise RuntimeError("plugin bug")


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    out: list[str] = []
    monkeypatch.setattr(log_handler.WRITER, "put", out.append)
    return out


def processor(handler: Handler) -> QueryProcessor:
    lst = Listener("dns", 53)
    lst.zones["."] = Chain((".",), handler, [handler], [handler.name])
    return QueryProcessor(lst, stats=ServerStats())


FMT = "{name} {rcode} {>rflags} {rsize} {>bufsize}"


async def test_truncated_reply_is_logged_as_sent(lines: list[str]) -> None:
    p = processor(Log(Big(), (Rule(".", FMT),)))
    q = dns.message.make_query("big.example.", "A", use_edns=False)
    out = await p.process(q.to_wire(), ("127.0.0.1", 5353), "udp")
    assert out is not None and len(out) <= 512
    assert lines == [f"big.example. NOERROR qr,aa,tc,rd {len(out)} 512"]


async def test_crash_is_logged_with_its_servfail(lines: list[str]) -> None:
    p = processor(Log(Crash(), (Rule(".", FMT),)))
    q = dns.message.make_query("x.example.", "A", use_edns=0, payload=4096)
    out = await p.process(q.to_wire(), ("127.0.0.1", 5353), "udp")
    assert out is not None and dns.message.from_wire(out).rcode() == dns.rcode.SERVFAIL
    assert lines == [f"x.example. SERVFAIL qr,rd {len(out)} 4096"]


async def test_logged_answers_are_not_replayed(lines: list[str]) -> None:
    p = processor(Log(Big(), (Rule("example.", FMT),)))
    for name in ("a.example.", "a.example.", "a.other.", "a.other.", "a.other."):
        q = dns.message.make_query(name, "A")
        wire = q.to_wire()
        out = p.fast(wire, ("127.0.0.1", 5353), "udp")
        if out is None:
            out = await p.process(wire, ("127.0.0.1", 5353), "udp")
    assert [line.split()[0] for line in lines] == ["a.example.", "a.example."]
    # a.other. matched no rule: its answer was replayed from the fast path after the first.
    assert p.fast(dns.message.make_query("a.other.", "A").to_wire(), ("127.0.0.1", 1),
                  "udp") is not None
    assert p.fast(dns.message.make_query("a.example.", "A").to_wire(), ("127.0.0.1", 1),
                  "udp") is None
