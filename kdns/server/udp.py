"""UDP listener: datagrams -> QueryProcessor, with bounded work and bounded reply buffering.

kdns reads its non-blocking socket itself from a loop reader callback (not through asyncio's
datagram transport), up to ``BATCH`` datagrams per wakeup, for three reasons (reliability.md
T7, T8):

* Arrival-time shedding, like Unbound's ``sock-queue-timeout``. A flood of slow-path queries
  fills the kernel queue (4 MiB ``SO_RCVBUF``: ~10,000 datagrams, seconds of slow-path work); read
  in arrival order, a query sent after the flood would wait for all of them. The socket
  timestamps every datagram (``SO_TIMESTAMPNS``); a slow-path query that waited in the queue
  longer than ``QUEUE_TIMEOUT`` is dropped before any parsing: its client has retried or will
  soon, and the time goes to queries that can still be answered in time. Fast-path answers
  (stored reply bytes, ~1 µs) are always sent. The timestamp is read (``recvmsg`` with ancillary
  data, slower than ``recvfrom``) only while the queue is backed up and slow-path work is in
  flight, so the fast path at full rate pays nothing for it.
* The in-flight cap: beyond ``max_inflight`` slow-path queries new ones are dropped, again
  before any parsing.
* Bounded reply buffering: when ``sendto`` would block, replies wait in a queue of at most
  ``MAX_SEND_QUEUE`` bytes; beyond it they are dropped. asyncio's transports buffer without
  limit.

Every drop is counted in ``kdns_udp_dropped_total{server,reason}``; the reply queue is the
``kdns_udp_send_queue_bytes{server}`` gauge.
"""

from __future__ import annotations

import array
import asyncio
import logging
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Coroutine, Generator, Iterable, Iterator
from fcntl import ioctl
from termios import FIONREAD
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kdns.metrics import register_once
from kdns.query import QueryProcessor
from kdns.server.sockets import client_addr

DEFAULT_MAX_INFLIGHT = 2048
BATCH: Final = 64  # datagrams read per wakeup: other callbacks (upstream replies, TCP) run between
QUEUE_TIMEOUT: Final = 1.0  # seconds a slow-path query may wait in the kernel queue
MAX_SEND_QUEUE: Final = 1024 * 1024  # bytes of replies waiting for the socket to drain
MAX_DATAGRAM: Final = 65535
# Linux: SO_TIMESTAMPNS (SCM_TIMESTAMPNS is the same number); Python's socket lacks the name.
SO_TIMESTAMPNS: Final = 35
TIMESTAMPING: Final = sys.platform.startswith("linux")
_TS_SPACE: Final = socket.CMSG_SPACE(16)
REASONS: Final = ("queue_timeout", "inflight", "send_buffer")
log = logging.getLogger("kdns.core")


