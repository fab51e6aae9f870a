"""Version counters for the wire fast path (kdns/wire/fastpath.py), one per Result tag.

A replayed answer depends on the store objects named by its Result's tags; each tag gets a
Version that is bumped when a Store Change carries that tag, so an event invalidates exactly
the stored replies built from what it touched. Answers carrying an SOA also depend on the
serial (bumped whenever the SOA serial moves), and every answer on ``everything``.
"""

from __future__ import annotations

from typing import Final

import dns.rdatatype

from kdns.wire.fastpath import Version

from .result import Result
from .store import Change, Store

MAX_TAGS: Final = 100_000  # random-name floods create tags; past this, start over


class TagVersions:
    def __init__(self, store: Store, max_tags: int = MAX_TAGS) -> None:
        self.store = store
        self.max_tags = max_tags
        self.everything = Version()
        self.serial = Version()
        self._serial_seen = store.serial
        self._by_tag: dict[str, Version] = {}
        store.subscribe(self._on_change)

    def __len__(self) -> int:
        return len(self._by_tag)

    def for_result(self, res: Result) -> list[Version]:
        """The Versions a reply built from ``res`` depends on."""
        if len(self._by_tag) + len(res.tags) > self.max_tags:
            # Entries hold the Version objects themselves: invalidate them all before the
            # table forgets them, or they could never be bumped again.
            self.everything.bump()
            self._by_tag.clear()
        out = [self.everything]
        for tag in res.tags:
            v = self._by_tag.get(tag)
            if v is None:
                v = self._by_tag[tag] = Version()
            out.append(v)
        if any(r.rdtype == dns.rdatatype.SOA for r in (*res.answer, *res.authority)):
            out.append(self.serial)
        return out

    def _on_change(self, change: Change) -> None:
        if change.everything:
            self.everything.bump()
        for tag in change.tags():
            v = self._by_tag.get(tag)
            if v is not None:
                v.bump()
        if self.store.serial != self._serial_seen:
            self._serial_seen = self.store.serial
            self.serial.bump()
