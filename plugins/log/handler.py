"""log handler: times the rest of the chain and writes one line per matching query.

Several ``log`` directives in a block become one handler whose rules are tried in Corefile order;
the first rule whose zone matches decides (CoreDNS's Logger). A query that fails with a plugin
error is logged with the error reply the server will send.
"""

from __future__ import annotations

import asyncio
import time

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kdns.errors import KdnsError, PluginError
from kdns.plugin import Handler, Plugin, Request
from kdns.wire.render import render

from .classify import classify, typify
from .format import LineData, Node, compile_format, render_line
from .parse import Rule
from .writer import WRITER

_RCODE_TEXT = {16: "BADSIG"}  # miekg/dns's name for 16, which CoreDNS prints


class Log(Plugin):
    name = "log"

    def __init__(self, next: Handler, rules: tuple[Rule, ...]) -> None:
        super().__init__(next)
        self.rules = rules
        self._nodes: dict[str, tuple[Node, ...]] = {r.format: compile_format(r.format)
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
        if rule is None:
            return await self.next.serve(req)
        req.not_reusable()  # a fast-path replay would skip this query's log line
        start = time.perf_counter_ns()
        try:
            resp = await self.next.serve(req)
        except KdnsError as e:
            rcode = e.rcode if isinstance(e, PluginError) else dns.rcode.SERVFAIL
            self._log(rule, req, req.reply(rcode), start)
            raise
        self._log(rule, req, resp, start)
        return resp

    def _log(self, rule: Rule, req: Request, resp: dns.message.Message, start: int) -> None:
        elapsed = time.perf_counter_ns() - start
        rtype = ""
        if "all" not in rule.classes:
            rtype = typify(resp)
            if classify(rtype) not in rule.classes and not (
                    rule.min_duration > 0 and elapsed > rule.min_duration * 1e9):
                return
        wire = render(resp, req.max_size)  # what the client receives: size and TC as sent
        if "{/log/" in rule.format:
            rtype = rtype or typify(resp)
            meta = {"log/type": rtype, "log/class": classify(rtype)}
        else:
            meta = {}
        WRITER.put(render_line(self._nodes[rule.format], line_data(req, resp, wire, elapsed,
                                                                   meta)))

    async def stop(self) -> None:
        await asyncio.to_thread(WRITER.flush)  # a blocked stdout must not stall the loop


def line_data(req: Request, resp: dns.message.Message, wire: bytes, elapsed_ns: int,
              meta: dict[str, str]) -> LineData:
    msg = req.msg
    if req.proto == "tcp":
        bufsize = 65535
    else:
        bufsize = max(msg.payload, 512) if req.edns else 512
    rcode = resp.rcode()
    rcode_text = _RCODE_TEXT.get(rcode) or dns.rcode.to_text(rcode)
    return LineData(
        qtype=dns.rdatatype.to_text(req.qtype), name=req.qname,
        qclass=dns.rdataclass.to_text(req.qclass), proto=req.proto,
        size=req.size or len(msg.to_wire()), remote=req.client[0], port=req.client[1],
        local=req.local[0], id=msg.id, opcode=msg.opcode(), do=req.do, bufsize=bufsize,
        rcode=rcode_text, rsize=len(wire), duration_ns=elapsed_ns,
        flags=int.from_bytes(wire[2:4], "big"), metadata=meta,
    )