def enable_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram's arrival time (read only when needed)."""
    if not TIMESTAMPING:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def arrival_time(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    """The SCM_TIMESTAMPNS arrival time (CLOCK_REALTIME seconds) in ``recvmsg`` ancillary data."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            if len(data) >= 16:
                sec, nsec = struct.unpack_from("@qq", data)
            elif len(data) >= 8:  # 32-bit time_t
                sec, nsec = struct.unpack_from("@ii", data)
            else:
                return None
            return float(sec) + float(nsec) * 1e-9
    return None


class UdpListener:
    """Serves one bound UDP socket on the running loop."""

    def __init__(self, sock: socket.socket, processor: QueryProcessor, tracker: InflightTracker,
                 max_inflight: int = DEFAULT_MAX_INFLIGHT,
                 queue_timeout: float = QUEUE_TIMEOUT) -> None:
        self.sock = sock
        self.processor = processor
        self.tracker = tracker
        self.max_inflight = max_inflight
        self.queue_timeout = queue_timeout
        self.loop = asyncio.get_running_loop()
        self.local = client_addr(sock.getsockname())
        self.timestamps = enable_timestamps(sock)
        self.inflight = 0
        self.backlogged = False  # the last wakeup left datagrams in the kernel queue
        self.shedding = False  # the last timed read dropped queries that waited too long
        self.dropped = dict.fromkeys(REASONS, 0)
        self.send_queue: deque[tuple[bytes, Any]] = deque()
        self.send_queue_bytes = 0
        self.closing = False
        self._writing = False
        self._sendto = sock.sendto
        self.fd = sock.fileno()
        self._pending = array.array("i", [0])  # FIONREAD's answer, written in place
        self.loop.add_reader(self.fd, self._on_readable)
        STATS.listeners.add(self)

    @property
    def server(self) -> str:
        return self.processor.server

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.loop.remove_reader(self.fd)
        if self._writing:
            self.loop.remove_writer(self.fd)
        self.send_queue.clear()
        self.send_queue_bytes = 0
        STATS.retire(self)
        self.sock.close()

    # --- receive ------------------------------------------------------------------------
    def _on_readable(self) -> None:
        # Timestamps are read only while slow-path work is in flight and the queue backs up:
        # then a datagram may have waited long; recvmsg costs more than recvfrom per datagram.
        if self.backlogged and (self.inflight or self.shedding) and self.timestamps:
            self._read_timed()
        else:
            self._read()

    def _read(self) -> None:
        # Up to BATCH datagrams per wakeup. After each one, FIONREAD (the size of the next
        # queued datagram, 0 when none) says whether to read again: a read that finds the
        # queue empty costs a failed recvfrom plus a Python exception (~1.5 µs, as much as a
        # memo answer), and at moderate rates nearly every wakeup finds one datagram. A queued
        # empty datagram also reads as 0: the reader is level-triggered, so it still wakes
        # the loop again at once.
        recvfrom, fast, send = self.sock.recvfrom, self.processor.fast, self.send
        fd, pending = self.fd, self._pending
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                self.backlogged = False
                return
            except OSError:  # an ICMP error reported on the socket: not about this read
                return
            reply = fast(data, addr, "udp")
            if reply is not None:
                send(reply, addr)
            else:
                self._slow(data, addr)
            ioctl(fd, FIONREAD, pending, True)
            if not pending[0]:
                self.backlogged = False
                return
        self.backlogged = True

    def _read_timed(self) -> None:
        recvmsg = self.sock.recvmsg
        fast = self.processor.fast
        oldest = time.time() - self.queue_timeout
        self.shedding = False
        for _ in range(BATCH):
            try:
                data, ancdata, _flags, addr = recvmsg(MAX_DATAGRAM, _TS_SPACE)
            except (BlockingIOError, InterruptedError):
                self.backlogged = False
                return
            except OSError:
                return
            reply = fast(data, addr, "udp")
            if reply is not None:
                self.send(reply, addr)
                continue
            arrived = arrival_time(ancdata)
            if arrived is not None and arrived < oldest:
                self.dropped["queue_timeout"] += 1  # its client has moved on: no parsing
                self.shedding = True
                continue
            self._slow(data, addr)
        self.backlogged = True

    def _slow(self, data: bytes, addr: Any) -> None:
        if self.inflight >= self.max_inflight:
            self.dropped["inflight"] += 1  # shed rather than queue without limit
            return
        self.inflight += 1
        # Run the query at once, as an eager task would (Python 3.12's eager_task_factory):
        # most answers (cache, kubernetes, hosts) never suspend, and then no Task is created
        # or scheduled. One that does suspend continues in a Task from where it stopped.
        coro = self._answer(data, addr)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        self.tracker.add(asyncio.ensure_future(_resume(coro, waiting_on)))

    async def _answer(self, data: bytes, addr: Any) -> None:
        try:
            reply = await self.processor.process(data, client_addr(addr), "udp", self.local)
            if reply is not None and not self.closing:
                self.send(reply, addr)
        except Exception as e:  # never let one datagram take the listener down
            log.error("UDP query from %s failed: %r", addr, e)
        finally:
            self.inflight -= 1

    # --- send ---------------------------------------------------------------------------
    def send(self, reply: bytes, addr: Any) -> None:
        if not self.send_queue:
            try:
                self._sendto(reply, addr)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:  # unreachable, filtered, too big: this reply is lost, no retry
                return
        if self.send_queue_bytes + len(reply) > MAX_SEND_QUEUE:
            self.dropped["send_buffer"] += 1
            return
        self.send_queue.append((reply, addr))
        self.send_queue_bytes += len(reply)
        if not self._writing:
            self._writing = True
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        queue = self.send_queue
        while queue:
            reply, addr = queue[0]
            try:
                self.sock.sendto(reply, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass
            queue.popleft()
            self.send_queue_bytes -= len(reply)
        self._writing = False
        self.loop.remove_writer(self.fd)


class _Continue:
    """Awaitable that drives a coroutine already started by hand (``coro.send(None)`` returned
    ``first``, the future it waits on) to its end inside the Task that awaits this: the Task
    sees the same futures, cancellation is thrown into the coroutine."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, None, Any]:
        coro, value = self.coro, self.first
        while True:
            try:
                yield value
            except BaseException as e:  # e.g. CancelledError: passed on
                try:
                    value = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(None)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Continue(coro, first)


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


class UdpStats:
    """Drops of every listener, live or closed (counters must not go back on reload)."""

    def __init__(self) -> None:
        self.listeners: set[UdpListener] = set()
        self.closed: dict[tuple[str, str], int] = {}

    def retire(self, listener: UdpListener) -> None:
        self.listeners.discard(listener)
        for reason, n in listener.dropped.items():
            key = (listener.server, reason)
            self.closed[key] = self.closed.get(key, 0) + n

    def dropped(self) -> dict[tuple[str, str], int]:
        out = dict(self.closed)
        for lst in list(self.listeners):
            for reason, n in lst.dropped.items():
                key = (lst.server, reason)
                out[key] = out.get(key, 0) + n
        return out

    def send_queue_bytes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lst in list(self.listeners):
            out[lst.server] = out.get(lst.server, 0) + lst.send_queue_bytes
        return out


STATS = UdpStats()


class UdpStatsCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            "kdns_udp_dropped", "UDP queries or replies dropped without an answer: reason "
            "queue_timeout (waited longer than the limit in the socket's receive queue), inflight "
            "(too many queries in progress), send_buffer (reply queue over 1 MiB).",
            labels=["server", "reason"])
        for (server, reason), n in sorted(STATS.dropped().items()):
            dropped.add_metric([server, reason], n)
        yield dropped
        queued = GaugeMetricFamily("kdns_udp_send_queue_bytes", "Bytes of UDP replies waiting "
                                   "for the socket to accept them.", labels=["server"])
        for server, n in sorted(STATS.send_queue_bytes().items()):
            queued.add_metric([server], n)
        yield queued


def register_udp_stats() -> None:
    """Expose STATS on the default registry (once per process)."""
    register_once("udp", UdpStatsCollector)
