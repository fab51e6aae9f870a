"""Query log output off the event loop: lines go into a queue, a thread writes them in batches.

Formatting a line costs microseconds; a blocking write to a slow stdout pipe (a busy container
log driver) can cost milliseconds, so the serving loop never writes. One writer per process;
``flush`` waits until every queued line is out (called when a log plugin stops).
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
from typing import Final

MAX_BATCH: Final = 512


class LineWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[str | threading.Event] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, line: str) -> None:
        if self._thread is None:
            self._start()
        self._queue.put(line)

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
        self._queue.put(done)
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
