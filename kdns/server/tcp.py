"""TCP listener per RFC 7766: pipelined queries answered out of order, idle timeout, caps.

Limits: connections per listener, queries in flight per connection (reading pauses at the cap),
idle timeout (CoreDNS: 10 s), and a client that stops reading its answers is dropped once the
write buffer stays full past the write timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from kdns.query import QueryProcessor
from kdns.server.sockets import client_addr
from kdns.server.udp import InflightTracker
from kdns.wire.framing import FrameDecoder, frame

log = logging.getLogger("kdns.core")
IDLE_TIMEOUT = 10.0
READ_TIMEOUT = 3.0
WRITE_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000
MAX_INFLIGHT_PER_CONN = 32


class TcpState:
    def __init__(self, processor: QueryProcessor, tracker: InflightTracker) -> None:
        self.processor = processor
        self.tracker = tracker
        self.connections: set[TcpProtocol] = set()
        self.max_connections = MAX_CONNECTIONS
        self.idle_timeout = IDLE_TIMEOUT


class TcpProtocol(asyncio.Protocol):
    def __init__(self, state: TcpState) -> None:
        self.state = state
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.inflight = 0
        self.paused_reading = False
        self.closing = False
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        if len(self.state.connections) >= self.state.max_connections:
            transport.abort()
            return
        self.state.connections.add(self)
        self.peer = client_addr(transport.get_extra_info("peername") or ("", 0))
        self.local = client_addr(transport.get_extra_info("sockname") or ("", 0))
        transport.set_write_buffer_limits(high=256 * 1024)
        self._arm(READ_TIMEOUT if self.state.idle_timeout > READ_TIMEOUT else
                  self.state.idle_timeout)

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timeout)

    def _on_timeout(self) -> None:
        if self.inflight == 0 and self.transport is not None:
            self.transport.close()
        else:
            self._arm(self.state.idle_timeout)

    def data_received(self, data: bytes) -> None:
        try:
            msgs = self.decoder.feed(data)
        except ValueError:
            self._close()
            return
        for m in msgs:
            reply = self.state.processor.fast(m, self.peer, "tcp")
            if reply is not None and self.transport is not None:
                self.transport.write(frame(reply))
                continue
            self.inflight += 1
            task = asyncio.ensure_future(self._answer(m))
            self.state.tracker.add(task)
        self._arm(self.state.idle_timeout)
        if self.inflight >= MAX_INFLIGHT_PER_CONN and not self.paused_reading and self.transport:
            self.transport.pause_reading()
            self.paused_reading = True

    async def _answer(self, wire: bytes) -> None:
        try:
            reply = await self.state.processor.process(wire, self.peer, "tcp", self.local)
            t = self.transport
            if reply is not None and t is not None and not t.is_closing():
                t.write(frame(reply))
        except Exception as e:  # never let one query take the connection's reader down
            log.error("TCP query from %s failed: %r", self.peer, e)
        finally:
            self.inflight -= 1
            if self.paused_reading and self.inflight < MAX_INFLIGHT_PER_CONN // 2:
                self.paused_reading = False
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.resume_reading()
            if self.closing and self.inflight == 0 and self.transport is not None:
                self.transport.close()

    def pause_writing(self) -> None:
        # The client is not reading its answers: give it WRITE_TIMEOUT, then drop it.
        if self._write_timer is None:
            self._write_timer = asyncio.get_running_loop().call_later(WRITE_TIMEOUT, self._close)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def eof_received(self) -> bool:
        # Half-close: answer what is in flight, then close (RFC 7766 6.2.4).
        self.closing = True
        if self.inflight == 0:
            return False
        return True

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_when_idle(self) -> None:
        self.closing = True
        if self.inflight == 0 and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        for t in (self._timer, self._write_timer):
            if t is not None:
                t.cancel()
        self.transport = None


def make_factory(state: TcpState) -> Any:
    return lambda: TcpProtocol(state)
