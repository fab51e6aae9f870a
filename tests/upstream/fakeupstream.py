"""A fault-injecting upstream DNS server (UDP + TCP on one 127.0.0.1 port) for forward/cache tests.

It runs its own asyncio loop in a background thread, so synchronous tests can start it, point a
real kdns process at it, and change its behaviour between queries. The behaviour for a query is
chosen by the first label of the name (``<mode>[-arg[-arg]]``), or for every query by ``mode``
(an upstream-wide outage such as ``blackhole``):

=================  ==============================================================================
``ok`` (default)   A 192.0.2.1 (AAAA 2001:db8::1), TTL ``ttl`` (300)
``ttl-N``          A 192.0.2.1 with TTL N
``delay-MS``       answer after MS milliseconds
``blackhole``      never answer
``servfail``       SERVFAIL; ``refused``: REFUSED
``nxdomain-T-M``   NXDOMAIN with SOA TTL T and MINIMUM M; ``nodata-T-M``: NOERROR/NODATA likewise
``nxnosoa``        NXDOMAIN without an SOA; ``nodatanosoa``: empty NOERROR without an SOA
``tc``             UDP: TC=1 and no records; TCP: the full answer
``big-N``          N A records, sent whole over UDP even without EDNS (oversize)
``wrongid``        only a reply with the wrong ID; ``wrongq``: only one with another question
``garbage``        only random bytes; ``qr0``: only a copy of the query (QR=0)
``dup``            the genuine reply three times
``spoof-N``        N forged datagrams (wrong ID, wrong name/type/class, QR=0, garbage, from
                   another port) to the query's source, then the genuine reply
``spoofq-N``       the same without the wrong-ID kind (only datagrams a client must ignore)
``poison``         the genuine A plus forged records for other names in authority/additional
``tcpclose``       TCP: close after half a message; UDP: TC=1 (so the client must use TCP)
``cname-N``        a CNAME chain of N hops ending in an A record
=================  ==============================================================================
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.kdnsproc import free_port


@dataclass(frozen=True)
class Seen:
    proto: str
    src: tuple[str, int]
    id: int
    qname: str  # exact spelling, as received
    qtype: str
    flags: int
    edns: int
    at: float


class FakeUpstream:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self._auto_port = port is None
        self.port = port or free_port()
        self.mode = ""  # upstream-wide override, e.g. "blackhole", "servfail"
        self.ttl = 300
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._spoofer: socket.socket | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        self._thread.start()
        for attempt in range(3):
            try:
                asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
                return self
            except OSError:  # the free port was taken meanwhile: try another one
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
                if not self._auto_port or attempt == 2:
                    raise
                self.port = free_port()
        return self

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, self.port))
        self._tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._spoofer = socket.socket(family, socket.SOCK_DGRAM)
        self._spoofer.bind((self.host, 0))

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        if self._spoofer is not None:
            self._spoofer.close()
            self._spoofer = None

    def stop(self) -> None:
        async def _stop() -> None:
            await self._close()
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # --- inspection ---------------------------------------------------------------------
    def queries(self, qname: str | None = None, qtype: str | None = None) -> list[Seen]:
        """Queries received, optionally for one name (case-insensitive) and type."""
        with self._lock:
            out = list(self.seen)
        if qname is not None:
            want = qname.lower().rstrip(".") + "."
            out = [s for s in out if s.qname.lower() == want]
        if qtype is not None:
            out = [s for s in out if s.qtype == qtype]
        return out

    def count(self, qname: str, qtype: str | None = None) -> int:
        return len(self.queries(qname, qtype))

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def type_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(s.qtype for s in self.seen)

    # --- answering ----------------------------------------------------------------------
    def _record(self, proto: str, src: tuple[str, int], q: dns.message.Message) -> None:
        question = q.question[0]
        seen = Seen(proto, src, q.id, question.name.to_text(),
                    dns.rdatatype.to_text(question.rdtype), q.flags, q.edns, time.monotonic())
        with self._lock:
            self.seen.append(seen)

    def _mode_of(self, q: dns.message.Message) -> tuple[str, list[str]]:
        if self.mode:
            parts = self.mode.split("-")
        else:
            first = q.question[0].name.labels[0].decode(errors="replace").lower() \
                if q.question[0].name.labels else ""
            parts = first.split("-")
        return parts[0], parts[1:]

    def _answer(self, q: dns.message.Message, proto: str) -> list[bytes] | None:
        """The datagrams/messages to send back (None: stay silent)."""
        mode, args = self._mode_of(q)
        question = q.question[0]
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA
        name, rdtype = question.name, question.rdtype
        if mode == "blackhole":
            return None
        if mode == "servfail":
            r.set_rcode(dns.rcode.SERVFAIL)
        elif mode == "refused":
            r.set_rcode(dns.rcode.REFUSED)
        elif mode in ("nxdomain", "nodata"):
            soa_ttl, minimum = (int(args[0]), int(args[1])) if len(args) >= 2 else (300, 60)
            if mode == "nxdomain":
                r.set_rcode(dns.rcode.NXDOMAIN)
            zone = name.parent() if len(name) > 1 else name
            r.authority.append(dns.rrset.from_text(
                zone, soa_ttl, "IN", "SOA", f"ns.{zone} host.{zone} 1 3600 900 604800 {minimum}"))
        elif mode == "nxnosoa":
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif mode == "nodatanosoa":
            pass
        elif mode in ("tc", "tcpclose") and proto == "udp":
            r.flags |= dns.flags.TC
        elif mode == "big":
            count = int(args[0]) if args else 100
            rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.A)
            rrset.update_ttl(self.ttl)
            for i in range(count):
                rrset.add(dns.rdata.from_text("IN", "A", f"10.{i // 65536 % 256}.{i // 256 % 256}."
                                                     f"{i % 256}"))
            r.answer.append(rrset)
            return [r.to_wire(max_size=65535)]
        elif mode == "cname":
            hops = int(args[0]) if args else 3
            owner = name
            for i in range(hops):
                target = dns.name.from_text(f"hop{i}", name)
                r.answer.append(dns.rrset.from_text(owner, self.ttl, "IN", "CNAME",
                                                    target.to_text()))
                owner = target
            r.answer.append(dns.rrset.from_text(owner, self.ttl, "IN", "A", "192.0.2.7"))
        else:
            ttl = int(args[0]) if mode == "ttl" and args else self.ttl
            self._positive(r, name, rdtype, ttl)
            if mode == "poison":
                r.authority.append(dns.rrset.from_text("victim.example.", 86400, "IN", "A",
                                                       "6.6.6.6"))
                r.additional.append(dns.rrset.from_text(
                    "kubernetes.default.svc.cluster.local.", 86400, "IN", "A", "6.6.6.6"))
        wire = r.to_wire(max_size=65535)
        if mode == "wrongid":
            return [struct.pack("!H", q.id ^ 0x5A5A) + wire[2:]]
        if mode == "wrongq":
            other = dns.message.make_query("x" + name.to_text(), rdtype)
            other.id = q.id
            return [dns.message.make_response(other).to_wire()]
        if mode == "garbage":
            return [os.urandom(40)]
        if mode == "qr0":
            return [q.to_wire()]
        if mode == "dup":
            return [wire, wire, wire]
        return [wire]

    @staticmethod
    def _positive(r: dns.message.Message, name: dns.name.Name, rdtype: int, ttl: int) -> None:
        if rdtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(name, ttl, "IN", "A", "192.0.2.1"))
        elif rdtype == dns.rdatatype.AAAA:
            r.answer.append(dns.rrset.from_text(name, ttl, "IN", "AAAA", "2001:db8::1"))
        elif rdtype == dns.rdatatype.TXT:
            r.answer.append(dns.rrset.from_text(name, ttl, "IN", "TXT", '"fake"'))
        elif rdtype == dns.rdatatype.NS:
            r.answer.append(dns.rrset.from_text(name, ttl, "IN", "NS", "ns.fake."))

    def forgeries(self, q: dns.message.Message, count: int,
                  wrong_id: bool = True) -> list[tuple[bytes, bool]]:
        """``count`` forged datagrams for ``q``: (bytes, send_from_other_port)."""
        question = q.question[0]
        good = dns.message.make_response(q)
        good.answer.append(dns.rrset.from_text(question.name, 86400, "IN", "A", "6.6.6.6"))
        wire = good.to_wire()
        out: list[tuple[bytes, bool]] = []
        rng = random.Random(q.id)
        for i in range(count):
            kind = i % 6 if wrong_id else 1 + i % 5
            if kind == 0:  # wrong ID
                out.append((struct.pack("!H", (q.id + 1 + rng.randrange(65535)) % 65536)
                            + wire[2:], False))
            elif kind == 1:  # right ID, other name
                other = dns.message.make_query("evil." + question.name.to_text(), question.rdtype)
                other.id = q.id
                forged = dns.message.make_response(other)
                out.append((forged.to_wire(), False))
            elif kind == 2:  # right ID, other type
                other = dns.message.make_query(question.name, dns.rdatatype.TXT)
                other.id = q.id
                out.append((dns.message.make_response(other).to_wire(), False))
            elif kind == 3:  # QR=0 with right ID
                out.append((wire[:2] + bytes([wire[2] & 0x7F]) + wire[3:], False))
            elif kind == 4:  # garbage with the right ID
                out.append((wire[:2] + os.urandom(30), False))
            else:  # the perfect forgery, but from another source port
                out.append((wire, True))
        return out

    async def handle_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return
        if not q.question:
            return
        self._record("udp", addr, q)
        mode, args = self._mode_of(q)
        if mode == "delay":
            await asyncio.sleep(int(args[0]) / 1000 if args else 1.0)
        if mode in ("spoof", "spoofq"):
            count = int(args[0]) if args else 50
            for forged, other_port in self.forgeries(q, count, wrong_id=mode == "spoof"):
                if other_port and self._spoofer is not None:
                    self._spoofer.sendto(forged, addr)
                elif self._udp is not None:
                    self._udp.sendto(forged, addr)
        replies = self._answer(q, "udp")
        for wire in replies or ():
            if self._udp is not None:
                self._udp.sendto(wire, addr)

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while True:
                head = await reader.readexactly(2)
                data = await reader.readexactly(struct.unpack("!H", head)[0])
                q = dns.message.from_wire(data)
                self._record("tcp", (peer[0], peer[1]), q)
                mode, args = self._mode_of(q)
                if mode == "delay":
                    await asyncio.sleep(int(args[0]) / 1000 if args else 1.0)
                replies = self._answer(q, "tcp")
                if mode == "tcpclose":
                    wire = (replies or [b""])[0]
                    writer.write(struct.pack("!H", len(wire)) + wire[: len(wire) // 2])
                    await writer.drain()
                    break
                for wire in (replies or [])[:1]:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, Exception):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, up: FakeUpstream) -> None:
        self.up = up
        self.tasks: set[asyncio.Future[None]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self.up.handle_udp(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
