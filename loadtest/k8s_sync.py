"""Reflector scale benchmark: initial sync, steady RSS, and a forced relist at cluster scale.

    python3 -m loadtest.k8s_sync [--services 10000] [--namespaces 1000] [--slices 1000]
                                 [--endpoints-per-slice 100] [--page-size 500]

The fake API server runs as its own process (python -m tests.fakeapi) so that its memory and CPU
are not counted. This process runs the kubernetes plugin's three reflectors (Services,
EndpointSlices, Namespaces) into dict sinks and reports: time to the first full sync, RSS
before/after, the peak RSS while all three relist at once (forced by a watch expiry, i.e. the
410 path), and event-loop lag (how late a 1 ms ticker wakes up; a DNS query waiting on the loop
would see at least this delay; it is inflated when other processes compete for the CPU, so
the CPU seconds and the CPU time of the longest event-loop callback are reported too). Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from kdns.k8s import heap, objects, resources
from kdns.k8s.client import ApiClient
from kdns.k8s.config import ApiConfig
from kdns.k8s.reflector import DictSink, Reflector, ReflectorTiming
from tests.fakeapi import objects as k8s
from tests.fakeapi.control import FakeApiProcess


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cluster(services: int, namespaces: int, slices: int, per_slice: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [k8s.namespace(f"ns{i}") for i in range(namespaces)]
    for i in range(services):
        ns = f"ns{i % namespaces}"
        ip = f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        objs.append(k8s.service(ns, f"svc{i}", cluster_ip=ip,
                                ports=[k8s.port("http", 80), k8s.port("grpc", 9090)]))
    for s in range(slices):
        ns, svc = f"ns{s % namespaces}", f"svc{s}"
        eps = []
        for e in range(per_slice):
            n = s * per_slice + e
            eps.append(k8s.endpoint(f"10.{128 + n // 65536}.{(n // 256) % 256}.{n % 256}",
                                    node=f"node-{n % 500}", zone=f"zone-{n % 3}",
                                    pod=f"{svc}-{e:05d}-abcde", ns=ns))
            eps[-1]["targetRef"]["uid"] = f"00000000-0000-0000-0000-{n:012d}"
        objs.append(k8s.endpointslice(ns, f"{svc}-x7k2p", svc, eps,
                                      ports=[{"name": "http", "port": 8080, "protocol": "TCP"}]))
    return objs


class StepClock:
    """CPU time of every event-loop callback (thread CPU time, so it does not count the time
    this process was descheduled by others): the longest one bounds how long a query waits."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        original = asyncio.events.Handle._run
        steps = self.steps

        def timed(handle: asyncio.events.Handle) -> None:
            start = time.thread_time()
            original(handle)
            steps.append(time.thread_time() - start)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    def take(self) -> dict[str, float]:
        s = sorted(self.steps)
        self.steps.clear()
        if not s:
            return {}
        return {"steps": len(s), "p99_ms": round(s[int(len(s) * 0.99)] * 1000, 2),
                "max_ms": round(s[-1] * 1000, 2)}


class LoopLag:
    """Samples how late a 1 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.001)
            self.samples.append(loop.time() - start - 0.001)

    def take(self) -> dict[str, float]:
        s, self.samples = sorted(self.samples), []
        if not s:
            return {"p99_ms": 0.0, "max_ms": 0.0}
        return {"p99_ms": round(s[int(len(s) * 0.99)] * 1000, 1),
                "max_ms": round(s[-1] * 1000, 1)}


async def measure(url: str, proc: FakeApiProcess, page_size: int,
                  freeze: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"rss_start_mib": round(rss_mib(), 1)}
    steps = StepClock()
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    peak = [0.0]

    async def sample_rss() -> None:
        while True:
            peak[0] = max(peak[0], rss_mib())
            await asyncio.sleep(0.01)

    rss_task = asyncio.create_task(sample_rss())
    timing = ReflectorTiming(resync_interval=None)
    specs = [(resources.SERVICES, objects.reduce_service),
             (resources.ENDPOINTSLICES, objects.reduce_endpointslice),
             (resources.NAMESPACES, objects.reduce_namespace)]
    async with ApiClient(ApiConfig(url), request_timeout=120) as client:
        sinks: list[DictSink[Any]] = [DictSink() for _ in specs]
        refl = [Reflector(client, res, red, sink, page_size=page_size, timing=timing)
                for (res, red), sink in zip(specs, sinks, strict=True)]
        started, cpu = time.perf_counter(), time.process_time()
        tasks = [asyncio.create_task(r.run()) for r in refl]
        await asyncio.gather(*(r.synced.wait() for r in refl))
        result["initial_sync_s"] = round(time.perf_counter() - started, 2)
        result["initial_sync_cpu_s"] = round(time.process_time() - cpu, 2)
        result["loop_lag_during_sync"] = lag.take()
        result["callback_cpu_during_sync"] = steps.take()
        result["objects"] = {r.resource.name: len(s.items) for r, s in zip(refl, sinks,
                                                                            strict=True)}
        await asyncio.sleep(0.5)
        result["rss_peak_during_sync_mib"] = round(peak[0], 1)
        result["rss_synced_mib"] = round(rss_mib(), 1)
        if freeze:
            heap.freeze()  # what kdns.k8s.heap.freeze_when_synced does
            await asyncio.sleep(0)  # end this step before the relist's statistics start
        peak[0] = 0.0
        lag.take()
        steps.take()
        first = [s.items for s in sinks]
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.to_thread(proc.api.expire_watches)
        while any(s.items is f for s, f in zip(sinks, first, strict=True)):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        result["forced_relist_s"] = round(time.perf_counter() - started, 2)
        result["forced_relist_cpu_s"] = round(time.process_time() - cpu, 2)
        result["loop_lag_during_relist"] = lag.take()
        result["callback_cpu_during_relist"] = steps.take()
        result["rss_peak_during_relist_mib"] = round(peak[0], 1)
        del first
        for t in (*tasks, lag_task, rss_task):
            t.cancel()
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--namespaces", type=int, default=1_000)
    p.add_argument("--slices", type=int, default=1_000)
    p.add_argument("--endpoints-per-slice", type=int, default=100)
    p.add_argument("--page-size", type=int, default=500)
    p.add_argument("--gc", choices=["default", "off", "freeze"], default="default",
                   help="off: gc.disable(); freeze: gc.freeze() after the initial sync")
    args = p.parse_args()
    if args.gc == "off":
        gc.disable()
    with tempfile.TemporaryDirectory() as d:
        objs = cluster(args.services, args.namespaces, args.slices, args.endpoints_per_slice)
        path = Path(d) / "cluster.json"
        path.write_text(json.dumps({"kind": "List", "items": objs}))
        del objs
        proc = FakeApiProcess.start(objects_dir=d)
        try:
            result = asyncio.run(measure(proc.url, proc, args.page_size, args.gc == "freeze"))
        finally:
            proc.stop()
    result["args"] = vars(args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
