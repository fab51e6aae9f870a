"""Upstream I/O for forward: the only module of the plugin that touches sockets.

``Transport.exchange(upstream, query, proto, timeout)`` sends one query and returns the parsed
reply, or raises ``UpstreamTimeout``/``UpstreamError`` (socket errors never leak past here).

UDP (RFC 5452, reliability.md §5): every exchange gets a new socket ``connect()``ed to the upstream,
so the kernel picks a random ephemeral source port and drops datagrams from any other address.
Datagrams that fail ``reply_matches`` or do not parse are counted and ignored; the wait goes on
until the timeout (a spoofer cannot end an exchange early). A near miss (our question, wrong ID)
moves the query to TCP at once (wire.py rule 3). After a reply, the socket is closed, so
duplicates are never read.

TCP: connections are pooled per upstream and reused until ``expire`` seconds idle (CoreDNS's
``expire``); one query at a time per connection. A pooled connection the peer has closed is
replaced at once, without counting as a failure.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import dns.exception
import dns.message

from kdns.errors import UpstreamError, UpstreamTimeout

from .metrics import CONN_CACHE_HITS, CONN_CACHE_MISSES, MISMATCHES, TCP_FALLBACKS
from .parse import Upstream
from .wire import is_near_miss, question_end, reply_matches

MAX_POOLED_PER_UPSTREAM = 64


class Transport(Protocol):
    async def exchange(self, upstream: Upstream, query: bytes, proto: str,
                       timeout: float) -> dns.message.Message: ...

    async def close(self) -> None: ...


def parse_reply(data: bytes) -> dns.message.Message | None:
    """The parsed reply; None if unparsable."""
    try:
        msg = dns.message.from_wire(data, one_rr_per_rrset=False)
    except (dns.exception.DNSException, ValueError, IndexError):
        return None
    return msg


class _UdpExchange(asyncio.DatagramProtocol):
    """Waits for the first acceptable datagram on one connected socket."""

    def __init__(self, query: bytes, qend: int, upstream: Upstream,
                 done: asyncio.Future[dns.message.Message], metrics: bool = True) -> None:
        self.metrics = metrics
        self.query = query
        self.qend = qend
        self.upstream = upstream
        self.done = done
        self.mismatches = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.done.done():
            return
        msg = parse_reply(data) if reply_matches(data, self.query, self.qend) else None
        if msg is None:
            self.mismatches += 1
            if self.metrics:
                MISMATCHES.labels(self.upstream.label).inc()
            if is_near_miss(data, self.query, self.qend):
                self.done.set_exception(NearMiss())
            return
        self.done.set_result(msg)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable on the connected socket: the upstream is not listening.
        if not self.done.done():
            self.done.set_exception(UpstreamError(f"read udp {self.upstream.label}: {exc}"))


class _TcpConn:
    __slots__ = ("created", "last_used", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.created = self.last_used = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class NearMiss(Exception):
    """A reply to our question with a wrong ID arrived: someone guessed our port."""


class CachedConnClosed(Exception):
    """A pooled TCP connection turned out to be closed by the peer."""


class NetTransport:
    """The real transport: UDP with a fresh socket per query, pooled TCP."""

    def __init__(self, expire: float = 10.0, *, max_idle: int = 0, max_age: float = 0.0,
                 source: str = "", metrics: bool = True) -> None:
        self.expire = expire
        self.metrics = metrics  # False for helpers that are not forwarding (loop's probe)
        self.max_idle = max_idle or MAX_POOLED_PER_UPSTREAM
        self.max_age = max_age
        self.source = source
        self._pools: dict[Upstream, list[_TcpConn]] = {}

    async def exchange(self, upstream: Upstream, query: bytes, proto: str,
                       timeout: float) -> dns.message.Message:
        qend = question_end(query)
        if qend is None:
            raise UpstreamError("cannot send a malformed query")
        if proto == "tcp":
            return await self._tcp(upstream, query, qend, timeout)
        return await self._udp(upstream, query, qend, timeout)

    async def _udp(self, upstream: Upstream, query: bytes, qend: int,
                   timeout: float) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        started = loop.time()
        family = socket.AF_INET6 if ":" in upstream.host else socket.AF_INET
        if self.metrics:
            CONN_CACHE_MISSES.labels("forward", upstream.label, "udp").inc()
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            raise UpstreamError(f"dial udp {upstream.label}: {e.strerror or e}") from None
        transport: asyncio.DatagramTransport | None = None
        try:
            sock.setblocking(False)
            if self.source:
                sock.bind((self.source, 0))
            sock.connect((upstream.host, upstream.port))  # kernel picks a random source port
            done: asyncio.Future[dns.message.Message] = loop.create_future()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpExchange(query, qend, upstream, done, self.metrics), sock=sock)
            transport.sendto(query)
            async with asyncio.timeout(timeout):
                return await done
        except NearMiss:
            pass  # finished over TCP below
        except TimeoutError:
            raise UpstreamTimeout(f"read udp {upstream.label}: i/o timeout") from None
        except OSError as e:
            raise UpstreamError(f"udp {upstream.label}: {e.strerror or e}") from None
        finally:
            if transport is not None:
                transport.close()
            else:
                sock.close()
        # Only reached after a near miss: finish this query over TCP in the time left.
        if self.metrics:
            TCP_FALLBACKS.labels(upstream.label).inc()
        remaining = timeout - (loop.time() - started)
        if remaining <= 0:
            raise UpstreamTimeout(f"read udp {upstream.label}: i/o timeout")
        return await self._tcp(upstream, query, qend, remaining)

    async def _tcp(self, upstream: Upstream, query: bytes, qend: int,
                   timeout: float) -> dns.message.Message:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    conn, pooled = await self._take(upstream)
                    try:
                        msg = await self._tcp_once(conn, query, qend, upstream, pooled)
                    except CachedConnClosed:
                        conn.close()
                        continue  # CoreDNS: retry at once on a stale pooled connection
                    except BaseException:
                        conn.close()
                        raise
                    self._give_back(upstream, conn)
                    return msg
        except TimeoutError:
            raise UpstreamTimeout(f"read tcp {upstream.label}: i/o timeout") from None
        except OSError as e:
            raise UpstreamError(f"tcp {upstream.label}: {e.strerror or e}") from None

    async def _take(self, upstream: Upstream) -> tuple[_TcpConn, bool]:
        pool = self._pools.get(upstream, [])
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            fresh = now - conn.last_used <= self.expire and (
                not self.max_age or now - conn.created <= self.max_age)
            if fresh and not conn.writer.is_closing():
                if self.metrics:
                    CONN_CACHE_HITS.labels("forward", upstream.label, "tcp").inc()
                return conn, True
            conn.close()
        if self.metrics:
            CONN_CACHE_MISSES.labels("forward", upstream.label, "tcp").inc()
        local = (self.source, 0) if self.source else None
        reader, writer = await asyncio.open_connection(upstream.host, upstream.port,
                                                       local_addr=local)
        return _TcpConn(reader, writer), False

    async def _tcp_once(self, conn: _TcpConn, query: bytes, qend: int, upstream: Upstream,
                        pooled: bool) -> dns.message.Message:
        try:
            conn.writer.write(len(query).to_bytes(2, "big") + query)
            await conn.writer.drain()
            head = await conn.reader.readexactly(2)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            if pooled:
                raise CachedConnClosed from None
            raise UpstreamError(f"read tcp {upstream.label}: {e}") from None
        try:
            data = await conn.reader.readexactly(int.from_bytes(head, "big"))
        except asyncio.IncompleteReadError:
            raise UpstreamError(
                f"read tcp {upstream.label}: connection closed mid-message") from None
        msg = parse_reply(data) if reply_matches(data, query, qend) else None
        if msg is None:
            # A TCP peer is connected to us alone: a bad reply means a broken upstream.
            if self.metrics:
                MISMATCHES.labels(upstream.label).inc()
            raise UpstreamError(f"tcp {upstream.label}: reply does not match the query")
        return msg

    def _give_back(self, upstream: Upstream, conn: _TcpConn) -> None:
        pool = self._pools.setdefault(upstream, [])
        conn.last_used = time.monotonic()
        if len(pool) >= self.max_idle:
            conn.close()
        else:
            pool.append(conn)

    def pooled(self, upstream: Upstream) -> int:
        return len(self._pools.get(upstream, []))

    async def close(self) -> None:
        for pool in self._pools.values():
            for conn in pool:
                conn.close()
        self._pools.clear()


MockHandler = Callable[[Upstream, dns.message.Message, str], Awaitable[dns.message.Message | bytes]]


class MockTransport:
    """Test double (httpx's MockTransport): ``handler(upstream, query, proto)`` answers.

    The handler gets the parsed query and returns a reply message or raw bytes, or raises
    UpstreamError/UpstreamTimeout. Replies go through the same acceptance check as the real
    transport, so a mismatched reply behaves like a silent upstream (a timeout); the near-miss
    TCP fallback is the real transport's alone (tested against the fake upstream).
    """

    def __init__(self, handler: MockHandler) -> None:
        self.handler = handler
        self.calls: list[tuple[Upstream, dns.message.Message, str]] = []

    async def exchange(self, upstream: Upstream, query: bytes, proto: str,
                       timeout: float) -> dns.message.Message:
        q = dns.message.from_wire(query)
        self.calls.append((upstream, q, proto))
        qend = question_end(query)
        assert qend is not None
        try:
            async with asyncio.timeout(timeout):
                result = await self.handler(upstream, q, proto)
                data = result if isinstance(result, bytes) else result.to_wire()
                msg = parse_reply(data) if reply_matches(data, query, qend) else None
                if msg is None:  # ignored, as on the wire: the wait runs into the timeout
                    MISMATCHES.labels(upstream.label).inc()
                    await asyncio.sleep(timeout + 1)
                assert msg is not None
                return msg
        except TimeoutError:
            raise UpstreamTimeout(f"read {proto} {upstream.label}: i/o timeout") from None

    async def close(self) -> None:
        return None
