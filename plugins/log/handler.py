"""log handler: one line per matching query, written from the reply as the client gets it.

Several ``log`` directives in a block become one handler whose rules are tried in Corefile order;
the first rule whose zone matches decides (CoreDNS's Logger). The line is built when the server
has rendered the reply (``Request.on_reply``): sizes and flags are those sent, a failed query is
logged with its error reply, and nothing is rendered twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kdns.plugin import Handler, Plugin, Request

from .classify import classify, typify
from .format import Getter, LineData, compile_line, render_line
from .parse import Rule
from .writer import WRITER

_RCODE_TEXT = {16: "BADSIG"}  # miekg/dns's name for 16, which CoreDNS prints
_TEXT_CACHE_MAX = 4096
_type_text: dict[int, str] = {}
_class_text: dict[int, str] = {}
_rcode_texts: dict[int, str] = {}


def _cached(cache: dict[int, str], value: int, text: Callable[[int], str]) -> str:
    """Enum text costs microseconds in dnspython; these values repeat on every query."""
    t = cache.get(value)
    if t is None:
        t = text(value)
        if len(cache) < _TEXT_CACHE_MAX:
            cache[value] = t
    return t


def _rdtype_text(value: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType(value))


def _rdclass_text(value: int) -> str:
    return dns.rdataclass.to_text(dns.rdataclass.RdataClass(value))


def _rcode_text(rcode: int) -> str:
    return _RCODE_TEXT.get(rcode) or dns.rcode.to_text(dns.rcode.Rcode(rcode))


class Log(Plugin):
    name = "log"

    def __init__(self, next: Handler, rules: tuple[Rule, ...]) -> None:
        super().__init__(next)
        self.rules = rules
        self._lines: dict[str, tuple[str | Getter, ...]] = {r.format: compile_line(r.format)
                                                            for r in rules}

    @classmethod
    def link(cls, next: Handler, rules: tuple[Rule, ...]) -> Log:
        """Merge with a directly following ``log`` so rules act as one ordered list."""
        if isinstance(next, Log):
            return cls(next.next, rules + next.rules)
        return cls(next, rules)

    def match(self, qname: str) -> Rule | None:
        for rule in self.rules:
            z = rule.zone
            if z == "." or qname == z or qname.endswith("." + z):
                return rule
        return None

    async def serve(self, req: Request) -> dns.message.Message:
        rule = self.match(req.qname)
        if rule is not None:
            req.not_reusable()  # a fast-path replay would skip this query's log line
            req.on_reply = partial(self._log, rule, req, time.perf_counter_ns())
        return await self.next.serve(req)

    def _log(self, rule: Rule, req: Request, start: int, resp: dns.message.Message,
             wire: bytes) -> None:
        """Called by the server with the reply as sent (error replies and truncation included)."""
        elapsed = time.perf_counter_ns() - start
        rtype = ""
        if "all" not in rule.classes:
            rtype = typify(resp)
            if classify(rtype) not in rule.classes and not (
                    rule.min_duration > 0 and elapsed > rule.min_duration * 1e9):
                return
        meta = {}
        if "{/log/" in rule.format:
            rtype = rtype or typify(resp)
            meta = {"log/type": rtype, "log/class": classify(rtype)}
        data = line_data(req, resp, wire, elapsed, meta)
        WRITER.put(render_line(self._lines[rule.format], data))

    async def stop(self) -> None:
        await asyncio.to_thread(WRITER.flush)  # a blocked stdout must not stall the loop


def line_data(req: Request, resp: dns.message.Message, wire: bytes, elapsed_ns: int,
              meta: dict[str, str]) -> LineData:
    msg = req.msg
    if req.proto == "tcp":
        bufsize = 65535
    else:
        bufsize = max(msg.payload, 512) if req.edns else 512
    return LineData(
        qtype=_cached(_type_text, req.qtype, _rdtype_text),
        name=req.qname, qclass=_cached(_class_text, req.qclass, _rdclass_text),
        proto=req.proto,
        size=req.size or len(msg.to_wire()), remote=req.client[0], port=req.client[1],
        local=req.local[0], id=msg.id, opcode=msg.opcode(), do=req.do, bufsize=bufsize,
        rcode=_cached(_rcode_texts, resp.rcode(), _rcode_text), rsize=len(wire),
        duration_ns=elapsed_ns, flags=int.from_bytes(wire[2:4], "big"), metadata=meta,
    )
