"""Render a response within a size limit: whole RRsets only, TC=1 when anything was dropped.

Decision (shared/docs/README.md): over UDP the answer keeps only the whole RRsets that fit (possibly
none), never a partial RRset, and sets TC whenever something was left out.

This is the one renderer of every reply the chain builds, so it is written for speed rather than
through ``dns.renderer.Renderer`` (which costs ~100 µs for a typical cluster answer: a ``Name``
object and a case-folding hash per compression suffix, an OPT rdata per reply, text-to-bytes
address conversion per record). It writes into one ``bytearray`` with its own compression map
keyed by lower-cased label tuples; the record types a cluster DNS answers with (A, AAAA, CNAME,
PTR, NS, SOA, MX, SRV) are encoded inline, every other type through dnspython's ``to_wire``
(uncompressed, as RFC 3597 requires of unknown types). Names are compressed where RFC 1035 and
dnspython compress them (owners, and CNAME/PTR/NS/SOA/MX targets; never SRV targets).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import Final

import dns.edns
import dns.message
import dns.name
import dns.rdata
import dns.rrset

OPT_RR_SIZE: Final = 11  # root owner + type + class + ttl + rdlen, with no options
_TC: Final = 0x0200
_HEADER: Final = struct.Struct("!HHHHHH")
_RR: Final = struct.Struct("!HHIH")
_OPT_HEAD: Final = struct.Struct("!BHHIH")
_SOA_INTS: Final = struct.Struct("!IIIII")
_SRV_INTS: Final = struct.Struct("!HHH")
_H: Final = struct.Struct("!H")
_A, _NS, _CNAME, _SOA, _PTR, _MX, _AAAA, _SRV = 1, 2, 5, 6, 12, 15, 28, 33
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_inet_pton = socket.inet_pton


class _TooBig(Exception):
    pass


class _Writer:
    """Appends names and records to one buffer, compressing names as it goes."""

    __slots__ = ("buf", "compress", "limit")

    def __init__(self, limit: int) -> None:
        self.buf = bytearray()
        self.compress: dict[tuple[bytes, ...], int] = {}
        self.limit = limit

    def name(self, name: dns.name.Name) -> None:
        labels = name.labels
        if not labels or labels[-1] != b"":
            raise dns.name.NeedAbsoluteNameOrOrigin
        buf = self.buf
        compress = self.compress
        low = tuple([label.lower() for label in labels])
        for i in range(len(labels) - 1):
            key = low[i:]
            at = compress.get(key)
            if at is not None:
                buf += _H.pack(0xC000 | at)
                return
            pos = len(buf)
            if pos < 0x4000:
                compress[key] = pos
            label = labels[i]
            buf.append(len(label))
            buf += label
        buf.append(0)

    def plain_name(self, name: dns.name.Name) -> None:
        """An uncompressed name (SRV targets)."""
        wire = name.to_wire()
        if wire is None:
            raise dns.name.NeedAbsoluteNameOrOrigin
        self.buf += wire

    def rdata(self, rdtype: int, rd: dns.rdata.Rdata) -> None:
        buf = self.buf
        if rdtype == _A:
            buf += _inet_pton(_AF_INET, rd.address)  # type: ignore[attr-defined]
        elif rdtype == _AAAA:
            buf += _inet_pton(_AF_INET6, rd.address)  # type: ignore[attr-defined]
        elif rdtype == _CNAME or rdtype == _PTR or rdtype == _NS:
            self.name(rd.target)  # type: ignore[attr-defined]
        elif rdtype == _SRV:
            buf += _SRV_INTS.pack(rd.priority, rd.weight, rd.port)  # type: ignore[attr-defined]
            self.plain_name(rd.target)  # type: ignore[attr-defined]
        elif rdtype == _SOA:
            self.name(rd.mname)  # type: ignore[attr-defined]
            self.name(rd.rname)  # type: ignore[attr-defined]
            buf += _SOA_INTS.pack(rd.serial, rd.refresh, rd.retry,  # type: ignore[attr-defined]
                                  rd.expire, rd.minimum)  # type: ignore[attr-defined]
        elif rdtype == _MX:
            buf += _H.pack(rd.preference)  # type: ignore[attr-defined]
            self.name(rd.exchange)  # type: ignore[attr-defined]
        else:
            wire = rd.to_wire()
            assert wire is not None
            buf += wire

    def rrset(self, rrset: dns.rrset.RRset) -> int:
        """Appends every record of ``rrset``; raises _TooBig (buffer and compression map rolled
        back to before the RRset) when the limit is passed. Returns the record count."""
        buf = self.buf
        mark = len(buf)
        rdtype, rdclass, ttl = rrset.rdtype, rrset.rdclass, rrset.ttl
        owner = rrset.name
        count = 0
        for rd in rrset:
            self.name(owner)
            buf += _RR.pack(rdtype, rdclass, ttl, 0)
            start = len(buf)
            self.rdata(rdtype, rd)
            buf[start - 2:start] = _H.pack(len(buf) - start)
            count += 1
        if not count:  # an empty RRset (update-style): owner, type, class, TTL 0, no data
            self.name(owner)
            buf += _RR.pack(rdtype, rdclass, 0, 0)
            count = 1
        if len(buf) > self.limit:
            del buf[mark:]
            for key in [k for k, at in self.compress.items() if at >= mark]:
                del self.compress[key]
            raise _TooBig
        return count


def _options_wire(options: Iterable[dns.edns.Option]) -> bytes:
    out = bytearray()
    for opt in options:
        data = opt.to_wire()
        assert data is not None
        out += _H.pack(opt.otype) + _H.pack(len(data)) + data
    return bytes(out)


def render(msg: dns.message.Message, max_size: int = 65535) -> bytes:
    """Wire bytes of ``msg`` no larger than ``max_size`` (truncating with TC when needed)."""
    rcode = msg.rcode()
    flags = (msg.flags & ~0x000F) | (rcode & 0x000F)
    has_opt = msg.edns >= 0
    options = _options_wire(msg.options) if has_opt and msg.options else b""
    opt_size = OPT_RR_SIZE + len(options) if has_opt else 0
    w = _Writer(max(max_size, 12 + opt_size) - opt_size)
    buf = w.buf
    buf += bytes(12)
    qd = 0
    for q in msg.question:
        w.name(q.name)
        buf += _H.pack(q.rdtype) + _H.pack(q.rdclass)
        qd += 1
    counts = [0, 0, 0]
    truncated = len(buf) > w.limit  # only with a limit below any real client's (>= 512)
    if truncated:
        del buf[12:]
        qd = 0
    else:
        try:
            for i, section in enumerate((msg.answer, msg.authority, msg.additional)):
                for rrset in section:
                    counts[i] += w.rrset(rrset)
        except _TooBig:
            truncated = True
    if has_opt:
        ednsflags = (msg.ednsflags & 0x00FF_FFFF) | ((rcode >> 4) << 24)
        buf += _OPT_HEAD.pack(0, 41, msg.payload, ednsflags & 0xFF00_FFFF, len(options))
        buf += options
        counts[2] += 1
    if truncated:
        flags |= _TC
    buf[0:12] = _HEADER.pack(msg.id, flags & 0xFFFF, qd, counts[0], counts[1], counts[2])
    return bytes(buf)
