"""Query processing, sans-IO: wire bytes in, wire bytes (or silence) out.

The server's listeners call ``QueryProcessor.process``; this module never touches a socket.
Edges (RFC 1035/6891/7766, reliability.md §4): silence for runts and QR=1 packets; FORMERR for
malformed queries whose header can be answered; NOTIMP for opcodes other than QUERY; BADVERS for
EDNS version > 0; REFUSED outside every zone; SERVFAIL, counted as a panic, when a plugin raises.
"""

from __future__ import annotations

import logging
import struct
import time
import traceback
from collections.abc import Callable
from time import monotonic

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rrset

from kdns.chain import Listener
from kdns.errors import KdnsError, PluginError
from kdns.metrics import (
    FIRST_TIME_BUCKET,
    STATS,
    FastSlot,
    ServerStats,
    rcode_label,
    type_label,
)
from kdns.plugin import DEFAULT_EDNS_PAYLOAD, Request
from kdns.wire.fastpath import Entry, Memo, countdown_deadline
from kdns.wire.message import opt_rrset, parse_query
from kdns.wire.render import render

log = logging.getLogger("kdns.core")

_QR = 0x8000
_OPCODE_MASK = 0x7800


class LogLimiter:
    """At most one line per ``interval`` seconds per error kind: a query that triggers a plugin
    bug can be repeated by anyone, and must not flood the logs (reliability.md section 7)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, kind: str) -> int | None:
        """None to stay quiet, else the number of lines suppressed since the last one."""
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval) < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        if len(self._last) > 1000:  # bounded: kinds are exception types, but be sure
            self._last.clear()
            self._suppressed.clear()
        self._last[kind] = now
        return self._suppressed.pop(kind, 0)


_LOG_LIMIT = LogLimiter()


def _suppressed_note(n: int) -> str:
    return f" ({n} similar suppressed)" if n else ""


def header_reply(wire: bytes, rcode: int) -> bytes:
    """A header-only reply (no question) for queries that could not be parsed."""
    qid, flags = struct.unpack_from("!HH", wire)
    flags = _QR | (flags & (_OPCODE_MASK | dns.flags.RD)) | (rcode & 0xF)
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


class QueryProcessor:
    """Answers queries for one listener; ``listener`` is swapped on reload."""

    def __init__(self, listener: Listener, *, max_udp_size: int = DEFAULT_EDNS_PAYLOAD,
                 stats: ServerStats = STATS, clock: Callable[[], float] = monotonic) -> None:
        self.listener = listener
        self.clock = clock  # the plugins' clock too: replay deadlines are in its time
        self.max_udp_size = max_udp_size
        self.stats = stats
        self.server = listener.server_label
        self.memos = {"udp": Memo(), "tcp": Memo()}

    def clear_memo(self) -> None:
        for memo in self.memos.values():
            memo.clear()

    def fast(self, wire: bytes, client: tuple[str, int], proto: str) -> bytes | None:
        """The reply from the fast path, or None to take the slow path (``process``).

        ``client`` is the address as the socket reports it (IPv4 clients of a dual-stack socket
        appear as ::ffff:a.b.c.d)."""
        start = self.clock()
        hit = self.memos[proto].lookup(wire, start)
        if hit is None:
            return None
        out, e = hit
        slot: FastSlot = e.slot
        host = client[0]
        slot.n[2 if ":" in host and not host.startswith("::ffff:") else 1] += 1
        took = self.clock() - start
        if took <= FIRST_TIME_BUCKET:  # nearly always: no histogram call
            slot.quick += 1
            slot.quick_total += took
        else:
            slot.duration.observe(took)
        return out

    async def process(self, wire: bytes, client: tuple[str, int], proto: str,
                      local: tuple[str, int] = ("", 0)) -> bytes | None:
        """The reply to ``wire``, or None when the right answer is silence."""
        start = time.monotonic()
        if len(wire) < 12 or wire[2] & 0x80:
            return None
        try:
            msg = parse_query(wire)
        except dns.message.BadEDNS:
            return header_reply(wire, dns.rcode.FORMERR)
        except Exception:  # any parse failure of a query we can answer is FORMERR
            # An opcode we do not implement is NOTIMP even when its body does not parse (an
            # UPDATE's zone section is not a question): miekg/dns decides on the header alone.
            opcode = (wire[2] >> 3) & 0x0F
            return header_reply(wire, dns.rcode.NOTIMP if opcode else dns.rcode.FORMERR)
        if msg.opcode() != dns.opcode.QUERY:
            return self._early(msg, wire, client, proto, dns.rcode.NOTIMP, start)
        if len(msg.question) != 1 or msg.answer or msg.authority:
            return self._early(msg, wire, client, proto, dns.rcode.FORMERR, start)
        if msg.edns > 0:
            return self._early(msg, wire, client, proto, dns.rcode.BADVERS, start)
        q = msg.question[0]
        if q.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY) and not self._other_classes():
            return self._early(msg, wire, client, proto, dns.rcode.REFUSED, start)
        udp_size = 512
        if msg.edns == 0:
            udp_size = min(max(msg.payload, 512), self.max_udp_size)
        req = Request(msg, client, proto, local=local, server=self.server, size=len(wire),
                      udp_size=udp_size)
        routed = self.listener.route(req.qname)
        if routed is None or routed[1].handler is None:
            return self._early(msg, wire, client, proto, dns.rcode.REFUSED, start, req=req)
        req.zone, chain = routed
        assert chain.handler is not None
        try:
            resp = await chain.handler.serve(req)
        except PluginError as e:
            resp = req.reply(e.rcode)
            req.answered_by = ""
            req.no_memo = True  # an error is never replayed, whatever was declared before it
        except KdnsError:
            resp = req.reply(dns.rcode.SERVFAIL)
            req.no_memo = True
        except Exception as e:  # a plugin bug answers SERVFAIL for this query only
            req.no_memo = True
            self.stats.panics += 1
            n = _LOG_LIMIT.allow(f"panic {type(e).__name__}")
            if n is not None:
                log.error("Recovered from panic in server: %r %s%s", e,
                          traceback.format_exc(limit=-3).replace("\n", " | "),
                          _suppressed_note(n))
            resp = req.reply(dns.rcode.SERVFAIL)
            req.answered_by = ""
        if req.dropped:
            # No reply at all. Counted as CoreDNS's metrics plugin counts a handler that wrote
            # nothing: a request with rcode NOERROR and no response size.
            self._count(req, dns.rcode.NOERROR, -1, start)
            return None
        try:
            out = render(resp, req.max_size)
        except Exception as e:  # a plugin built a reply that cannot be rendered
            self.stats.panics += 1
            n = _LOG_LIMIT.allow(f"render {type(e).__name__}")
            if n is not None:
                log.error("Recovered from panic in server: cannot render reply: %r%s", e,
                          _suppressed_note(n))
            resp = req.reply(dns.rcode.SERVFAIL)
            req.no_memo = True
            out = render(resp, req.max_size)
        if req.on_reply is not None:
            try:
                req.on_reply(resp, out)
            except Exception as e:  # an observer's bug must not cost the client its answer
                n = _LOG_LIMIT.allow(f"on_reply {type(e).__name__}")
                if n is not None:
                    log.error("on_reply callback failed: %r%s", e, _suppressed_note(n))
        rcode = resp.rcode()
        if req.memo_deps is not None and not req.no_memo:
            self._remember(wire, out, req, rcode)
        self._count(req, rcode, len(out), start)
        return out

    def _remember(self, wire: bytes, out: bytes, req: Request, rcode: int) -> None:
        rotate = None
        if req.memo_rotate:
            rotate = answer_rotation(out)
            if rotate is None:
                return
        assert req.memo_deps is not None
        until = req.memo_until
        ttl_orig, ttl_since = -1, 0.0
        if req.memo_countdown is not None:
            ttl_since, ttl_orig = req.memo_countdown
            until = min(until, countdown_deadline(ttl_since, ttl_orig))
        if until <= self.clock():
            return
        slot = self.stats.fast_slot(self.server, req.zone, req.proto, type_label(req.qtype),
                                    rcode_label(rcode), req.answered_by, req.size, len(out),
                                    req.do)
        if slot is None:
            return
        entry = Entry(b"", b"", tuple(req.memo_deps), until, rotate, zone=req.zone,
                      rcode=rcode, plugin=req.answered_by, qtype=req.qtype, ttl_orig=ttl_orig,
                      ttl_since=ttl_since, tallies=req.memo_tallies, slot=slot)
        self.memos[req.proto].store(wire, out, entry)

    def _other_classes(self) -> bool:
        # CoreDNS lets non-IN classes through only when a chain could forward them.
        return any("forward" in c.names for c in self.listener.zones.values())

    def _early(self, msg: dns.message.Message, wire: bytes, client: tuple[str, int], proto: str,
               rcode: int, start: float, req: Request | None = None) -> bytes:
        """Replies the server writes itself (no chain ran), counted with zone="dropped"."""
        r = dns.message.Message(id=msg.id)
        r.flags = dns.flags.QR | (msg.flags & (dns.flags.RD | dns.flags.CD))
        r.flags |= msg.flags & _OPCODE_MASK
        r.question = [dns.rrset.RRset(q.name, q.rdclass, q.rdtype) for q in msg.question[:1]]
        if msg.edns >= 0:
            r.opt = opt_rrset(msg.ednsflags & dns.flags.DO, DEFAULT_EDNS_PAYLOAD)
        r.set_rcode(dns.rcode.Rcode(rcode))
        max_size = 65535 if proto == "tcp" else (
            min(max(msg.payload, 512), self.max_udp_size) if msg.edns >= 0 else 512)
        out = render(r, max_size)
        qtype = msg.question[0].rdtype if msg.question else 0
        fam = "2" if ":" in client[0] else "1"
        self.stats.record(self.server, "dropped", proto, fam, type_label(qtype),
                          rcode_label(rcode), "", len(wire), len(out),
                          time.monotonic() - start, False)
        return out

    def _count(self, req: Request, rcode: int, size: int, start: float) -> None:
        fam = "2" if ":" in req.client[0] else "1"
        self.stats.record(self.server, req.zone, req.proto, fam, type_label(req.qtype),
                          rcode_label(rcode), req.answered_by, req.size, size,
                          time.monotonic() - start, req.do)


def answer_rotation(reply: bytes) -> tuple[int, int, int] | None:
    """(offset in the tail, record size, count) when the answer section is one A or AAAA RRset
    whose owner is a pointer into the question, so that replay can rotate it as loadbalance does;
    else None. Other answers must not rotate: a CNAME must stay first, and a pointer to a name
    inside the rotated records would end up pointing forward (a malformed reply)."""
    qend = question_end_of_reply(reply)
    count = (reply[6] << 8) | reply[7]
    if not qend or count < 2 or qend + 12 > len(reply):
        return None
    head = reply[qend:qend + 4]  # owner pointer + type, identical for every record
    if head[0] & 0xC0 != 0xC0 or ((head[0] & 0x3F) << 8 | head[1]) >= qend:
        return None
    if head[2:4] not in (b"\x00\x01", b"\x00\x1c"):
        return None
    pos, size = qend, 0
    for _ in range(count):
        if pos + 12 > len(reply) or reply[pos:pos + 4] != head:
            return None
        rr = 12 + ((reply[pos + 10] << 8) | reply[pos + 11])
        if size and rr != size:
            return None
        size = rr
        pos += rr
    return 0, size, count


def question_end_of_reply(reply: bytes) -> int:
    pos = 12
    while pos < len(reply):
        n = reply[pos]
        if n == 0:
            return pos + 5
        if n > 63:
            return 0
        pos += n + 1
    return 0
