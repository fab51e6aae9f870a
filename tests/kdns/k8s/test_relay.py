"""The worker relay: one parent's reflector deltas reach every worker's sink intact."""

from __future__ import annotations

import asyncio
import socket

from kdns.k8s import relay
from kdns.k8s.reflector import DictSink


async def pair() -> tuple[relay.Peer, asyncio.StreamReader, relay.Follower,
                          asyncio.StreamReader]:
    a, b = socket.socketpair()
    pr, pw = await asyncio.open_connection(sock=a)
    wr, ww = await asyncio.open_connection(sock=b)
    return relay.Peer(pw), pr, relay.Follower(ww), wr


async def pump(follower: relay.Follower, reader: asyncio.StreamReader, hub: relay.Hub,
               peer: relay.Peer, preader: asyncio.StreamReader) -> None:
    async def worker_side() -> None:
        while True:
            follower.dispatch(await relay.read_frame(reader))

    async def parent_side() -> None:
        while True:
            msg = await relay.read_frame(preader)
            if msg[0] == "sub":
                hub.subscribe(peer, msg[1])

    await asyncio.gather(worker_side(), parent_side())


async def test_replace_in_chunks_then_deltas_and_late_subscribers() -> None:
    hub = relay.Hub()
    key = relay.feed_key("http://api", "/api/v1/services", None, None)
    parent_sink: DictSink[tuple[int, str]] = DictSink()
    tee = hub.tee(key, parent_sink)
    items = {f"ns/svc{i}": (i, "x") for i in range(relay.CHUNK * 2 + 17)}
    tee.replace(items)  # before any worker: kept as state
    peer, preader, follower, wreader = await pair()
    hub.peers.append(peer)
    task = asyncio.create_task(pump(follower, wreader, hub, peer, preader))
    worker_sink: DictSink[tuple[int, str]] = DictSink()
    synced = asyncio.Event()
    follow = asyncio.create_task(follower.follow(key, worker_sink, synced))
    await asyncio.wait_for(synced.wait(), 5)
    assert worker_sink.items == items
    tee.upsert("ns/new", (1, "y"))
    tee.delete("ns/svc0")
    for _ in range(100):
        if "ns/new" in worker_sink.items and "ns/svc0" not in worker_sink.items:
            break
        await asyncio.sleep(0.01)
    assert worker_sink.items == parent_sink.items
    follow.cancel()
    task.cancel()
    await asyncio.gather(follow, task, return_exceptions=True)


def test_frames_reject_garbage() -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\xff\xff\xff\xff")
        try:
            await relay.read_frame(reader)
        except ValueError:
            return
        raise AssertionError("oversized frame accepted")

    asyncio.run(run())
