"""UdpListener: fast-path replies, shedding by queue wait and in-flight cap, bounded reply queue.

A stub processor stands in for QueryProcessor; datagrams go through a real loopback socket.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any, cast

import pytest

from kdns.query import QueryProcessor
from kdns.server import udp
from kdns.server.udp import (
    MAX_SEND_QUEUE,
    SO_TIMESTAMPNS,
    InflightTracker,
    UdpListener,
    arrival_time,
)


class StubProcessor:
    """Replies b"fast:<query>" to queries starting with b"f"; the rest never finish."""

    server = "dns://:0"

    def __init__(self) -> None:
        self.started = 0
        self.forever = asyncio.Event()

    def fast(self, wire: bytes, client: Any, proto: str) -> bytes | None:
        return b"fast:" + wire if wire.startswith(b"f") else None

    async def process(self, wire: bytes, client: Any, proto: str, local: Any) -> bytes | None:
        self.started += 1
        await self.forever.wait()
        return None


def bound() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def listener(sock: socket.socket, stub: StubProcessor, **kw: Any) -> UdpListener:
    return UdpListener(sock, cast(QueryProcessor, stub), InflightTracker(), **kw)


async def receive(client: socket.socket) -> bytes:
    """The next datagram for ``client``, read off the loop (the listener runs on it)."""
    return await asyncio.get_running_loop().run_in_executor(None, client.recv, 100)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_arrival_time_reads_scm_timestampns() -> None:
    data = struct.pack("@qq", 1_700_000_000, 250_000_000)
    assert arrival_time([(socket.SOL_SOCKET, SO_TIMESTAMPNS, data)]) == 1_700_000_000.25
    assert arrival_time([]) is None
    assert arrival_time([(socket.SOL_SOCKET, SO_TIMESTAMPNS, b"\0")]) is None


async def test_fast_path_replies_are_sent() -> None:
    stub = StubProcessor()
    with bound() as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        lst = listener(sock, stub)
        client.settimeout(2)
        client.sendto(b"fq1", sock.getsockname())
        reply = await receive(client)
        assert reply == b"fast:fq1"
        lst.close()


async def test_slow_queries_beyond_the_inflight_cap_are_dropped() -> None:
    stub = StubProcessor()
    with bound() as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        lst = listener(sock, stub, max_inflight=10)
        for i in range(30):
            client.sendto(b"s%d" % i, sock.getsockname())
        await settle()
        assert stub.started == 10
        assert lst.dropped["inflight"] == 20
        stub.forever.set()
        lst.close()


@pytest.mark.skipif(not udp.TIMESTAMPING, reason="SO_TIMESTAMPNS is Linux-only")
async def test_backlogged_slow_queries_that_waited_too_long_are_dropped() -> None:
    """The first wakeup reads a batch without timestamps and finds more queued; the next reads
    arrival times: with a zero timeout every slow-path query has waited too long, while
    fast-path queries are still answered."""
    stub = StubProcessor()
    with bound() as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        lst = listener(sock, stub, queue_timeout=0.0)
        n = udp.BATCH + 20
        for i in range(n):
            client.sendto(b"s%d" % i, sock.getsockname())
        client.sendto(b"fq", sock.getsockname())
        await settle()
        assert stub.started == udp.BATCH
        assert lst.dropped["queue_timeout"] == 20
        client.settimeout(2)
        assert client.recv(100) == b"fast:fq"
        stub.forever.set()
        lst.close()


class BlockedSocket:
    """A socket whose sendto would always block (the kernel send buffer is full)."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def sendto(self, data: bytes, addr: Any) -> int:
        raise BlockingIOError


async def test_reply_queue_is_capped_and_drops_counted() -> None:
    with bound() as real:
        lst = listener(cast(socket.socket, BlockedSocket(real)), StubProcessor())
        reply = b"x" * 1000
        fits = MAX_SEND_QUEUE // len(reply)
        for _ in range(fits + 50):
            lst.send(reply, ("127.0.0.1", 9))
        assert lst.send_queue_bytes == fits * len(reply) <= MAX_SEND_QUEUE
        assert lst.dropped["send_buffer"] == 50
        assert udp.STATS.send_queue_bytes()[lst.server] >= lst.send_queue_bytes
        lst.close()
        assert lst.send_queue_bytes == 0


class EagerProcessor(StubProcessor):
    """Answers b"s..." at once (no await that suspends) and b"w..." after a real wait."""

    async def process(self, wire: bytes, client: Any, proto: str, local: Any) -> bytes | None:
        self.started += 1
        if wire.startswith(b"w"):
            await asyncio.sleep(0.05)
            return b"waited:" + wire
        return b"slow:" + wire


async def test_slow_answers_that_never_suspend_need_no_task() -> None:
    stub = EagerProcessor()
    with bound() as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        lst = listener(sock, stub)
        client.settimeout(2)
        client.sendto(b"s1", sock.getsockname())
        reply = await receive(client)
        assert reply == b"slow:s1"
        assert not lst.tracker.tasks and lst.inflight == 0
        client.sendto(b"w1", sock.getsockname())
        await asyncio.sleep(0.02)
        assert len(lst.tracker.tasks) == 1 and lst.inflight == 1  # suspended: in a Task now
        reply = await receive(client)
        assert reply == b"waited:w1"
        await settle()
        assert not lst.tracker.tasks and lst.inflight == 0
        lst.close()


async def test_a_suspended_query_can_be_cancelled_at_shutdown() -> None:
    stub = StubProcessor()  # b"x" waits forever
    with bound() as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        lst = listener(sock, stub)
        client.sendto(b"x", sock.getsockname())
        await settle()
        assert lst.inflight == 1 and len(lst.tracker.tasks) == 1
        await lst.tracker.drain(0.05)  # cancels what did not finish in time
        await settle()
        assert lst.inflight == 0 and not lst.tracker.tasks
        lst.close()


async def test_a_wakeup_reads_what_is_queued_and_stops_when_empty() -> None:
    stub = StubProcessor()
    with bound() as sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        lst = listener(sock, stub)  # the loop never runs below: readable events by hand
        client.settimeout(2)
        client.sendto(b"f0", sock.getsockname())
        time.sleep(0.002)  # noqa: ASYNC251 - the loop must not run and read it first
        lst._on_readable()
        assert client.recv(100) == b"fast:f0" and not lst.backlogged
        for i in range(100):  # a burst: a batch of 64, then the other 36
            client.sendto(b"fb%d" % i, sock.getsockname())
        time.sleep(0.05)  # noqa: ASYNC251 - as above
        lst._on_readable()
        assert lst.backlogged
        lst._on_readable()
        assert not lst.backlogged
        replies = {client.recv(100) for _ in range(100)}
        assert replies == {b"fast:fb%d" % i for i in range(100)}
        for wire in (b"f1", b"", b"f2"):  # FIONREAD says 0 for a queued empty datagram
            client.sendto(wire, sock.getsockname())
        time.sleep(0.01)  # noqa: ASYNC251 - as above
        lst._on_readable()  # reads f1, sees 0 and stops
        assert client.recv(100) == b"fast:f1"
        client.settimeout(0.1)
        with pytest.raises(TimeoutError):
            client.recv(100)
        lst._on_readable()  # level-triggered: the next wakeup reads the rest
        assert client.recv(100) == b"fast:f2"
        lst.close()
