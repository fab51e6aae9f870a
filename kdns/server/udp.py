"""UDP listener: datagrams -> QueryProcessor, with a cap on in-flight work (overload is shed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from kdns.query import QueryProcessor
from kdns.server.sockets import client_addr

DEFAULT_MAX_INFLIGHT = 2048
log = logging.getLogger("kdns.core")


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, processor: QueryProcessor, tracker: InflightTracker,
                 max_inflight: int = DEFAULT_MAX_INFLIGHT) -> None:
        self.processor = processor
        self.tracker = tracker
        self.max_inflight = max_inflight
        self.transport: asyncio.DatagramTransport | None = None
        self.inflight = 0
        self.shed = 0
        self.local = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)
        sockname = self.transport.get_extra_info("sockname")
        if sockname:
            self.local = client_addr(sockname)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.processor.fast(data, addr, "udp")
        if reply is not None:
            if self.transport is not None:
                self.transport.sendto(reply, addr)
            return
        if self.inflight >= self.max_inflight:
            self.shed += 1  # shed rather than queue without limit
            return
        self.inflight += 1
        task = asyncio.ensure_future(self._answer(data, addr))
        self.tracker.add(task)

    async def _answer(self, data: bytes, addr: Any) -> None:
        try:
            reply = await self.processor.process(data, client_addr(addr), "udp", self.local)
            if reply is not None and self.transport is not None and not self.transport.is_closing():
                self.transport.sendto(reply, addr)
        except Exception as e:  # never let one datagram take the listener down
            log.error("UDP query from %s failed: %r", addr, e)
        finally:
            self.inflight -= 1

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for earlier replies: nothing to do


class InflightTracker:
    """Tracks query tasks so shutdown can drain them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Future[Any]] = set()

    def add(self, task: asyncio.Future[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float) -> None:
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for t in pending:
            t.cancel()
