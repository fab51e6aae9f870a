"""Query log output off the event loop: lines go into a queue, a thread writes them in batches.

Formatting a line costs microseconds; a blocking write to a slow stdout pipe (a busy container
log driver) can cost milliseconds, so the serving loop never writes. One writer per process;
``flush`` waits until every queued line is out (called when a log plugin stops). If stdout stays
blocked the queue is bounded: further lines are dropped and counted, and the count is reported
once output moves again.
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
from typing import Final

MAX_BATCH: Final = 512
MAX_QUEUED: Final = 100_000


class LineWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue[str | threading.Event] = queue.Queue(MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, line: str) -> None:
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                t = threading.Thread(target=self._run, name="kdns-querylog", daemon=True)
                t.start()
                self._thread = t

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every line queued so far is written; False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            lines: list[str] = []
            events: list[threading.Event] = []
            while True:
                if isinstance(item, threading.Event):
                    events.append(item)
                else:
                    lines.append(item)
                if len(lines) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if lines:
                self._write("".join(f"[INFO] {line}\n" for line in lines))
            if self.dropped:
                with self._lock:
                    n, self.dropped = self.dropped, 0
                self._write(f"[WARNING] plugin/log: {n} query log lines dropped: standard "
                            "output is not keeping up\n")
            for e in events:
                e.set()

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout closed or broken: drop, never kill the thread
            pass


WRITER = LineWriter()
atexit.register(WRITER.flush, 2.0)
