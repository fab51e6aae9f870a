"""The wire fast path: answer a repeated query from stored reply bytes, no message objects.

Rule 1: never builds dnspython objects on a hit; a hit is one ``bytes.lower()``, a dict lookup,
a validity check and a few concatenations. Rule 2: anything unusual returns None, meaning "take
the slow path". Rule 3: an entry is stored only when the plugin chain said the answer may be
reused, and it records what it depends on (Version counters that plugins bump when their data
changes), a deadline, and how its TTLs count down (cache), so a hit is byte-identical to what
the chain would build at that moment.

Key: the query without its ID, lower-cased as a whole (``wire[2:].lower()``, 0x20 clients share
entries). Lower-casing more than the name is exact because an entry is only stored when every
byte outside the name (header, type, class, OPT) is no ASCII letter: a query that lower-cases
to such a key then has the same header, type, class and OPT bytes and the same label lengths
(length octets are < 0x41), so it differs from the stored one only in the case of its name.
Flags and the OPT record are part of the key, so RD/CD/DO/payload variants never mix. The reply
is sent as: query ID + stored header + the query's own question bytes + stored tail. Owner
names in the tail are compression pointers into the question, so they echo the client's case.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Final

MAX_ENTRIES: Final = 100_000
_QUERY_FLAGS_MASK: Final = 0xF8  # QR + opcode in byte 2
_TYPE_OPT: Final = 41
_TTL: Final = struct.Struct("!I")


class Version:
    """A counter a plugin bumps when the data behind its answers changes."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> None:
        self.n += 1


