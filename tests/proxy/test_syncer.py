"""Syncer logic against a recording fake of nft (no kernel): full/partial choice, coalescing,
min sync period, failure recovery, stale-chain deletion timing, health."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence

from kdns.proxy import names
from kdns.proxy.conntrack import Conntrack, FlowFilter
from kdns.proxy.model import ServicePort
from kdns.proxy.nft import Nft, NftError
from kdns.proxy.syncer import Syncer, SyncSettings
from kdns.proxy.transaction import Existing
from tests.proxy import scenarios as sc


@dataclasses.dataclass(frozen=True)
class FakeNft(Nft):
    log: list[str] = dataclasses.field(default_factory=list)
    times: list[float] = dataclasses.field(default_factory=list)
    applied: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    table_present: list[bool] = dataclasses.field(default_factory=lambda: [True])
    fail: list[bool] = dataclasses.field(default_factory=list)  # pop(0) per apply

    async def apply(self, text: str, *, check_only: bool = False) -> None:
        if self.fail and self.fail.pop(0):
            raise NftError("nft -f failed (rc 1): Error: simulated")
        self.log.append(text)
        self.times.append(time.monotonic())
        self.applied.set()

    async def existing(self, family: str, table: str) -> Existing:
        return Existing()

    async def has_table(self, family: str, table: str) -> bool:
        return self.table_present[0]


@dataclasses.dataclass(frozen=True)
class FakeConntrack(Conntrack):
    deleted: list[FlowFilter] = dataclasses.field(default_factory=list)

    async def delete_stale(self, family: str, filters: Sequence[FlowFilter]) -> int:
        self.deleted.extend(filters)
        return len(filters)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(ports: list[ServicePort], **settings: float) -> tuple[Syncer, FakeNft, FakeConntrack,
                                                                 Clock]:
    nft, ct, clock = FakeNft(), FakeConntrack(), Clock()
    syncer = Syncer(sc.CFG, lambda: list(ports), nft=nft, conntrack=ct, families=("ip",),
                    settings=SyncSettings(**settings), clock=clock)
    return syncer, nft, ct, clock


async def test_first_sync_is_full_then_partial_and_noop_when_unchanged() -> None:
    ports = [sc.WEB]
    syncer, nft, _, _ = make(ports)
    assert await syncer.sync()
    assert nft.log[0].startswith("add table ip kdns-proxy")
    assert await syncer.sync()
    assert len(nft.log) == 1  # nothing changed: no transaction at all
    ports.append(sc.EMPTY)
    assert await syncer.sync()
    assert not nft.log[1].startswith("add table") and "10.96.0.11" in nft.log[1]


async def test_failure_forces_a_full_sync_and_keeps_the_change_queued() -> None:
    ports = [sc.WEB]
    syncer, nft, _, clock = make(ports)
    assert await syncer.sync()
    ports.append(sc.EMPTY)
    syncer.request()
    nft.fail.append(True)
    assert not await syncer.sync()
    assert syncer.queued_at is not None  # still pending: health will notice if it persists
    clock.now += 61
    assert not syncer.healthy()
    assert await syncer.sync()
    assert nft.log[-1].startswith("add table")  # recovery is a full sync
    assert syncer.healthy() and syncer.queued_at is None


async def test_full_resync_period() -> None:
    syncer, nft, _, clock = make([sc.WEB], full_sync_period=3600)
    assert await syncer.sync()
    clock.now += 3601
    assert await syncer.sync()
    assert len(nft.log) == 2 and nft.log[1].startswith("add table")


async def test_stale_chains_deleted_after_delay() -> None:
    ports = [sc.WEB]
    syncer, nft, _, clock = make(ports, stale_chain_delay=1.0)
    assert await syncer.sync()
    ports[0] = dataclasses.replace(sc.WEB, endpoints=sc.WEB.endpoints[:1])
    assert await syncer.sync()
    gone = names.endpoint_chain(sc.WEB, sc.WEB.endpoints[1])
    assert syncer.stale_chains("ip") == {gone} and "delete chain" not in nft.log[-1]
    clock.now += 0.5
    assert await syncer.sync()
    assert len(nft.log) == 2  # not yet due
    clock.now += 0.6
    assert await syncer.sync()
    assert nft.log[-1] == f"delete chain ip kdns-proxy {gone}\n"
    assert not syncer.stale_chains("ip")


async def test_conntrack_cleanup_runs_only_after_applied_syncs() -> None:
    ports = list(sc.DNS)
    syncer, nft, ct, _ = make(ports)
    assert await syncer.sync()
    assert ct.deleted == [FlowFilter("ip", "10.96.0.53", 53, "10.96.0.53")]
    ports[0] = dataclasses.replace(sc.DNS[0], endpoints=sc.DNS[0].endpoints[1:])
    nft.fail.append(True)
    assert not await syncer.sync()
    assert len(ct.deleted) == 1
    assert await syncer.sync()
    assert ct.deleted[1:] == [FlowFilter("ip", "10.96.0.53", 53, "10.244.1.20")]


async def test_run_coalesces_bursts_and_respects_min_sync_period() -> None:
    ports: list[ServicePort] = []
    nft, ct = FakeNft(), FakeConntrack()
    syncer = Syncer(sc.CFG, lambda: list(ports), nft=nft, conntrack=ct, families=("ip",),
                    settings=SyncSettings(min_sync_period=0.3, sync_period=30))
    task = asyncio.create_task(syncer.run())
    try:
        await asyncio.wait_for(nft.applied.wait(), 10)  # the initial full sync runs at once
        nft.applied.clear()
        for i in range(50):  # a burst of changes
            ports.append(dataclasses.replace(sc.WEB, name=f"web{i}",
                                             cluster_ips=(f"10.96.1.{i}",)))
            syncer.request()
            await asyncio.sleep(0)
        await asyncio.wait_for(nft.applied.wait(), 10)
        await asyncio.sleep(0.5)
        assert len(nft.log) == 2, "the burst must be applied as one transaction"
        # Syncs start >= min_sync_period apart; applies follow a render, so allow some slack.
        assert nft.times[1] - nft.times[0] >= 0.25
        assert nft.log[1].count("add element ip kdns-proxy cluster-ips") == 50
    finally:
        task.cancel()


async def test_failed_syncs_retry_with_backoff_capped_at_sync_period() -> None:
    syncer, nft, _, clock = make([sc.WEB], min_sync_period=1.0, sync_period=30.0)
    delays = []
    for _ in range(7):
        nft.fail.append(True)
        assert not await syncer.sync()
        delays.append(syncer._next_deadline() - clock.now)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert await syncer.sync()
    assert syncer._next_deadline() - clock.now == 30.0


async def test_a_vanished_table_is_noticed_within_a_sync_period() -> None:
    syncer, nft, _, clock = make([sc.WEB], sync_period=30.0)
    assert await syncer.sync()
    nft.table_present[0] = False  # someone flushed the ruleset
    clock.now += 10
    assert await syncer.sync()
    assert len(nft.log) == 1  # not checked yet: nothing changed, nothing sent
    clock.now += 21
    assert await syncer.sync()
    assert len(nft.log) == 2 and nft.log[-1].startswith("add table")  # forced full sync
