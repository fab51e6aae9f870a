"""One set of API watches per pod, whatever the number of worker processes.

With ``-workers N`` the parent process runs the reflectors (list+watch against the API server)
and relays every reduced delta to the workers; a worker's reflectors follow the parent instead
of talking to the API server. A delta is what a Sink sees (replace / upsert / delete) with the
compact, already-reduced item, so workers never parse API JSON.

Wire: frames of a 4-byte big-endian length and a pickle, over a socketpair the parent made (both
ends are our own processes). Parent -> worker: a replace as ("chunk", key, items) frames of at
most CHUNK items then ("replace", key, items) with the last ones (so a worker unpickles a 100,000
endpoint relist a slice at a time and still swaps its state in one call), ("upsert", key, k,
item), ("delete", key, k). Worker -> parent: ("sub", key), and whatever the worker supervisor
sends (status, metrics).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
log = logging.getLogger("kdns.k8s")

FeedKey = tuple[str, str, str, str]  # api base URL, resource path, label and field selectors
_LEN = struct.Struct("!I")
MAX_FRAME = 1 << 30
CHUNK = 2000


class SinkLike(Protocol[T]):
    def replace(self, items: dict[str, T]) -> None: ...
    def upsert(self, key: str, item: T) -> None: ...
    def delete(self, key: str) -> None: ...


def encode(msg: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    head = await reader.readexactly(4)
    (n,) = _LEN.unpack(head)
    if n > MAX_FRAME:
        raise ValueError(f"relay frame too large: {n}")
    msg = pickle.loads(await reader.readexactly(n))
    if not isinstance(msg, tuple) or not msg:
        raise ValueError("malformed relay frame")
    return msg


class Peer:
    """One worker connection as the parent sees it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.subscriptions: set[FeedKey] = set()

    def send(self, msg: tuple[Any, ...]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(msg))

    def send_replace(self, key: FeedKey, items: dict[str, Any]) -> None:
        pairs = list(items.items())
        while len(pairs) > CHUNK:
            self.send(("chunk", key, dict(pairs[:CHUNK])))
            del pairs[:CHUNK]
        self.send(("replace", key, dict(pairs)))


class Hub:
    """Parent side: the state of every feed, and the workers subscribed to each."""

    def __init__(self) -> None:
        self.state: dict[FeedKey, dict[str, Any]] = {}
        self.peers: list[Peer] = []

    def tee(self, key: FeedKey, sink: SinkLike[T]) -> SinkLike[T]:
        return _TeeSink(self, key, sink)

    def subscribe(self, peer: Peer, key: FeedKey) -> None:
        peer.subscriptions.add(key)
        if key in self.state:
            peer.send_replace(key, self.state[key])

    def broadcast(self, key: FeedKey, msg: tuple[Any, ...]) -> None:
        for peer in self.peers:
            if key in peer.subscriptions:
                peer.send(msg)

    def broadcast_replace(self, key: FeedKey, items: dict[str, Any]) -> None:
        for peer in self.peers:
            if key in peer.subscriptions:
                peer.send_replace(key, items)


class _TeeSink(Generic[T]):
    def __init__(self, hub: Hub, key: FeedKey, sink: SinkLike[T]) -> None:
        self.hub, self.key, self.sink = hub, key, sink

    def replace(self, items: dict[str, T]) -> None:
        self.sink.replace(items)
        self.hub.state[self.key] = dict(items)
        self.hub.broadcast_replace(self.key, self.hub.state[self.key])

    def upsert(self, key: str, item: T) -> None:
        self.sink.upsert(key, item)
        self.hub.state.setdefault(self.key, {})[key] = item
        self.hub.broadcast(self.key, ("upsert", self.key, key, item))

    def delete(self, key: str) -> None:
        self.sink.delete(key)
        self.hub.state.setdefault(self.key, {}).pop(key, None)
        self.hub.broadcast(self.key, ("delete", self.key, key))


class Follower:
    """Worker side: feeds the local sinks from the parent's deltas."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.sinks: dict[FeedKey, list[tuple[SinkLike[Any], asyncio.Event]]] = {}
        self.pending: dict[FeedKey, dict[str, Any]] = {}  # replace chunks received so far

    async def follow(self, key: FeedKey, sink: SinkLike[Any], synced: asyncio.Event) -> None:
        """Run until cancelled, like Reflector.run, but fed by the parent."""
        entry = (sink, synced)
        self.sinks.setdefault(key, []).append(entry)
        self.writer.write(encode(("sub", key)))
        try:
            await asyncio.Event().wait()
        finally:
            self.sinks[key].remove(entry)

    def dispatch(self, msg: tuple[Any, ...]) -> bool:
        """Apply a feed message; False when it is not one."""
        kind = msg[0]
        if kind not in ("chunk", "replace", "upsert", "delete"):
            return False
        key = msg[1]
        if kind == "chunk":
            self.pending.setdefault(key, {}).update(msg[2])
            return True
        if kind == "replace":
            items = self.pending.pop(key, {})
            items.update(msg[2])
        for sink, synced in self.sinks.get(key, ()):
            if kind == "replace":
                sink.replace(dict(items))
                synced.set()
            elif kind == "upsert":
                sink.upsert(msg[2], msg[3])
            else:
                sink.delete(msg[2])
        return True


# The process's role, set once at start-up by kdns.server.workers (None: a single process).
HUB: Hub | None = None
FOLLOWER: Follower | None = None


def feed_key(base_url: str, path: str, label_selector: str | None,
             field_selector: str | None) -> FeedKey:
    return (base_url, path, label_selector or "", field_selector or "")


def install_hub() -> Hub:
    global HUB
    HUB = Hub()
    return HUB


def install_follower(writer: asyncio.StreamWriter) -> Follower:
    global FOLLOWER
    FOLLOWER = Follower(writer)
    return FOLLOWER


Handler = Callable[[tuple[Any, ...]], None]
