"""P6 soak, CI version (reliability.md section 9.3 E): the code path of
``python3 -m tests.reliability.soak`` for 60 s with the flap and outage periods scaled down
(upstream flap every 10 s, 10 s API outages at 15 s and 45 s). Asserts the plan's criteria
except the RSS slope, which needs hours (docs/reliability-soak.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.soak import SoakConfig, run
from tests.reliability.soakmodel import STALE_S, ClusterModel

SMOKE = SoakConfig(minutes=1.0, flap_period=10.0, outage_every=30.0, outage_len=10.0,
                   warmup=10.0, sample_every=2.0)


@pytest.mark.timeout(240)
def test_p6_soak_smoke(tmp_path: Path) -> None:
    report = tmp_path / "soak.md"
    s = run(SoakConfig(**{**SMOKE.__dict__, "report": report}))
    assert s.crashes == 0, s.table()
    assert s.wrong == 0, report.read_text()
    assert s.fds.ok and s.threads.ok, s.table()
    assert s.flaps >= 2 and s.outages == 2, s.table()
    assert s.answered > 0.9 * s.sent, s.table()  # the load really ran
    assert "| 0 wrong answers for cluster names | 0 | pass |" in report.read_text()


def test_p6_scaled_schedule() -> None:
    assert [SMOKE.api_down_at(t) for t in (5, 14.9, 15, 24.9, 25, 44.9, 45, 54.9, 55)] == \
        [False, False, True, True, False, False, True, True, False]
    assert [SMOKE.upstream_down_at(t) for t in (0, 9.9, 10, 19.9, 20)] == \
        [False, False, True, True, False]


def test_p6_judge_around_churn() -> None:
    """The wrong/stale rules of soakmodel.py on a hand-made history (no clock involved)."""
    m = ClusterModel()
    name, gone = "a.soak.svc.cluster.local.", "b.soak.svc.cluster.local."
    m.acquire(name, "10.0.0.1")
    m.persistent.add(name)
    m.acquire(gone, "10.0.0.2")
    m.names[gone].held["10.0.0.2"] = 100.0  # released at t=100
    assert m.judge(name, 0, ["10.0.0.1"], at=200.0).wrong is None
    assert m.judge(name, 0, ["10.9.9.9"], at=200.0).wrong  # never held
    assert m.judge(name, 3, [], at=200.0).wrong  # NXDOMAIN for a name there the whole run
    assert m.judge(name, 0, [], at=200.0).wrong  # NODATA likewise
    assert m.judge(gone, 3, [], at=200.0).wrong is None  # churned names may be absent
    assert m.judge(gone, 0, ["10.0.0.1"], at=200.0).wrong  # another name's address
    fresh = m.judge(gone, 0, ["10.0.0.2"], at=100.0 + STALE_S - 1)
    assert fresh.wrong is None and fresh.stale is None
    assert m.judge(gone, 0, ["10.0.0.2"], at=100.0 + STALE_S + 1).stale
    assert m.judge("nx1.soak.svc.cluster.local.", 0, ["10.0.0.1"], at=200.0).wrong
    m.outage_start = 90.0  # API down since t=90: kdns may serve what it knew then
    assert m.judge(gone, 0, ["10.0.0.2"], at=100.0 + 10 * STALE_S).stale is None
