"""AnswerCache: synthesised Results per (query name as spelled, qtype), dropped precisely.

Every Result carries the tags of the store objects it was derived from; every Store Change
names the tags it touches (``Change.tags()``), so an event evicts exactly the answers that may
have changed, including negative ones (a new Service evicts its cached NXDOMAIN through its
``svc:`` tag). Answers carrying an SOA are also refused once the SOA serial moved on.
"""

from __future__ import annotations

from typing import Final

import dns.rdatatype

from .result import Result
from .store import Change, Store

DEFAULT_MAX_ENTRIES: Final = 20_000  # ~1 KiB per negative answer under a random-name flood

Key = tuple[str, int]


class AnswerCache:
    def __init__(self, store: Store, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.store = store
        self.max_entries = max_entries
        self._entries: dict[Key, Result] = {}
        self._by_tag: dict[str, set[Key]] = {}
        self._with_soa: set[Key] = set()
        store.subscribe(self._on_change)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Result | None:
        res = self._entries.get(key)
        if res is not None and res.serial != self.store.serial and key in self._with_soa:
            return None  # the SOA in it carries an old serial
        return res

    def put(self, key: Key, res: Result) -> None:
        if not res.cacheable:
            return
        if len(self._entries) >= self.max_entries:
            self.clear()
        self._entries[key] = res
        for tag in res.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        if any(rrset.rdtype == dns.rdatatype.SOA for rrset in (*res.answer, *res.authority)):
            self._with_soa.add(key)
        else:
            self._with_soa.discard(key)

    def clear(self) -> None:
        self._entries.clear()
        self._by_tag.clear()
        self._with_soa.clear()

    def _on_change(self, change: Change) -> None:
        if change.everything:
            self.clear()
            return
        for tag in change.tags():
            for key in self._by_tag.pop(tag, ()):
                self._entries.pop(key, None)
