"""Reflector: keep a consumer's view of one resource in step with the API server.

Loop (client-go's reflector, without its pitfalls for DNS):

1. LIST every page (``limit``/``continue``), reduce each object at once, then hand the whole
   result to ``sink.replace`` in one call: the consumer swaps state atomically, so no name
   disappears mid-relist. ``synced`` is set after the first such delivery and never cleared.
2. WATCH from the list's resourceVersion with bookmarks; every event (bookmarks too) advances the
   tracked resourceVersion, so a dropped, stalled or server-ended watch resumes from there
   WITHOUT a relist.
3. 410 Gone (HTTP status, or an ERROR event with code 410, or an expired continue token) means
   the resourceVersion is too old: relist (1).
4. Other failures retry with jittered exponential backoff (capped at a few seconds); the last
   known state is never cleared on errors.
5. A safety relist runs every ``resync_interval`` (± jitter) to heal events that were skipped.

Malformed objects or events are counted (``kdns_k8s_malformed_total``) and skipped; a reducer
returning None means "not interesting" and deletes the key. Any other exception (a bug here
or in the sink) is logged and the loop starts over with a full list after the backoff
(``kdns_k8s_relists_total{reason="error"}``): a dead reflector would silently freeze DNS.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from kdns.k8s import _json, metrics, relay
from kdns.k8s.client import ApiClient
from kdns.k8s.errors import (
    ApiConnectionError,
    ApiError,
    ApiGone,
    K8sError,
    MalformedObject,
    WatchStalled,
)
from kdns.k8s.resources import Resource
from kdns.k8s.watchstream import MALFORMED, WatchEvent

T = TypeVar("T")

_APPLIED = ("ADDED", "MODIFIED", "DELETED")
FIRST_PAGE = 10  # objects in the first page of a list; later pages are sized by bytes
PAGE_BYTES = 256 * 1024  # target JSON size of a list page: a few ms to parse
RETRY_AFTER_MAX = 30.0  # seconds; a larger Retry-After is not believed
_CPU_SLICE = 0.002  # seconds of reducing between yields to the event loop


class Sink(Protocol[T]):
    """Where a reflector delivers reduced objects. Keys are ``"ns/name"`` (or ``"name"`` for
    cluster-scoped resources). Calls come from the event loop thread, one at a time."""

    def replace(self, items: dict[str, T]) -> None:
        """The complete current set after a (re)list; swap to it atomically."""

    def upsert(self, key: str, item: T) -> None: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; it may be absent (deletes of uninteresting objects arrive too)."""


class DictSink(Generic[T]):
    """The simplest sink: a dict, swapped whole on replace."""

    def __init__(self) -> None:
        self.items: dict[str, T] = {}

    def replace(self, items: dict[str, T]) -> None:
        self.items = items

    def upsert(self, key: str, item: T) -> None:
        self.items[key] = item

    def delete(self, key: str) -> None:
        self.items.pop(key, None)