class Tally:
    """A plain-int count of replays of answers a plugin declared (e.g. cache hits), which the
    plugin adds to its own metrics at scrape time: ``n += 1`` costs ~0.03 µs, a labelled
    prometheus_client ``inc()`` ~0.5-1.5 µs."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@dataclass(slots=True)
class Entry:
    header: bytes  # reply bytes 2..12 (flags and counts)
    tail: bytes  # everything after the question, TTLs as of ``ttl_now``
    deps: tuple[tuple[Version, int], ...]
    until: float  # monotonic deadline; inf when only versions matter
    rotate: tuple[int, int, int] | None = None  # (offset in tail, rr length, count)
    turn: int = 0
    zone: str = "."
    rcode: int = 0
    plugin: str = ""
    qtype: int = 0
    qend: int = 0  # offset just past the question (the same for every query of this key)
    # TTL countdown (cache): every TTL in the reply is ttl_orig - floor(now - ttl_since).
    ttl_orig: int = -1  # -1: the bytes are static
    ttl_since: float = 0.0
    ttl_now: int = -1
    ttl_offsets: tuple[int, ...] = ()  # TTL fields in ``tail``
    tallies: tuple[Tally, ...] = ()
    slot: Any = None  # the server's metrics slot for this entry (kdns.metrics.FastSlot)
    tails: tuple[bytes, ...] = ()  # with ``rotate``: ``tail`` in each of its rotations
    # A countdown tail split around its TTL fields: the tail for TTL t is pack(t).join(chunks)
    # (one join per replay; patching a copy cost more, and with each name asked every few
    # seconds nearly every replay saw a new TTL second).
    chunks: tuple[bytes, ...] = ()


def question_end(wire: bytes) -> int:
    """Offset just past the question of a plain one-question query; 0 if not plain."""
    n = len(wire)
    if n < 17 or wire[2] & _QUERY_FLAGS_MASK or wire[4:6] != b"\x00\x01":
        return 0
    if wire[6:10] != b"\x00\x00\x00\x00":  # answers/authority in a query: slow path decides
        return 0
    pos = 12
    while True:
        if pos >= n:
            return 0
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:  # compression pointer or bad label: slow path
            return 0
        pos += length + 1
    end = pos + 4
    if end > n:
        return 0
    arcount = (wire[10] << 8) | wire[11]
    if arcount == 0:
        return end if end == n else 0
    # Exactly one OPT RR with no options: root owner, type 41, rdlen 0, version 0.
    if arcount != 1 or n != end + 11 or wire[end] != 0 or wire[end + 1:end + 3] != b"\x00\x29":
        return 0
    if wire[end + 6] != 0 or wire[end + 9:end + 11] != b"\x00\x00":
        return 0
    return end


def memo_key(wire: bytes, qend: int) -> bytes | None:
    """The memo key of a plain query, or None when bytes outside its name contain ASCII
    letters (lower-casing the whole query would then not be exact; see the module doc)."""
    outside = wire[2:12] + wire[qend - 4:]
    if outside.lower() != outside or outside.upper() != outside:
        return None
    return wire[2:].lower()


def ttl_offsets(reply: bytes, qend: int) -> tuple[int, ...] | None:
    """Offsets (from ``qend``) of the TTL field of every non-OPT record after the question of
    ``reply``; None if the records do not walk cleanly to the end of the bytes."""
    try:
        an, ns, ar = struct.unpack_from("!HHH", reply, 6)
        pos, out = qend, []
        for _ in range(an + ns + ar):
            while True:  # skip the owner name
                length = reply[pos]
                if length == 0:
                    pos += 1
                    break
                if length & 0xC0 == 0xC0:
                    pos += 2
                    break
                if length & 0xC0:
                    return None
                pos += 1 + length
            rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", reply, pos)
            if rtype != _TYPE_OPT:
                out.append(pos + 4 - qend)
            pos += 10 + rdlen
    except (IndexError, struct.error):
        return None
    return tuple(out) if pos == len(reply) else None


def patch_ttls(tail: bytes, offsets: tuple[int, ...], ttl: int) -> bytes:
    buf = bytearray(tail)
    packed = _TTL.pack(ttl)
    for off in offsets:
        buf[off:off + 4] = packed
    return bytes(buf)


class Memo:
    """Bounded map of reusable replies for one listener and transport."""

    __slots__ = ("entries", "hits", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: dict[bytes, Entry] = {}
        self.max_entries = max_entries
        self.hits = 0

    def lookup(self, wire: bytes, now: float) -> tuple[bytes, Entry] | None:
        """The reply to ``wire`` from a valid entry (counting the replay), or None."""
        key = wire[2:].lower()
        e = self.entries.get(key)
        if e is None:
            return None
        if now >= e.until:
            del self.entries[key]
            return None
        for version, n in e.deps:
            if version.n != n:
                del self.entries[key]
                return None
        if e.rotate is None:
            if e.ttl_orig < 0:
                tail = e.tail
            else:
                tail = _TTL.pack(e.ttl_orig - int(now - e.ttl_since)).join(e.chunks)
        else:
            if e.ttl_orig >= 0:
                ttl = e.ttl_orig - int(now - e.ttl_since)
                if ttl != e.ttl_now:  # at most once per second per entry
                    e.tail = patch_ttls(e.tail, e.ttl_offsets, ttl)
                    e.ttl_now = ttl
                    e.tails = _rotations(e.tail, e.rotate)
            tails = e.tails
            tail = tails[e.turn % len(tails)]
            e.turn += 1
        if e.tallies:
            for t in e.tallies:
                t.n += 1
        self.hits += 1
        return b"".join((wire[:2], e.header, wire[12:e.qend], tail)), e

    def store(self, wire: bytes, reply: bytes, entry: Entry) -> bool:
        """Remember ``reply`` for queries like ``wire``; False when it cannot be replayed."""
        qend = question_end(wire)
        if not qend or len(reply) < qend or reply[12:qend].lower() != wire[12:qend].lower():
            return False
        key = memo_key(wire, qend)
        if key is None:
            return False
        if entry.ttl_orig >= 0:
            offsets = ttl_offsets(reply, qend)
            if offsets is None:
                return False
            ttls = {reply[qend + o:qend + o + 4] for o in offsets}
            if len(ttls) > 1:  # a countdown reply carries one TTL everywhere
                return False
            entry.ttl_offsets = offsets
            entry.ttl_now = _TTL.unpack(ttls.pop())[0] if ttls else -1
            if not offsets:
                entry.ttl_orig = -1  # nothing counts down: static bytes
        if len(self.entries) >= self.max_entries:
            # A random-name flood must not grow memory: start over rather than evict one by one.
            self.entries.clear()
        entry.header = reply[2:12]
        entry.tail = reply[qend:]
        entry.qend = qend
        if entry.ttl_orig >= 0:
            entry.chunks = _split_at(entry.tail, entry.ttl_offsets)
        if entry.rotate is not None:
            entry.tails = _rotations(entry.tail, entry.rotate)
        self.entries[key] = entry
        return True

    def clear(self) -> None:
        self.entries.clear()


def countdown_deadline(since: float, ttl: int) -> float:
    """The last moment a reply whose TTLs count down from ``ttl`` at ``since`` may be replayed
    (its TTL would reach 0 there; a hair early against float rounding)."""
    return since + ttl - 1e-6 if ttl > 0 else -math.inf


def _split_at(tail: bytes, offsets: tuple[int, ...]) -> tuple[bytes, ...]:
    """``tail`` without the 4-byte fields at ``offsets`` (increasing): the pieces between."""
    out, pos = [], 0
    for off in offsets:
        out.append(tail[pos:off])
        pos = off + 4
    out.append(tail[pos:])
    return tuple(out)


def _rotations(tail: bytes, rotate: tuple[int, int, int]) -> tuple[bytes, ...]:
    """``tail`` with its ``count`` equal-sized records rotated left by 0, 1, ... count - 1
    (computed when the bytes change, at most once a second, not on every replay)."""
    start, size, count = rotate
    end = start + size * count
    out = [tail]
    for k in range(1, count):
        cut = start + size * k
        out.append(tail[:start] + tail[cut:end] + tail[start:cut] + tail[end:])
    return tuple(out)
