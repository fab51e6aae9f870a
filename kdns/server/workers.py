"""``-workers N``: N DNS worker processes on one port (SO_REUSEPORT), one set of API watches.

The parent runs the Corefile's plugins without binding DNS: its reflectors list and watch the
API server and relay compact deltas to the workers (kdns/k8s/relay.py). It serves the HTTP side
servers: /health, /ready (not ready until every worker is up and synced) and /metrics (the sum
over the parent and every worker). Workers bind DNS only, report status and metrics every
second, and exit when the parent goes away; the parent restarts a worker that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kdns import metrics
from kdns.k8s import relay
from kdns.server.run import Server

log = logging.getLogger("kdns.core")
REPORT_INTERVAL = 1.0


@dataclass
class Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    peer: relay.Peer | None = None
    not_ready: list[str] = field(default_factory=lambda: ["starting"])
    metrics_text: str = ""
    task: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, server: Server, hub: relay.Hub, count: int, argv: list[str]) -> None:
        self.server = server
        self.hub = hub
        self.workers = [Worker(i) for i in range(count)]
        self.argv = argv
        self.stopping = False

    def not_ready(self) -> list[str]:
        out = []
        for w in self.workers:
            if w.peer is None or w.not_ready:
                out.append(f"worker-{w.index}")
        return out

    async def start(self) -> None:
        for w in self.workers:
            w.task = asyncio.create_task(self._keep(w))

    def signal_all(self, sig: int) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(sig)

    def begin_stop(self) -> None:
        self.stopping = True
        self.signal_all(signal.SIGTERM)

    async def wait_stopped(self, timeout: float = 20.0) -> None:
        procs = [w.proc for w in self.workers if w.proc is not None]
        if procs:
            _, pending = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs],
                                            timeout=timeout)
            for p in procs:
                if p.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            for t in pending:
                t.cancel()
        for w in self.workers:
            if w.task is not None:
                w.task.cancel()

    async def _keep(self, w: Worker) -> None:
        """Run worker ``w``, restarting it (with a pause) whenever it dies."""
        while not self.stopping:
            started = time.monotonic()
            await self._run_once(w)
            if self.stopping:
                return
            log.error("worker %d exited with %s; restarting", w.index,
                      w.proc.returncode if w.proc else "?")
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    async def _run_once(self, w: Worker) -> None:
        parent_sock, child_sock = socket.socketpair()
        try:
            fd = child_sock.fileno()
            w.proc = await asyncio.create_subprocess_exec(*self.argv, "--worker-fd", str(fd),
                                                          pass_fds=(fd,))
        finally:
            child_sock.close()
        reader, writer = await asyncio.open_connection(sock=parent_sock)
        peer = relay.Peer(writer)
        self.hub.peers.append(peer)
        w.peer, w.not_ready = peer, ["starting"]
        try:
            while True:
                try:
                    msg = await relay.read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    break
                self._handle(w, peer, msg)
        finally:
            self.hub.peers.remove(peer)
            w.peer, w.not_ready, w.metrics_text = None, ["starting"], ""
            writer.close()
            await w.proc.wait()

    def _handle(self, w: Worker, peer: relay.Peer, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "sub":
            self.hub.subscribe(peer, msg[1])
        elif kind == "status":
            w.not_ready = list(msg[1])
        elif kind == "metrics":
            w.metrics_text = str(msg[1])

    def exposition(self) -> bytes:
        own = metrics.registry_text().decode()
        return merge_expositions([own, *(w.metrics_text for w in self.workers)]).encode()


def merge_expositions(texts: list[str]) -> str:
    """Sum samples with the same name and labels across processes (gauges other than process
    totals take the maximum: build_info stays 1)."""
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for text in texts:
        if not text:
            continue
        for fam in text_string_to_metric_families(text):
            typ = fam.type
            entry = families.setdefault(fam.name, (typ, fam.documentation, {}))
            summing = typ != "gauge" or fam.name.startswith("process_")
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                old = entry[2].get(key)
                if old is None:
                    entry[2][key] = s.value
                else:
                    entry[2][key] = old + s.value if summing else max(old, s.value)
    out = []
    for name, (typ, doc, samples) in families.items():
        shown = f"{name}_total" if typ == "counter" else name
        out.append(f"# HELP {shown} {_escape_help(doc)}")
        out.append(f"# TYPE {shown} {typ}")
        for (sname, labels), value in samples.items():
            lab = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            out.append(f"{sname}{{{lab}}} {value!r}" if lab else f"{sname} {value!r}")
    return "\n".join(out) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


async def run_parent(server: Server, count: int, argv: list[str]) -> int:
    hub = relay.install_hub()
    sup = Supervisor(server, hub, count, argv)
    server.extra_not_ready = sup.not_ready
    server.on_stop.append(sup.begin_stop)
    server.on_reload.append(lambda: sup.signal_all(signal.SIGUSR1))
    metrics.set_exposition(sup.exposition)
    await sup.start()
    try:
        code = await server.run()
    finally:
        sup.begin_stop()
        await sup.wait_stopped()
    return code


async def run_worker(server: Server, fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    follower = relay.install_follower(writer)
    serving = asyncio.create_task(server.run())
    reporter = asyncio.create_task(_report(server, writer))
    reading = asyncio.create_task(_follow(follower, reader))
    done, _ = await asyncio.wait({serving, reading}, return_when=asyncio.FIRST_COMPLETED)
    reporter.cancel()
    if serving not in done:  # the parent is gone: a worker never outlives it
        log.error("worker: lost the parent process; exiting")
        os.kill(os.getpid(), signal.SIGTERM)
        code = await serving
    else:
        reading.cancel()
        code = serving.result()
    writer.close()
    return code


async def _follow(follower: relay.Follower, reader: asyncio.StreamReader) -> None:
    while True:
        try:
            msg = await relay.read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        follower.dispatch(msg)


async def _report(server: Server, writer: asyncio.StreamWriter) -> None:
    while True:
        with contextlib.suppress(Exception):
            names = server.not_ready() if server.config is not None else ["starting"]
            writer.write(relay.encode(("status", names)))
            text = metrics.registry_text().decode()
            writer.write(relay.encode(("metrics", text)))
        await asyncio.sleep(REPORT_INTERVAL)


def worker_argv(conf_path: str | None, port: int) -> list[str]:
    args = [sys.executable, "-m", "kdns", "-quiet", "-dns.port", str(port)]
    if conf_path:
        args += ["-conf", os.path.abspath(conf_path)]
    else:
        args += ["-conf", "stdin"]
    return args
