"""Applies the rendered rulesets to the kernel: coalesced, atomic, full then partial.

One sync renders every family from a fresh model snapshot and sends one ``nft -f -``
transaction per family. The first sync, every sync after a failure and one per
``full_sync_period`` are full (they converge whatever the table holds); the others send only
the difference from the last applied ruleset. Requests arriving while a sync is pending or
running are coalesced, and syncs start at least ``min_sync_period`` apart. After each applied
transaction, conntrack entries of UDP flows whose endpoint went away are deleted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from kdns.proxy import metrics, transaction
from kdns.proxy.conntrack import Conntrack, stale_flows
from kdns.proxy.model import FAMILIES, Family, ServicePort
from kdns.proxy.nft import Nft, NftError
from kdns.proxy.nodeaddrs import NodeAddresses, select
from kdns.proxy.render import RenderConfig, Ruleset, render

log = logging.getLogger("kdns.proxy")


@dataclass(frozen=True, slots=True)
class SyncSettings:
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    full_sync_period: float = 3600.0
    stale_chain_delay: float = 1.0  # flushed chains are deleted at least this much later
    health_timeout: float = 60.0  # /healthz fails when a change waits longer than this


class Syncer:
    def __init__(
        self,
        cfg: RenderConfig,
        snapshot: Callable[[], Sequence[ServicePort]],
        *,
        nft: Nft,
        conntrack: Conntrack,
        families: Sequence[Family] = FAMILIES,
        settings: SyncSettings = SyncSettings(),
        clock: Callable[[], float] = time.monotonic,
        on_applied: Callable[[Sequence[ServicePort]], Awaitable[None]] | None = None,
        nodeport_cidrs: Sequence[str] | None = None,
        addresses: NodeAddresses | None = None,
    ) -> None:
        self.cfg = cfg
        # --nodeport-addresses: re-read the node's addresses before every sync (they change).
        self._nodeport_cidrs = tuple(nodeport_cidrs) if nodeport_cidrs is not None else None
        self._addresses = addresses or NodeAddresses()
        self.settings = settings
        self._snapshot = snapshot
        self._nft = nft
        self.conntrack = conntrack  # public: tests swap it to show what cleanup changes
        self._families = tuple(families)
        self._clock = clock
        self._on_applied = on_applied  # after each successful sync, with the model it applied
        self._applied: dict[Family, Ruleset] = {}
        self._stale: dict[Family, dict[str, float]] = {f: {} for f in self._families}
        self._need_full = True
        self._failures = 0  # consecutive failed syncs, for the retry backoff
        self._last_full = 0.0
        self._last_canary = 0.0
        self._last_attempt: float | None = None
        self._wakeup = asyncio.Event()
        self.queued_at: float | None = clock()  # the oldest change not yet applied
        self.last_success: float | None = None

    # -- state ---------------------------------------------------------------------------
    def applied(self, family: Family) -> Ruleset | None:
        return self._applied.get(family)

    def stale_chains(self, family: Family) -> frozenset[str]:
        return frozenset(self._stale[family])

    def healthy(self) -> bool:
        return self.queued_at is None or (
            self._clock() - self.queued_at < self.settings.health_timeout
        )

    def request(self) -> None:
        """Something changed: sync soon (coalesced with other requests)."""
        if self.queued_at is None:
            self.queued_at = self._clock()
        self._wakeup.set()

    def force_full(self) -> None:
        self._need_full = True
        self.request()

    async def refresh_node_addresses(self) -> None:
        """With --nodeport-addresses: the node's matching addresses into the config."""
        if self._nodeport_cidrs is not None:
            ips = select(await self._addresses.read(), self._nodeport_cidrs)
            self.cfg = dataclasses.replace(self.cfg, nodeport_ips=ips)

    # -- one sync ------------------------------------------------------------------------
    async def sync(self) -> bool:
        """One sync of every family; True when everything applied."""
        start = self._clock()
        self._last_attempt = start
        queued, self.queued_at = self.queued_at, None
        full = self._need_full or start - self._last_full >= self.settings.full_sync_period
        ports = self._snapshot()
        try:
            if not full and start - self._last_canary >= self.settings.sync_period:
                # Someone may have flushed the ruleset (a firewall reload, say): the table is
                # the canary, checked once per sync period; gone means a full sync now.
                self._last_canary = start
                for family in self._families:
                    if not await self._nft.has_table(family, self.cfg.table):
                        log.warning("table %s %s disappeared; full sync", family, self.cfg.table)
                        full = True
            if full:
                self._last_canary = start  # a full sync (re)creates the tables
            await self.refresh_node_addresses()
            for family in self._families:
                await self._sync_family(family, ports, full, start)
        except NftError as e:
            log.error("sync failed, next sync is a full one: %s", e)
            metrics.SYNC_FAILURES.inc()
            self._need_full = True
            self._failures += 1
            if queued is not None:
                self.queued_at = min(queued, self.queued_at or queued)
            return False
        elapsed = self._clock() - start
        self._failures = 0
        if full:
            self._need_full = False
            self._last_full = start
            metrics.FULL_SYNC_DURATION.observe(elapsed)
            rules = sum(rs.rule_count for rs in self._applied.values())
            log.info("full sync of %d service ports: %d rules in %s table %s, %.0f ms",
                     len(ports), rules, "+".join(self._families), self.cfg.table, elapsed * 1000)
        else:
            metrics.PARTIAL_SYNC_DURATION.observe(elapsed)
        metrics.SYNC_DURATION.observe(elapsed)
        metrics.LAST_SYNC.set_to_current_time()
        self.last_success = self._clock()
        if self._on_applied is not None:
            await self._on_applied(ports)
        return True

    async def _sync_family(
        self, family: Family, ports: Sequence[ServicePort], full: bool, now: float
    ) -> None:
        new = render(ports, self.cfg, family)
        old = self._applied.get(family)
        stale = self._stale[family]
        if full or old is None:
            existing = await self._nft.existing(family, self.cfg.table)
            text = transaction.full(new, existing)
            flushed = transaction.stale_after_full(new, existing)
            deleted: set[str] = set()
        else:
            due = {c for c, t in stale.items() if now - t >= self.settings.stale_chain_delay}
            text = transaction.partial(old, new, due)
            flushed = frozenset(old.chains.keys() - new.chains.keys())
            deleted = due - new.chains.keys()
        if text:
            await self._nft.apply(text)
            log.debug("%s sync of %s %s: %d lines", "full" if full else "partial", family,
                      self.cfg.table, text.count("\n"))
        for name in deleted | (stale.keys() & new.chains.keys()):
            stale.pop(name, None)
        for name in flushed:
            stale.setdefault(name, now)
        self._applied[family] = new
        metrics.RULES.labels(family).set(new.rule_count)
        metrics.CHAINS.labels(family).set(len(new.chains))
        flows = await self.conntrack.delete_stale(family, stale_flows(old, new))
        metrics.CONNTRACK_DELETED.inc(flows)

    # -- the loop ------------------------------------------------------------------------
    def _next_deadline(self) -> float:
        s = self.settings
        last = self._last_attempt if self._last_attempt is not None else self._clock()
        if self._failures:  # retry with backoff: min period, doubling, up to the sync period
            retry = s.min_sync_period * 2.0 ** min(self._failures - 1, 16)
            deadline = last + min(max(retry, s.min_sync_period), s.sync_period)
        else:
            deadline = last + s.sync_period
        for stale in self._stale.values():
            if stale:
                deadline = min(deadline, min(stale.values()) + s.stale_chain_delay)
        return deadline

    async def run(self) -> None:
        """Syncs forever: at once, then on requests, stale-chain deadlines and periodically."""
        self._wakeup.set()
        while True:
            timeout = max(0.0, self._next_deadline() - self._clock())
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass
            if self._last_attempt is not None:
                wait = self._last_attempt + self.settings.min_sync_period - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._wakeup.clear()
            await self.sync()

    async def cleanup(self) -> None:
        """Deletes this proxy's tables (both families)."""
        for family in self._families:
            await self._nft.apply(transaction.cleanup(family, self.cfg.table))
