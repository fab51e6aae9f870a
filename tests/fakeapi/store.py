"""In-memory object store of the fake API server: one global resourceVersion, a bounded event
history (older watch starts get 410), list snapshots for continue tokens, and live watchers.

Everything here runs on the server's event loop thread; nothing awaits, so each method is atomic
with respect to the HTTP handlers.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakeapi.selectors import Predicate


@dataclass(frozen=True)
class Kind:
    plural: str
    kind: str
    api_version: str  # "v1" or "group/version"
    namespaced: bool


KINDS: tuple[Kind, ...] = (
    Kind("services", "Service", "v1", True),
    Kind("endpointslices", "EndpointSlice", "discovery.k8s.io/v1", True),
    Kind("namespaces", "Namespace", "v1", False),
    Kind("pods", "Pod", "v1", True),
    Kind("nodes", "Node", "v1", False),
    Kind("endpoints", "Endpoints", "v1", True),
    Kind("configmaps", "ConfigMap", "v1", True),
)
BY_KIND = {k.kind: k for k in KINDS}
BY_PATH = {(k.api_version, k.plural): k for k in KINDS}


class StoreError(ValueError):
    """An object the fake cannot store (unknown kind, no name)."""


@dataclass(frozen=True)
class Event:
    rv: int
    plural: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)
class Watcher:
    plural: str
    namespace: str | None
    labels: Predicate
    fields: Predicate
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    stalled: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    action: str = ""  # "drop" | "gone" | "end", set by fault injection

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels(obj) and self.fields(obj)

    def translate(self, ev: Event) -> tuple[str, dict[str, Any]] | None:
        """The event as this watcher sees it: selector changes turn MODIFIED into ADDED/DELETED."""
        now, before = self.matches(ev.obj), self.matches(ev.old)
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if now else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if before or now else None
        if now and before:
            return ("MODIFIED", ev.obj)
        if now:
            return ("ADDED", ev.obj)
        if before:
            return ("DELETED", ev.obj)
        return None


class Store:
    def __init__(self, history_size: int = 1000, first_rv: int = 1000) -> None:
        self.rv = first_rv
        self.compacted_rv = first_rv
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k.plural: {} for k in KINDS}
        self.history: deque[Event] = deque()
        self.history_size = history_size
        self.watchers: set[Watcher] = set()
        self.snapshots: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()
        self._snap_ids = itertools.count(1)

    # -- mutations ---------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (by kind/namespace/name); returns the stored copy."""
        kind, key = self._identify(obj)
        new = copy.deepcopy(obj)
        new.setdefault("apiVersion", kind.api_version)
        meta = new.setdefault("metadata", {})
        old = self.objects[kind.plural].get(key)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        else:
            meta["uid"] = old["metadata"].get("uid", meta.get("uid"))
        self.objects[kind.plural][key] = new
        self._record(Event(self.rv, kind.plural, "MODIFIED" if old else "ADDED", new, old))
        return new

    def delete(self, kind_name: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        kind = BY_KIND.get(kind_name)
        if kind is None:
            raise StoreError(f"unknown kind {kind_name!r}")
        key = f"{namespace}/{name}" if kind.namespaced else name
        old = self.objects[kind.plural].pop(key, None)
        if old is None:
            return None
        self.rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._record(Event(self.rv, kind.plural, "DELETED", gone, old))
        return gone

    def _identify(self, obj: dict[str, Any]) -> tuple[Kind, str]:
        kind = BY_KIND.get(obj.get("kind", ""))
        if kind is None:
            raise StoreError(f"unknown kind {obj.get('kind')!r}")
        meta = obj.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        if not name or (kind.namespaced and not namespace):
            raise StoreError(f"{kind.kind} needs metadata.name (and namespace if namespaced)")
        return kind, (f"{namespace}/{name}" if kind.namespaced else name)

    def _record(self, ev: Event) -> None:
        self.history.append(ev)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        for w in self.watchers:
            if w.plural == ev.plural:
                seen = w.translate(ev)
                if seen is not None:
                    w.queue.put_nowait(seen)

    def compact(self) -> None:
        """Forget all history and list snapshots: older watch starts and continue tokens 410."""
        self.history.clear()
        self.compacted_rv = self.rv
        self.snapshots.clear()

    # -- reads -------------------------------------------------------------------------------

    def matching(self, plural: str, w: Watcher) -> list[dict[str, Any]]:
        objs = self.objects[plural]
        return [objs[k] for k in sorted(objs) if w.matches(objs[k])]

    def snapshot(self, items: list[dict[str, Any]], max_snapshots: int = 64) -> str:
        snap_id = str(next(self._snap_ids))
        self.snapshots[snap_id] = (time.monotonic(), items)
        while len(self.snapshots) > max_snapshots:
            self.snapshots.popitem(last=False)
        return snap_id

    def add_watcher(self, w: Watcher, since_rv: int | None) -> bool:
        """Register ``w`` and queue what it missed since ``since_rv`` (None: synthetic ADDED
        for every current object). False when ``since_rv`` is older than the history."""
        if since_rv is None:
            for obj in self.matching(w.plural, w):
                w.queue.put_nowait(("ADDED", obj))
        elif since_rv < self.compacted_rv:
            return False
        else:
            for ev in self.history:
                if ev.rv > since_rv and ev.plural == w.plural:
                    seen = w.translate(ev)
                    if seen is not None:
                        w.queue.put_nowait(seen)
        self.watchers.add(w)
        return True
