"""Cache entries as wire bytes, and the bounded sharded store (CoreDNS plugin/pkg/cache).

Rules (performance.md §5, the later fast path depends on them):
1. An entry keeps the response *bytes* (ID 0, no OPT, the question as first asked), the byte
   offset of every RR's TTL field, the header flags and counts, and when it was stored. A hit is
   ``header + client's question bytes + body with TTLs patched (+ OPT)``: no dnspython.
2. The patched body is memoised per remaining-TTL second, so a hot entry is re-patched at most
   once a second.
3. Keys are ``lower(qname wire) + qtype + qclass + DO|CD`` bytes; dict lookup compares the whole
   key (no hash-only match, TOB-CDNS-8).
4. Capacity: 256 shards of max(capacity // 256, 4) entries (CoreDNS: 10000 -> 9984); inserting
   a new key into a full shard evicts its oldest-inserted entry.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import dns.message
import dns.rrset

from kdns.wire.fastpath import Version

SHARDS: Final = 256
_TYPE_OPT: Final = 41
_QR, _AA, _RD, _RA, _AD, _CD = 0x8000, 0x0400, 0x0100, 0x0080, 0x0020, 0x0010
OUR_PAYLOAD: Final = 1232
_HEADER: Final = struct.Struct("!HH")
_ARCOUNT: Final = struct.Struct("!H")
_OPT: Final = b"\x00\x00\x29" + struct.pack("!HBBHH", OUR_PAYLOAD, 0, 0, 0, 0)
_OPT_DO: Final = b"\x00\x00\x29" + struct.pack("!HBBHH", OUR_PAYLOAD, 0, 0, 0x8000, 0)


def make_key(name_wire: bytes, qtype: int, qclass: int, do: bool, cd: bool) -> bytes:
    """The cache key; ``name_wire`` may be in any case (lower-cased here)."""
    return name_wire.lower() + struct.pack("!HHB", qtype, qclass, (2 if do else 0) | cd)


def skip_name(wire: bytes, i: int) -> int:
    """Offset after the (possibly compressed) name at ``i``; raises IndexError/ValueError."""
    while True:
        length = wire[i]
        if length == 0:
            return i + 1
        if length & 0xC0 == 0xC0:
            return i + 2
        if length & 0xC0:
            raise ValueError("bad label type")
        i += 1 + length


def ttl_offsets(wire: bytes) -> tuple[int, tuple[int, ...]]:
    """(end of question, offsets of the TTL field of every non-OPT RR) of a message."""
    qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
    i = 12
    for _ in range(qd):
        i = skip_name(wire, i) + 4
    qend = i
    out = []
    for _ in range(an + ns + ar):
        i = skip_name(wire, i)
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", wire, i)
        if rtype != _TYPE_OPT:
            out.append(i + 4)
        i += 10 + rdlen
    if i != len(wire):
        raise ValueError("trailing bytes")
    return qend, tuple(out)


@dataclass(slots=True, eq=False)
class Entry:
    wire: bytes
    qend: int
    offsets: tuple[int, ...]
    flags: int
    rcode: int
    orig_ttl: int
    stored: float
    kind: str  # "success" or "denial"
    servfail: bool = False
    hits: int = 0
    last_hit: float = 0.0
    refreshing: bool = False
    last_refresh_fail: float = -1e18
    _memo_ttl: int = -1
    _memo: bytes = field(default=b"")
    _counts: bytes = b""  # QD/AN/NS/AR counts as stored
    _counts_edns: bytes = b""  # the same with AR + 1 for our OPT
    _sections_ttl: int = -1
    _sections: tuple[list[dns.rrset.RRset], list[dns.rrset.RRset], list[dns.rrset.RRset]] = (
        [], [], [])
    # Bumped when the entry leaves the store (replaced, evicted, removed): the wire fast path
    # replays hits of this entry only while it is the one a lookup would find.
    version: Version = field(default_factory=Version)

    def __post_init__(self) -> None:
        self.flags = int(self.flags)  # plain ints: IntFlag arithmetic costs µs per hit
        self.rcode = int(self.rcode)
        self._counts = self.wire[4:12]
        arcount = int.from_bytes(self.wire[10:12], "big")
        self._counts_edns = self.wire[4:10] + _ARCOUNT.pack(arcount + 1)

    def ttl(self, now: float) -> int:
        """Remaining TTL in whole seconds (CoreDNS: origTTL - floor(elapsed)); <= 0: expired."""
        return self.orig_ttl - int(now - self.stored)

    def body(self, ttl: int) -> bytes:
        """Everything after the question, with every TTL set to ``ttl``."""
        if ttl != self._memo_ttl:
            buf = bytearray(self.wire[self.qend:])
            packed = struct.pack("!I", ttl)
            base = self.qend
            for off in self.offsets:
                at = off - base
                buf[at:at + 4] = packed
            self._memo = bytes(buf)
            self._memo_ttl = ttl
        return self._memo

    def sections(self, ttl: int) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset],
                                          list[dns.rrset.RRset]]:
        """(answer, authority, additional) with every TTL set to ``ttl``, parsed at most once
        per TTL value. Shared by every reply built in that second: callers must not mutate."""
        if ttl != self._sections_ttl:
            msg = dns.message.from_wire(self.wire[:12] + self.wire[12:self.qend] + self.body(ttl))
            self._sections = (msg.answer, msg.authority, msg.additional)
            self._sections_ttl = ttl
        return self._sections

    def prime_sections(self, ttl: int, msg: dns.message.Message) -> None:
        """Seed the sections memo from the message just stored (saves one parse per miss)."""
        self._sections = (_with_ttl(msg.answer, ttl), _with_ttl(msg.authority, ttl),
                          _with_ttl(msg.additional, ttl))
        self._sections_ttl = ttl

    def render(self, qid: int, qflags: int, question: bytes, ttl: int, *, edns: bool,
               do: bool, aa: bool = True) -> bytes:
        """The reply bytes for a client (CoreDNS item.toMsg): its ID, RD, CD and question
        spelling; AA set; RA kept; AD only if the client set DO or AD; OPT only if it sent one."""
        flags = _QR | (qflags & (_RD | _CD)) | (self.flags & _RA) | (self.rcode & 0xF)
        if aa:
            flags |= _AA
        if do or qflags & _AD:
            flags |= self.flags & _AD
        body = self._memo if ttl == self._memo_ttl else self.body(ttl)
        if edns:
            return b"".join((_HEADER.pack(qid, flags), self._counts_edns, question, body,
                             _OPT_DO if do else _OPT))
        return b"".join((_HEADER.pack(qid, flags), self._counts, question, body))


def _with_ttl(rrsets: list[dns.rrset.RRset], ttl: int) -> list[dns.rrset.RRset]:
    out = []
    for rrset in rrsets:
        copy = rrset.copy()  # shallow: the rdatas are immutable and shared
        copy.ttl = ttl
        out.append(copy)
    return out


def strip_opt(wire: bytes) -> bytes | None:
    """``wire`` with ID 0 and without its OPT record, if that record is the last one (as every
    server sends it); None otherwise or if the bytes do not walk cleanly."""
    try:
        qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
        i = 12
        for _ in range(qd):
            i = skip_name(wire, i) + 4
        last_start = -1
        last_type = 0
        opts = 0
        for _ in range(an + ns + ar):
            last_start = i
            i = skip_name(wire, i)
            last_type, _c, _t, rdlen = struct.unpack_from("!HHIH", wire, i)
            opts += last_type == _TYPE_OPT
            i += 10 + rdlen
    except (IndexError, ValueError, struct.error):
        return None
    if i != len(wire) or qd != 1:
        return None
    if not opts:
        return b"\x00\x00" + wire[2:]
    if opts > 1 or last_type != _TYPE_OPT:
        return None
    return b"\x00\x00" + wire[2:10] + struct.pack("!H", ar - 1) + wire[12:last_start]


def make_entry(msg: dns.message.Message, duration: int, now: float, kind: str,
               upstream_wire: bytes | None = None) -> Entry:
    """An entry for ``msg``: its own bytes without OPT, with TTL offsets found by walking them.

    ``upstream_wire``, the bytes ``msg``'s sections were parsed from, saves rendering again;
    without it (or if it cannot be used) the message is rendered once.
    """
    wire = strip_opt(upstream_wire) if upstream_wire is not None else None
    if wire is not None:
        qend, offsets = ttl_offsets(wire)
        return Entry(wire, qend, offsets, int(msg.flags), int(msg.rcode()), duration, now, kind,
                     servfail=msg.rcode() == 2)
    plain = dns.message.Message(id=0)
    plain.flags = msg.flags
    plain.set_rcode(msg.rcode())
    plain.question = msg.question
    plain.answer = msg.answer
    plain.authority = msg.authority
    plain.additional = msg.additional
    wire = plain.to_wire(max_size=65535)
    qend, offsets = ttl_offsets(wire)
    return Entry(wire, qend, offsets, int(msg.flags), int(msg.rcode()), duration, now, kind,
                 servfail=msg.rcode() == 2)


class Store:
    """A bounded map of key -> Entry, sharded as CoreDNS's plugin/pkg/cache."""

    def __init__(self, capacity: int) -> None:
        self.shard_size = max(capacity // SHARDS, 4)
        self.shards: list[dict[bytes, Entry]] = [{} for _ in range(SHARDS)]
        self.size = 0

    @property
    def capacity(self) -> int:
        return self.shard_size * SHARDS

    def get(self, key: bytes) -> Entry | None:
        return self.shards[hash(key) & (SHARDS - 1)].get(key)

    def put(self, key: bytes, entry: Entry) -> bool:
        """Insert or replace; True if another entry was evicted to make room."""
        shard = self.shards[hash(key) & (SHARDS - 1)]
        evicted = False
        old = shard.get(key)
        if old is None:
            if len(shard) >= self.shard_size:
                shard.pop(next(iter(shard))).version.bump()
                evicted = True
            else:
                self.size += 1
        else:
            old.version.bump()
        shard[key] = entry
        return evicted

    def remove(self, key: bytes) -> None:
        shard = self.shards[hash(key) & (SHARDS - 1)]
        old = shard.pop(key, None)
        if old is not None:
            old.version.bump()
            self.size -= 1

    def __len__(self) -> int:
        return self.size


class SimpleQuery(NamedTuple):
    qid: int
    flags: int
    question: bytes
    key: bytes
    name_wire: bytes
    edns: bool
    do: bool
    max_size: int


def parse_simple_query(wire: bytes) -> SimpleQuery | None:
    """Header/question/OPT of a plain query, or None (take the slow path).

    Plain: QR=0, opcode QUERY, one uncompressed question, no answer/authority records, and at
    most one option-less EDNS0 OPT at the end. Anything else goes through dnspython.
    """
    n = len(wire)
    if n < 17:
        return None
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", wire)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:
        return None
    i = 12
    while True:
        if i >= n:
            return None
        length = wire[i]
        if length == 0:
            i += 1
            break
        if length > 63:
            return None
        i += 1 + length
    if i + 4 > n or i - 12 > 255:
        return None
    name_wire = wire[12:i]
    qtype, qclass = struct.unpack_from("!HH", wire, i)
    qend = i + 4
    edns = do = False
    max_size = 512
    if ar:
        if n != qend + 11 or wire[qend] != 0:
            return None
        rtype, payload, ext, version, eflags, rdlen = struct.unpack_from("!HHBBHH", wire,
                                                                         qend + 1)
        if rtype != _TYPE_OPT or ext or version or rdlen:
            return None
        edns, do = True, bool(eflags & 0x8000)
        max_size = min(max(payload, 512), OUR_PAYLOAD)
    elif n != qend:
        return None
    key = make_key(name_wire, qtype, qclass, do, bool(flags & _CD))
    return SimpleQuery(qid, flags, wire[12:qend], key, name_wire, edns, do, max_size)


def name_in_zones(name_wire_lower: bytes, zone_wires: tuple[bytes, ...]) -> bool:
    """True if the (lower-case, uncompressed) name equals or is below one of the zones."""
    i = 0
    while True:
        suffix = name_wire_lower[i:]
        if suffix in zone_wires:
            return True
        length = name_wire_lower[i] if i < len(name_wire_lower) else 0
        if length == 0:
            return False
        i += 1 + length