@dataclass(frozen=True, slots=True)
class ReflectorTiming:
    """Knobs of the loop (seconds). Tests shrink them; the defaults suit production."""

    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    watch_timeout: tuple[int, int] = (300, 600)  # server-side timeoutSeconds, picked at random
    idle_timeout: float = 120.0  # a watch silent this long (2x the bookmark interval) is dead
    resync_interval: float | None = 600.0  # safety relist; None disables it
    resync_jitter: float = 0.1  # ± fraction of resync_interval

    def backoff(self, failures: int) -> float:
        """Jittered exponential delay before retry number ``failures`` (1, 2, ...)."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** min(failures - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)

    def next_resync_in(self) -> float | None:
        if self.resync_interval is None:
            return None
        jitter = self.resync_interval * self.resync_jitter
        return self.resync_interval + random.uniform(-jitter, jitter)


def object_key(raw: dict[str, Any], namespaced: bool) -> str:
    """``"ns/name"`` (or ``"name"``); raises MalformedObject without a usable metadata."""
    namespace, name = _json.identity(_json.obj(raw.get("metadata"), "metadata"), namespaced)
    return f"{namespace}/{name}" if namespaced else name


class Reflector(Generic[T]):
    """List+watch one resource into ``sink``; see the module docstring for the loop."""

    def __init__(
        self,
        client: ApiClient,
        resource: Resource,
        reduce: Callable[[dict[str, Any]], T | None],
        sink: Sink[T],
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        page_bytes: int = PAGE_BYTES,
        timing: ReflectorTiming | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.reduce = reduce
        self.sink = sink
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.page_bytes = page_bytes
        self.timing = timing or ReflectorTiming()
        self.log = log or logging.getLogger("kdns.k8s")
        self.synced = asyncio.Event()
        # With -workers: the parent relays every delta to the workers (kdns/k8s/relay.py).
        self.feed = relay.feed_key(client.config.base_url, resource.path, label_selector,
                                   field_selector)
        if relay.HUB is not None:
            self.sink = relay.HUB.tee(self.feed, sink)
        self.resource_version = ""
        self.last_sync: float | None = None  # time.monotonic() of the last API confirmation
        self._resync_at: float | None = None  # loop.time() of the next safety relist
        self._got_event = False
        self._failures = 0  # consecutive failures; sets the backoff
        self._known: dict[str, tuple[str, T | None]] = {}  # key -> (resourceVersion, record)

    @property
    def resource_name(self) -> str:
        return self.resource.name

    async def run(self) -> None:
        """Run until cancelled."""
        if relay.FOLLOWER is not None:  # a worker: the parent watches for us
            await relay.FOLLOWER.follow(self.feed, self.sink, self.synced)
            return
        metrics.LAST_SYNC_AGE.track(self)
        try:
            await self._loop()
        finally:
            metrics.LAST_SYNC_AGE.untrack(self)

    async def _loop(self) -> None:
        name = self.resource.name
        list_reason: str | None = "initial"
        watched_since_list = False
        while True:
            retry_after: float | None = None
            try:
                if list_reason is None and not self.resource_version and watched_since_list:
                    # The list had no resourceVersion, so a watch cannot resume: relist.
                    list_reason = "norv"
                if list_reason is not None:
                    self._got_event = False
                    await self._list(list_reason)
                    list_reason = None
                    watched_since_list = False
                    self._recovered()
                started = time.monotonic()
                self._got_event = False
                watched_since_list = True
                if await self._watch():
                    list_reason = "resync"
                    continue
                metrics.WATCH_RESTARTS.labels(name, "ended").inc()
                if self._got_event or time.monotonic() - started > 1.0:
                    self._failures = 0
                    continue
                self._failures += 1  # an empty watch that ended at once: do not spin
            except ApiGone as exc:
                self.log.info("%s: %s; relisting", name, exc)
                if list_reason is None:  # the watch's resourceVersion expired: relist now
                    list_reason = "gone"
                    continue
                self._failures += 1  # the list itself got a 410 (expired continue token)
            except K8sError as exc:
                retry_after = exc.retry_after if isinstance(exc, ApiError) else None
                if self._got_event:
                    self._failures = 0
                self._failures += 1
                if list_reason is None:
                    reason = (
                        "stalled" if isinstance(exc, WatchStalled)
                        else "dropped" if isinstance(exc, ApiConnectionError)
                        else "error"
                    )
                    metrics.WATCH_RESTARTS.labels(name, reason).inc()
                elif list_reason != "initial":
                    list_reason = "error"
                n = self._failures
                if n & (n - 1) == 0 or n % 100 == 0:
                    self.log.warning("%s: %s (failure %d, retrying)", name, exc, n)
            except Exception as exc:  # a bug (ours or a sink's) must not end the watch for good
                # The sink may hold a half-applied change: start over from a full list.
                self._failures += 1
                if list_reason != "initial":
                    list_reason = "error"
                n = self._failures
                if n & (n - 1) == 0 or n % 100 == 0:
                    self.log.error("%s: unexpected %r (failure %d, relisting)", name, exc, n)
            await asyncio.sleep(self._delay(retry_after))

    def _delay(self, retry_after: float | None) -> float:
        """The backoff, stretched to the server's Retry-After (429 from API priority and
        fairness) but never beyond RETRY_AFTER_MAX."""
        delay = self.timing.backoff(self._failures)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_MAX))
        return delay

    def _recovered(self) -> None:
        if self._failures:
            self.log.info("%s: API server answering again after %d failures",
                          self.resource.name, self._failures)
            self._failures = 0

    async def _list(self, reason: str) -> None:
        items: dict[str, T] = {}
        known: dict[str, tuple[str, T | None]] = {}
        rv = ""
        token: str | None = None
        # Start small and grow: a page of 500 big EndpointSlices is ~15 MB of JSON, which
        # would block the loop for seconds and leave the heap fragmented (see _next_limit).
        limit = min(self.page_size, FIRST_PAGE)
        while True:
            page = await self.client.list_page(
                self.resource.path,
                limit=limit,
                continue_token=token,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
            )
            if page.malformed:
                metrics.MALFORMED.labels(self.resource.name).inc(page.malformed)
            await self._reduce_page(page.items, items, known)
            rv = page.resource_version
            if not page.continue_token:
                break
            token = page.continue_token
            limit = self._next_limit(limit, page.size, len(page.items))
            await asyncio.sleep(0)  # let queries run between pages
        self.sink.replace(items)
        self._known = known
        self.resource_version = rv
        metrics.LISTS.labels(self.resource.name).inc()
        if reason != "initial":
            metrics.RELISTS.labels(self.resource.name, reason).inc()
        self._confirmed()
        resync_in = self.timing.next_resync_in()
        loop = asyncio.get_running_loop()
        self._resync_at = None if resync_in is None else loop.time() + resync_in
        if not self.synced.is_set():
            self.log.info("%s: synced %d objects", self.resource.name, len(items))
            self.synced.set()

    async def _reduce_page(
        self, page: list[dict[str, Any]], into: dict[str, T], known: dict[str, tuple[str, T | None]]
    ) -> None:
        """Reduce one page into ``into``, yielding to the loop every few milliseconds."""
        slice_end = time.perf_counter() + _CPU_SLICE
        for raw in page:
            reduced = self._reduce(raw, known)
            if reduced is not None and reduced[1] is not None:
                into[reduced[0]] = reduced[1]
            if time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + _CPU_SLICE

    def _next_limit(self, limit: int, size: int, count: int) -> int:
        """The next page's limit: about ``page_bytes`` of JSON, at most double the last one,
        between FIRST_PAGE/5 and ``page_size``."""
        if size <= 0 or count <= 0:
            return limit
        ideal = int(self.page_bytes * count / size)
        return max(min(FIRST_PAGE // 5, self.page_size), min(ideal, limit * 2, self.page_size))

    async def _watch(self) -> bool:
        """Watch until the stream ends (False) or the safety relist is due (True)."""
        lo, hi = self.timing.watch_timeout
        events = self.client.watch(
            self.resource.path,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=random.randint(lo, hi),
            idle_timeout=self.timing.idle_timeout,
            on_open=self._confirmed,
        )
        try:
            async with asyncio.timeout_at(self._resync_at), aclosing(events):
                async for event in events:
                    self._apply(event)
        except TimeoutError:  # the client maps its own timeouts, so this is the resync timer
            return True
        self._confirmed()
        return False

    def _apply(self, event: WatchEvent) -> None:
        kind, raw = event
        if not self._got_event:
            self._got_event = True
            self._recovered()
        name = self.resource.name
        if kind == MALFORMED:
            metrics.MALFORMED.labels(name).inc()
            self.log.debug("%s: skipped malformed watch event: %s", name, raw.get("error"))
            return
        meta = raw.get("metadata")
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind in _APPLIED:
            self._apply_object(kind, raw)
        elif kind != "BOOKMARK":
            metrics.MALFORMED.labels(name).inc()
            return
        if isinstance(rv, str) and rv:
            self.resource_version = rv
        elif kind == "BOOKMARK":
            metrics.MALFORMED.labels(name).inc()
            return
        metrics.EVENTS.labels(name, kind).inc()
        self._confirmed()

    def _apply_object(self, kind: str, raw: dict[str, Any]) -> None:
        if kind == "DELETED":
            try:
                key = object_key(raw, self.resource.namespaced)
            except MalformedObject:
                metrics.MALFORMED.labels(self.resource.name).inc()
                return
            self._known.pop(key, None)
            self.sink.delete(key)
            return
        reduced = self._reduce(raw, self._known)
        if reduced is None:
            return
        key, item = reduced
        if item is None:
            self.sink.delete(key)
        else:
            self.sink.upsert(key, item)

    def _reduce(
        self, raw: dict[str, Any], known: dict[str, tuple[str, T | None]]
    ) -> tuple[str, T | None] | None:
        """(key, reduced or None) or None when the object is malformed (counted).

        An object whose resourceVersion is unchanged since it was last reduced reuses that
        record (a relist then costs JSON parsing only, and shares records with the old state);
        ``known`` receives the (resourceVersion, record) of this object.
        """
        try:
            key = object_key(raw, self.resource.namespaced)
            rv = raw["metadata"].get("resourceVersion")
            if isinstance(rv, str) and rv:
                seen = self._known.get(key)
                if seen is not None and seen[0] == rv:
                    known[key] = seen
                    return key, seen[1]
                item = self.reduce(raw)
                known[key] = (rv, item)
                return key, item
            known.pop(key, None)
            return key, self.reduce(raw)
        except Exception as exc:  # a reducer bug or bad object must not stop the reflector
            metrics.MALFORMED.labels(self.resource.name).inc()
            self.log.debug("%s: skipped malformed object: %s", self.resource.name, exc)
            return None

    def _confirmed(self) -> None:
        self.last_sync = time.monotonic()
