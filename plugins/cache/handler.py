"""cache handler: lookups, storing, TTL countdown, prefetch and serve-stale (CoreDNS handler.go).

Rules:
1. The denial cache is checked before the success cache, except that a cached SERVFAIL yields to
   a usable success entry (fresh or stale-servable), so a failing upstream never hides a stale
   positive answer (reliability.md §5).
2. Only whole responses to exactly the asked question are stored; anything else is a drop.
3. Every RR of a reply carries the entry's remaining TTL (origTTL - floor(elapsed)); stale
   answers carry TTL 0, as CoreDNS (not RFC 8767's 30 s). Cached SERVFAILs are never stale-served.
4. At most one background refresh runs per entry; after a failed stale refresh the next one
   waits STALE_RECHECK seconds (RFC 8767 §4 failure recheck).
5. Wire fast path (kdns/wire/fastpath.py): a fresh hit is declared reusable while its entry
   stays in the store and its TTL is above 0, with TTLs counting down from the entry's; each
   replay counts as a cache request and hit (plain-int Tallies added to the counters at scrape
   time). The reply to a miss that was stored is declared the same way (it is what the next
   hit returns) unless the upstream reply lacked AA (a hit sets it). Stale answers and
   prefetch-enabled caches (every hit counts toward a prefetch) are not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rdatatype

from kdns import metrics as server_metrics
from kdns.errors import KdnsError
from kdns.log import plugin_log
from kdns.plugin import Handler, Plugin, Request, in_zones
from kdns.wire.fastpath import Tally

from .classify import NEGATIVE, MsgType, clamp, is_truncated, minimal_ttl, typify
from .metrics import bind
from .parse import CacheConfig
from .store import Entry, Store, make_entry, make_key

log = plugin_log("cache")
STALE_RECHECK = 30.0
VERIFY_TIMEOUT = 1.8  # RFC 8767 client response timer


class Cache(Plugin):
    name = "cache"

    def __init__(self, next: Handler, cfg: CacheConfig, server: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.clock = clock
        self.pcache = Store(cfg.success_capacity)
        self.ncache = Store(cfg.denial_capacity)
        self.metrics = bind(server, ",".join(cfg.zones))
        self._tasks: set[asyncio.Task[Any]] = set()
        # Hits replayed by the wire fast path, per entry kind, and how many are in the counters.
        self.replays = {"success": Tally(), "denial": Tally()}
        self._replays_counted = {"success": 0, "denial": 0}

    # --- the slow path ------------------------------------------------------------------
    async def serve(self, req: Request) -> dns.message.Message:
        if in_zones(req.qname, self.cfg.zones) is None:
            return await self.next.serve(req)
        now = self.clock()
        name_wire = _wire_of(req.name)
        key = make_key(name_wire, req.qtype, req.qclass, req.do, req.cd)
        self.metrics.requests.inc()
        entry = self._pick(key, now)
        if entry is None:
            self.metrics.misses.inc()
            # The next identical query is a hit answered here, whatever the plugins after
            # this one declared about reuse: replaying this reply means replaying that hit.
            mark = req.reuse_mark()
            msg = await self.next.serve(req)
            reply, stored = self._after_fetch(req, key, msg)
            req.reuse_reset(mark)
            if stored is None or not msg.flags & dns.flags.AA:
                req.not_reusable()  # not stored, or a hit would differ (AA)
            else:
                self._declare_reuse(req, stored)
            return reply
        self.metrics.hits[entry.kind].inc()
        ttl = entry.ttl(now)
        if ttl <= 0:
            if self.cfg.stale_verify:
                fresh = await self._verify(req, key, entry)
                if fresh is not None:
                    return fresh
            else:
                self._refresh(req, key, entry, prefetch=False)
            self.metrics.served_stale.inc()
            ttl = 0
            req.not_reusable()
        else:
            if self._should_prefetch(entry, now):
                self._refresh(req, key, entry, prefetch=True)
            if self.cfg.keepttl:
                ttl = entry.orig_ttl
            self._declare_reuse(req, entry)
        req.answered_by = self.name
        return self._reply(req, entry, ttl)

    def _declare_reuse(self, req: Request, entry: Entry) -> None:
        """A fresh hit may be replayed until the entry leaves the store or expires."""
        if self.cfg.prefetch > 0:
            req.not_reusable()  # every hit counts toward the prefetch decision
            return
        req.reusable(entry.version, until=entry.stored + entry.orig_ttl - 1e-6)
        if not self.cfg.keepttl:
            req.ttl_counts_down(entry.stored, entry.orig_ttl)
        req.count_replays(self.replays[entry.kind])

    def count_replays(self) -> None:
        """Add the fast path's replayed hits to the counters (run before every scrape)."""
        for kind, tally in self.replays.items():
            new = tally.n - self._replays_counted[kind]
            if new:
                self._replays_counted[kind] = tally.n
                self.metrics.requests.inc(new)
                self.metrics.hits[kind].inc(new)

    def _pick(self, key: bytes, now: float) -> Entry | None:
        neg = self.ncache.get(key)
        pos = self.pcache.get(key)
        pos_ok = pos is not None and self._usable(pos, now)
        if neg is not None and self._usable(neg, now) and not (neg.servfail and pos_ok):
            return neg
        return pos if pos_ok else None

    def _usable(self, e: Entry, now: float) -> bool:
        ttl = e.ttl(now)
        if ttl > 0:
            return True
        # A SERVFAIL is never served stale: it is not data, and the refresh may now succeed.
        return self.cfg.stale_up_to > 0 and -ttl < self.cfg.stale_up_to and not e.servfail

    def _reply(self, req: Request, entry: Entry, ttl: int, aa: bool = True) -> dns.message.Message:
        """The reply to ``req`` from ``entry`` (CoreDNS item.toMsg): AA set, RA kept, AD only
        if the client set DO or AD."""
        r = req.reply(entry.rcode, aa=aa)
        r.flags |= entry.flags & dns.flags.RA
        if req.do or req.msg.flags & dns.flags.AD:
            r.flags |= entry.flags & dns.flags.AD
        r.answer, r.authority, r.additional = entry.sections(ttl)
        return r

    def _after_fetch(self, req: Request, key: bytes, msg: dns.message.Message
                     ) -> tuple[dns.message.Message, Entry | None]:
        entry = self._store(req, key, msg, self.clock())
        if entry is None:
            return msg, None
        # CoreDNS applies the capped TTL to the reply it stores, too (no 1799 -> 8 jumps).
        return self._reply(req, entry, entry.orig_ttl, aa=bool(msg.flags & dns.flags.AA)), entry

    def _store(self, req: Request, key: bytes, msg: dns.message.Message,
               now: float) -> Entry | None:
        mt = typify(msg)
        if is_truncated(msg) or mt in (MsgType.OTHER_ERROR, MsgType.META):
            return None
        if not _same_question(req, msg):
            self.metrics.drops.inc()
            return None
        cfg = self.cfg
        if mt in NEGATIVE:
            kind, duration = "denial", clamp(minimal_ttl(msg, mt), cfg.denial_min_ttl,
                                             cfg.denial_ttl)
        elif mt is MsgType.SERVER_ERROR:
            kind, duration = "denial", int(cfg.servfail_ttl)
        else:
            kind, duration = "success", clamp(minimal_ttl(msg, mt), cfg.success_min_ttl,
                                              cfg.success_ttl)
        if duration <= 0:
            return None
        disabled = cfg.disable_success if kind == "success" else cfg.disable_denial
        if disabled and in_zones(req.qname, disabled) is not None:
            return None
        entry = make_entry(msg, duration, now, kind)
        store, other = (self.pcache, self.ncache) if kind == "success" else (self.ncache,
                                                                             self.pcache)
        if store.put(key, entry):
            self.metrics.evictions[kind].inc()
        if not entry.servfail:  # a SERVFAIL never replaces a positive answer
            other.remove(key)
        self.metrics.entries["success"].set(len(self.pcache))
        self.metrics.entries["denial"].set(len(self.ncache))
        return entry

    # --- prefetch and stale refresh -----------------------------------------------------
    def _should_prefetch(self, e: Entry, now: float) -> bool:
        if self.cfg.prefetch <= 0:
            return False
        if now - e.last_hit > self.cfg.prefetch_duration:
            e.hits = 0
        e.hits += 1
        e.last_hit = now
        threshold = math.ceil(self.cfg.prefetch_percentage / 100 * e.orig_ttl)
        return e.hits >= self.cfg.prefetch and e.ttl(now) <= threshold

    def _refresh(self, req: Request, key: bytes, entry: Entry, *, prefetch: bool,
                 force: bool = False) -> asyncio.Task[Entry | None] | None:
        if entry.refreshing:
            return None
        if not (prefetch or force) and self.clock() - entry.last_refresh_fail < STALE_RECHECK:
            return None
        entry.refreshing = True
        task = asyncio.get_running_loop().create_task(
            self._do_refresh(_clone(req), key, entry, prefetch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _do_refresh(self, req: Request, key: bytes, old: Entry,
                          prefetch: bool) -> Entry | None:
        try:
            msg = await self.next.serve(req)
        except (KdnsError, OSError):
            old.last_refresh_fail = self.clock()
            return None
        except Exception as e:  # a bug below us must not kill the task silently
            log.error("background refresh of %s %s failed: %r", req.qname,
                      dns.rdatatype.to_text(req.qtype), e)
            old.last_refresh_fail = self.clock()
            return None
        finally:
            old.refreshing = False
        new = self._store(req, key, msg, self.clock())
        if prefetch:
            self.metrics.prefetches.inc()
            if new is not None:
                new.hits, new.last_hit = old.hits, old.last_hit
        if new is None or new.servfail:
            old.last_refresh_fail = self.clock()
        return new

    async def _verify(self, req: Request, key: bytes, entry: Entry) -> dns.message.Message | None:
        """serve_stale verify: a fresh answer if the refresh succeeds in time, else None."""
        task = self._refresh(req, key, entry, prefetch=False, force=True)
        if task is None:
            return None
        try:
            async with asyncio.timeout(VERIFY_TIMEOUT):
                new = await asyncio.shield(task)
        except TimeoutError:
            return None
        if new is None or new.servfail:
            return None
        return self._reply(req, new, new.ttl(self.clock()))

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        server_metrics.on_scrape(self.count_replays)

    async def stop(self) -> None:
        self.count_replays()
        server_metrics.remove_scrape_hook(self.count_replays)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t


def _wire_of(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None
    return wire


def _same_question(req: Request, msg: dns.message.Message) -> bool:
    if len(msg.question) != 1:
        return False
    q = msg.question[0]
    return bool(q.name == req.name and q.rdtype == req.qtype and q.rdclass == req.qclass)


def _clone(req: Request) -> Request:
    """A copy of the request for background work (the client's one is finished by then)."""
    r = Request(req.msg, req.client, req.proto, local=req.local, server=req.server,
                size=req.size, udp_size=req.udp_size)
    r.zone = req.zone
    return r

