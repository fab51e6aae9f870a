"""Cache entries and the bounded sharded store (CoreDNS plugin/pkg/cache).

Rules:
1. An entry keeps the response's sections (RRsets, shallow copies with the stored TTL), its
   header flags and rcode, and when it was stored. Rendering is the server's job, done once per
   reply; a hit is never parsed or rendered by the cache, and a miss is not rendered twice.
   Repeated hits are answered by the server's wire fast path (kdns/wire/fastpath.py), which
   patches TTLs in the bytes it sent last.
2. The TTL-patched sections are memoised per remaining-TTL second, so a hot entry is copied at
   most once a second.
3. Keys are ``lower(qname wire) + qtype + qclass + DO|CD`` bytes; dict lookup compares the whole
   key (no hash-only match, TOB-CDNS-8).
4. Capacity: 256 shards of max(capacity // 256, 4) entries (CoreDNS: 10000 -> 9984); inserting
   a new key into a full shard evicts its oldest-inserted entry.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

import dns.message
import dns.rrset

from kdns.wire.fastpath import Version

SHARDS: Final = 256
Sections = tuple[list[dns.rrset.RRset], list[dns.rrset.RRset], list[dns.rrset.RRset]]


def make_key(name_wire: bytes, qtype: int, qclass: int, do: bool, cd: bool) -> bytes:
    """The cache key; ``name_wire`` may be in any case (lower-cased here)."""
    return name_wire.lower() + struct.pack("!HHB", qtype, qclass, (2 if do else 0) | cd)


@dataclass(slots=True, eq=False)
class Entry:
    stored_sections: Sections  # (answer, authority, additional), every TTL = orig_ttl
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
    # The sections as last copied with a TTL (the stored ones, until another TTL is asked).
    _sections_ttl: int = field(init=False, repr=False)
    _sections: Sections = field(init=False, repr=False)
    # Bumped when the entry leaves the store (replaced, evicted, removed): the wire fast path
    # replays hits of this entry only while it is the one a lookup would find.
    version: Version = field(default_factory=Version)

    def __post_init__(self) -> None:
        self.flags = int(self.flags)  # plain ints: IntFlag arithmetic costs µs per hit
        self.rcode = int(self.rcode)
        self._sections = self.stored_sections
        self._sections_ttl = self.orig_ttl

    def ttl(self, now: float) -> int:
        """Remaining TTL in whole seconds (CoreDNS: origTTL - floor(elapsed)); <= 0: expired."""
        return self.orig_ttl - int(now - self.stored)

    def sections(self, ttl: int) -> Sections:
        """(answer, authority, additional) with every TTL set to ``ttl``, copied at most once
        per TTL value. Shared by every reply built in that second: callers must not mutate."""
        if ttl != self._sections_ttl:
            answer, authority, additional = self.stored_sections
            self._sections = (_with_ttl(answer, ttl), _with_ttl(authority, ttl),
                              _with_ttl(additional, ttl))
            self._sections_ttl = ttl
        return self._sections


def _with_ttl(rrsets: list[dns.rrset.RRset], ttl: int) -> list[dns.rrset.RRset]:
    out = []
    for rrset in rrsets:
        copy = rrset.copy()  # shallow: the rdatas are immutable and shared
        copy.ttl = ttl
        out.append(copy)
    return out


def make_entry(msg: dns.message.Message, duration: int, now: float, kind: str) -> Entry:
    """An entry for ``msg`` (copies of its sections with every TTL set to ``duration``: later
    changes to ``msg`` by other plugins do not reach the cache)."""
    sections = (_with_ttl(msg.answer, duration), _with_ttl(msg.authority, duration),
                _with_ttl(msg.additional, duration))
    rcode = int(msg.rcode())
    return Entry(sections, int(msg.flags), rcode, duration, now, kind, servfail=rcode == 2)


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
