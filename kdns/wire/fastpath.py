"""The wire fast path: answer a repeated query from stored reply bytes, no message objects.

Rule 1: never builds dnspython objects on a hit; a hit is a dict lookup, a validity check and
three concatenations. Rule 2: anything unusual returns None, meaning "take the slow path".
Rule 3: an entry is stored only when the plugin chain said the answer may be reused, and it
records what it depends on (Version counters that plugins bump when their data changes) and a
deadline (cache TTLs count down), so a hit is byte-identical to what the chain would build now.

Key: the query without its ID, with the question name lower-cased (0x20 clients share entries);
flags and the OPT record are part of the key, so RD/CD/DO/payload variants never mix. The reply
is sent as: query ID + stored header + the query's own question bytes + stored tail. Owner names
in the tail are compression pointers into the question, so they echo the client's case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_ENTRIES: Final = 100_000
_QUERY_FLAGS_MASK: Final = 0xF8  # QR + opcode in byte 2


class Version:
    """A counter a plugin bumps when the data behind its answers changes."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> None:
        self.n += 1


@dataclass(slots=True)
class Entry:
    header: bytes  # reply bytes 2..12 (flags and counts)
    tail: bytes  # everything after the question
    deps: tuple[tuple[Version, int], ...]
    until: float  # monotonic deadline; inf when only versions matter
    rotate: tuple[int, int, int] | None = None  # (offset in tail, rr length, count)
    turn: int = 0
    zone: str = "."
    rcode: int = 0
    plugin: str = ""
    qtype: int = 0


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


def memo_key(wire: bytes, qend: int) -> bytes:
    return wire[2:12] + wire[12:qend].lower() + wire[qend:]


class Memo:
    """Bounded map of reusable replies for one listener and transport."""

    __slots__ = ("entries", "hits", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: dict[bytes, Entry] = {}
        self.max_entries = max_entries
        self.hits = 0

    def lookup(self, wire: bytes, now: float) -> tuple[bytes, Entry] | None:
        qend = question_end(wire)
        if not qend:
            return None
        key = memo_key(wire, qend)
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
        tail = e.tail
        if e.rotate is not None:
            tail = _rotated(tail, e.rotate, e.turn)
            e.turn += 1
        self.hits += 1
        return wire[:2] + e.header + wire[12:qend] + tail, e

    def store(self, wire: bytes, reply: bytes, entry: Entry) -> None:
        qend = question_end(wire)
        if not qend or len(reply) < qend or reply[12:qend].lower() != wire[12:qend].lower():
            return
        if len(self.entries) >= self.max_entries:
            # A random-name flood must not grow memory: start over rather than evict one by one.
            self.entries.clear()
        entry.header = reply[2:12]
        entry.tail = reply[qend:]
        self.entries[memo_key(wire, qend)] = entry

    def clear(self) -> None:
        self.entries.clear()


def _rotated(tail: bytes, rotate: tuple[int, int, int], turn: int) -> bytes:
    start, size, count = rotate
    k = turn % count
    if k == 0:
        return tail
    end = start + size * count
    cut = start + size * k
    return tail[:start] + tail[cut:end] + tail[start:cut] + tail[end:]
