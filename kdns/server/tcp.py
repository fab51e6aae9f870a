"""TCP listener per RFC 7766: pipelined queries answered out of order, idle timeout, caps.

Limits (reliability.md section 4): connections per listener and per client address, queries in
flight per connection (reading pauses at the cap), 3 s to the first query, idle timeout 10 s
(CoreDNS), 2 s to receive a whole message once its first byte arrived (slowloris: more bytes do
not extend it), and a client that stops reading its answers gets no more reading (so its output
stays near the 256 KiB write limit) and is dropped once the write buffer stays full past the
write timeout. Garbage (a runt or a response message) closes the connection.
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
MESSAGE_TIMEOUT = 2.0
WRITE_TIMEOUT = 5.0
MAX_CONNECTIONS = 1000
MAX_CONNECTIONS_PER_SOURCE = 64
MAX_INFLIGHT_PER_CONN = 32


class TcpState:
    def __init__(self, processor: QueryProcessor, tracker: InflightTracker) -> None:
        self.processor = processor
        self.tracker = tracker
        self.connections: set[TcpProtocol] = set()
        self.per_source: dict[str, int] = {}
        self.max_connections = MAX_CONNECTIONS
        self.max_per_source = MAX_CONNECTIONS_PER_SOURCE
        self.idle_timeout = IDLE_TIMEOUT


class TcpProtocol(asyncio.Protocol):
    def __init__(self, state: TcpState) -> None:
        self.state = state
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.inflight = 0
        self.paused_reading = False
        self.paused_writing = False
        self.partial = False  # a message has started arriving and is not complete yet
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
        self.peer = client_addr(transport.get_extra_info("peername") or ("", 0))
        per_source = self.state.per_source
        if per_source.get(self.peer[0], 0) >= self.state.max_per_source:
            transport.abort()
            return
        per_source[self.peer[0]] = per_source.get(self.peer[0], 0) + 1
        self.state.connections.add(self)
        self.local = client_addr(transport.get_extra_info("sockname") or ("", 0))
        transport.set_write_buffer_limits(high=256 * 1024)
        self._arm(READ_TIMEOUT if self.state.idle_timeout > READ_TIMEOUT else
                  self.state.idle_timeout)

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timeout)

    def _on_timeout(self) -> None:
        if self.transport is None:
            return
        if self.partial and not self.paused_reading:
            self._close()  # a message that did not arrive within MESSAGE_TIMEOUT
        elif self.inflight == 0:
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
            if len(m) < 12 or m[2] & 0x80:  # a runt or a response: not a DNS client
                self._close_after_inflight()
                return
            reply = self.state.processor.fast(m, self.peer, "tcp")
            if reply is not None and self.transport is not None:
                self.transport.write(frame(reply))
                continue
            self.inflight += 1
            task = asyncio.ensure_future(self._answer(m))
            self.state.tracker.add(task)
        if self.decoder.pending:
            if not self.partial:  # later bytes of the same message do not extend its deadline
                self.partial = True
                self._arm(MESSAGE_TIMEOUT)
        else:
            self.partial = False
            self._arm(self.state.idle_timeout)
        if self.inflight >= MAX_INFLIGHT_PER_CONN:
            self._pause_reading()

    def _pause_reading(self) -> None:
        if not self.paused_reading and self.transport is not None:
            self.transport.pause_reading()
            self.paused_reading = True

    def _close_after_inflight(self) -> None:
        """Read nothing more; answer what was read before, then close (as BIND does)."""
        self.closing = True
        self._pause_reading()
        if self.inflight == 0 and self.transport is not None:
            self.transport.close()

    def _maybe_resume_reading(self) -> None:
        if (self.paused_reading and not self.paused_writing and not self.closing
                and self.inflight < MAX_INFLIGHT_PER_CONN // 2
                and self.transport is not None and not self.transport.is_closing()):
            self.paused_reading = False
            self.transport.resume_reading()
            if self.partial:
                self._arm(MESSAGE_TIMEOUT)

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
            self._maybe_resume_reading()
            if self.closing and self.inflight == 0 and self.transport is not None:
                self.transport.close()

    def pause_writing(self) -> None:
        # The client is not reading its answers: read no more of its queries (their answers
        # would only pile up), give it WRITE_TIMEOUT, then drop it.
        self.paused_writing = True
        self._pause_reading()
        if self._write_timer is None:
            self._write_timer = asyncio.get_running_loop().call_later(WRITE_TIMEOUT, self._close)

    def resume_writing(self) -> None:
        self.paused_writing = False
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._maybe_resume_reading()

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
        if self in self.state.connections:
            self.state.connections.discard(self)
            left = self.state.per_source.get(self.peer[0], 1) - 1
            if left > 0:
                self.state.per_source[self.peer[0]] = left
            else:
                self.state.per_source.pop(self.peer[0], None)
        for t in (self._timer, self._write_timer):
            if t is not None:
                t.cancel()
        self.transport = None


def make_factory(state: TcpState) -> Any:
    return lambda: TcpProtocol(state)
