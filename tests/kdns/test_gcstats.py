"""kdns.gcstats: collections are timed per generation and exported."""

from __future__ import annotations

import gc

import prometheus_client

from kdns import gcstats


def test_full_collection_is_timed_and_exported() -> None:
    gcstats.install()
    gcstats.install()  # idempotent: one callback, one collector
    assert gc.callbacks.count(gcstats.PAUSES.callback) == 1
    before = sum(gcstats.PAUSES.hists[2].counts)
    gc.collect(2)
    assert sum(gcstats.PAUSES.hists[2].counts) == before + 1
    assert gcstats.PAUSES.max[2] > 0
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert 'kdns_gc_pause_seconds_count{generation="2"}' in text
    assert 'kdns_gc_pause_max_seconds{generation="2"}' in text
    assert 'kdns_gc_pause_cpu_max_seconds{generation="2"}' in text
    assert "kdns_gc_frozen_objects " in text


def test_pauses_land_in_their_generation() -> None:
    p = gcstats.GcPauses()
    p.callback("start", {"generation": 0})
    p.callback("stop", {"generation": 0, "collected": 0, "uncollectable": 0})
    assert sum(p.hists[0].counts) == 1 and sum(p.hists[1].counts) == 0
    assert p.max[0] >= 0.0 and p.max[2] == 0.0
