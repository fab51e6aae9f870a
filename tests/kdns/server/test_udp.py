"""UdpListener: fast-path replies, shedding by queue wait and in-flight cap, bounded reply queue.

A stub processor stands in for QueryProcessor; datagrams go through a real loopback socket.
"""

from __future__ import annotations

import asyncio
import socket
import struct
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
        reply = await asyncio.get_running_loop().run_in_executor(None, client.recv, 100)
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
