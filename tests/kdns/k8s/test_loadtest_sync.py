"""The reflector benchmark still runs (tiny scale, no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_k8s_sync_benchmark_smoke() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.k8s_sync", "--services", "60", "--namespaces", "6",
         "--slices", "6", "--endpoints-per-slice", "4", "--gc", "freeze"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result["objects"] == {"services": 60, "endpointslices": 6, "namespaces": 6}
    assert result["initial_sync_s"] > 0 and result["rss_synced_mib"] > 0
    assert result["callback_cpu_during_relist"]["steps"] > 0
