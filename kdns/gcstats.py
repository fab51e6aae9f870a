"""Garbage-collector pauses per generation, timed with ``gc.callbacks`` and shown on /metrics.

A collection stops the event loop for its whole duration, so a long generation-2 pass (a large
heap of small objects, e.g. a big cluster's records) delays every query in flight. Exported:
kdns_gc_pause_seconds{generation} (histogram), kdns_gc_pause_max_seconds{generation} (longest
pause since start), kdns_gc_pause_cpu_max_seconds{generation} (the CPU time of the collection
with the most: a wall-clock pause far above it means the process was preempted, not that the
collector was slow) and kdns_gc_frozen_objects (objects moved out of collections by
``gc.freeze()``). The callback costs about two microseconds per collection.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kdns.metrics import _Histogram, register_once

# Edges at the plan's bounds (20 ms query p99, 50 ms GC pause, 100 ms loop stall), so a test
# can count the pauses over a bound exactly.
PAUSE_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1,
                        0.25, 0.5, 1.0)
GENERATIONS: Final = 3


class GcPauses:
    """Pause histograms and maxima, fed by ``callback`` (a ``gc.callbacks`` entry)."""

    __slots__ = ("_cpu_started", "_started", "cpu_max", "hists", "max")

    def __init__(self) -> None:
        self.hists = [_Histogram(PAUSE_BUCKETS) for _ in range(GENERATIONS)]
        self.max = [0.0] * GENERATIONS
        self.cpu_max = [0.0] * GENERATIONS
        self._started = self._cpu_started = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._cpu_started = time.thread_time()
            return
        pause = time.perf_counter() - self._started
        cpu = time.thread_time() - self._cpu_started
        gen = info["generation"]
        self.hists[gen].observe(pause)
        if pause > self.max[gen]:
            self.max[gen] = pause
        if cpu > self.cpu_max[gen]:
            self.cpu_max[gen] = cpu


class GcPausesCollector(Collector):
    def __init__(self, pauses: GcPauses) -> None:
        self.pauses = pauses

    def collect(self) -> Iterable[Metric]:
        hist = HistogramMetricFamily("kdns_gc_pause_seconds", "Time the garbage collector "
                                     "stopped the process, per collection and generation.",
                                     labels=["generation"])
        longest = GaugeMetricFamily("kdns_gc_pause_max_seconds", "Longest garbage-collector "
                                    "pause since start, per generation.", labels=["generation"])
        cpu = GaugeMetricFamily("kdns_gc_pause_cpu_max_seconds", "CPU time of the "
                                "garbage-collector pause that used the most, per generation.",
                                labels=["generation"])
        for gen in range(GENERATIONS):
            h = self.pauses.hists[gen].copy()
            hist.add_metric([str(gen)], h.buckets(), h.total)
            longest.add_metric([str(gen)], self.pauses.max[gen])
            cpu.add_metric([str(gen)], self.pauses.cpu_max[gen])
        frozen = GaugeMetricFamily("kdns_gc_frozen_objects", "Objects in the permanent "
                                   "generation (gc.freeze()), skipped by every collection.")
        frozen.add_metric([], gc.get_freeze_count())
        return [hist, longest, cpu, frozen]


PAUSES = GcPauses()


def install() -> None:
    """Time every collection of this process and export the pauses (once per process)."""
    if register_once("gc", lambda: GcPausesCollector(PAUSES)):
        gc.callbacks.append(PAUSES.callback)
