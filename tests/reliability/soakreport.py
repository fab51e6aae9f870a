"""P6 soak: samples, the summary against the plan's criteria, and the Markdown report."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dns.rcode

if TYPE_CHECKING:
    from tests.reliability.soak import SoakConfig
    from tests.reliability.soakload import LoadStats

SLOPE_MAX_MIB_H = 1.0
STABLE_BAND = 20          # fds and threads: every sample within baseline +- this
SLOPE_MIN_SPAN_S = 900.0  # a slope over less than 15 min of samples is reported, not judged
MAX_REPORT_ROWS = 240


@dataclass(frozen=True)
class Sample:
    t: float
    rss_mib: float
    fds: int
    threads: int
    answered: int
    sent: int
    lost: int
    wrong: int
    stale: int
    panics: float | None
    p99_cluster_ms: float
    p99_external_ms: float
    churn: int
    api_down: bool
    upstream_down: bool
    steady: bool

    HEADER = ("     t s   RSS MiB  fds  thr  qps-ans  lost  wrong  stale  p99 ms cluster/ext  "
              "churn/s   api   up2")

    def line(self, prev: Sample | None) -> str:
        dt = self.t - prev.t if prev else 0.0
        qps = (self.answered - prev.answered) / dt if prev and dt > 0 else 0.0
        churn = (self.churn - prev.churn) / dt if prev and dt > 0 else 0.0
        lost = self.lost - prev.lost if prev else self.lost
        return (f"{self.t:8.0f}  {self.rss_mib:8.1f}  {self.fds:3d}  {self.threads:3d}  "
                f"{qps:7.0f}  {lost:4d}  {self.wrong:5d}  {self.stale:5d}  "
                f"{self.p99_cluster_ms:7.1f} {self.p99_external_ms:7.1f}    "
                f"{churn:7.1f}  {'DOWN' if self.api_down else 'up':>4}  "
                f"{'DOWN' if self.upstream_down else 'up':>4}{'' if self.steady else ' *'}")


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600


@dataclass(frozen=True)
class Band:
    baseline: int
    low: int
    high: int

    @property
    def ok(self) -> bool:
        return self.high - self.baseline <= STABLE_BAND and self.baseline - self.low <= STABLE_BAND

    def text(self) -> str:
        return f"{self.low}..{self.high} (baseline {self.baseline})"


@dataclass(frozen=True)
class Summary:
    elapsed: float
    sent: int
    answered: int
    lost: int
    crashed: str
    tracebacks: int
    panics: float
    slope: float | None
    slope_span: float
    late_slope: float | None  # over the second half of those samples (is the growth slowing?)
    rss_first: float
    rss_last: float
    fds: Band
    threads: Band
    fds_all: Band
    threads_all: Band
    wrong: int
    stale: int
    external_wrong: int
    churn_per_s: float
    flaps: int
    outages: int

    @property
    def crashes(self) -> int:
        return int(bool(self.crashed)) + self.tracebacks + int(self.panics > 0)

    @property
    def slope_judged(self) -> bool:
        return self.slope is not None and self.slope_span >= SLOPE_MIN_SPAN_S

    @property
    def passed(self) -> bool:
        slope_ok = not self.slope_judged or (self.slope or 0.0) < SLOPE_MAX_MIB_H
        return self.crashes == 0 and self.wrong == 0 and self.fds.ok and self.threads.ok \
            and slope_ok

    def rows(self) -> list[tuple[str, str, str]]:
        """(criterion, measured, verdict)."""
        slope = "n/a" if self.slope is None else f"{self.slope:+.2f} MiB/h"
        slope += f" over {self.slope_span / 60:.0f} min (RSS {self.rss_first:.1f} -> " \
                 f"{self.rss_last:.1f} MiB)"
        ok = {True: "pass", False: "FAIL"}
        return [
            ("0 crashes", f"{self.crashes} (exit: {self.crashed or 'none'}, tracebacks "
             f"{self.tracebacks}, coredns_panics_total {self.panics:g})", ok[self.crashes == 0]),
            (f"RSS slope < {SLOPE_MAX_MIB_H:g} MiB/h after warm-up", slope,
             ok[(self.slope or 0.0) < SLOPE_MAX_MIB_H] if self.slope_judged
             else "not judged (< 15 min of samples)"),
            ("RSS slope over the second half of those samples (info)",
             "n/a" if self.late_slope is None else f"{self.late_slope:+.2f} MiB/h", "-"),
            (f"fds stable +-{STABLE_BAND} (steady samples)", self.fds.text(), ok[self.fds.ok]),
            (f"threads stable +-{STABLE_BAND} (steady samples)", self.threads.text(),
             ok[self.threads.ok]),
            ("fds, threads over all samples after warm-up (info)",
             f"{self.fds_all.text()}; {self.threads_all.text()}", "-"),
            ("0 wrong answers for cluster names", str(self.wrong), ok[self.wrong == 0]),
            ("stale cluster answers (info)", str(self.stale), "-"),
            ("wrong external answers (info)", str(self.external_wrong), "-"),
            ("qps sent / answered", f"{self.sent / self.elapsed:.0f} / "
             f"{self.answered / self.elapsed:.0f}", "-"),
            ("loss (no answer in 5 s)", f"{self.lost} ({100 * self.lost / max(1, self.sent):.3f}%)",
             "-"),
            ("API updates/s, upstream flaps, API outages",
             f"{self.churn_per_s:.1f}, {self.flaps}, {self.outages}", "-"),
            ("duration", f"{self.elapsed / 60:.1f} min", "-"),
        ]

    def table(self) -> str:
        lines = ["| criterion | measured | verdict |", "|---|---|---|"]
        lines += [f"| {c} | {m} | {v} |" for c, m, v in self.rows()]
        lines.append(f"\n**{'PASS' if self.passed else 'FAIL'}**")
        return "\n".join(lines)


def band(values: list[int]) -> Band:
    return Band(values[0], min(values), max(values)) if values else Band(0, 0, 0)


def summarize(cfg: SoakConfig, samples: list[Sample], stats: LoadStats, *, elapsed: float,
              crashed: str, tracebacks: int, panics: float, flaps: int, outages: int,
              churn_steps: int) -> Summary:
    late = [s for s in samples if s.t >= cfg.warmup] or samples[-1:]
    steady = [s for s in late if s.steady] or late
    pts = [(s.t, s.rss_mib) for s in late]
    return Summary(
        elapsed=elapsed, sent=stats.total("sent"), answered=stats.total("answered"),
        lost=stats.total("lost"), crashed=crashed, tracebacks=tracebacks,
        panics=panics,
        slope=slope_per_hour(pts), slope_span=(pts[-1][0] - pts[0][0]) if pts else 0.0,
        late_slope=slope_per_hour(pts[len(pts) // 2:]),
        rss_first=pts[0][1] if pts else 0.0, rss_last=pts[-1][1] if pts else 0.0,
        fds=band([s.fds for s in steady]), threads=band([s.threads for s in steady]),
        fds_all=band([s.fds for s in late]), threads_all=band([s.threads for s in late]),
        wrong=stats.wrong, stale=stats.stale, external_wrong=stats.external_wrong,
        churn_per_s=churn_steps / elapsed if elapsed else 0.0, flaps=flaps, outages=outages)


def write_report(path: Path, cfg: SoakConfig, summary: Summary, samples: list[Sample],
                 stats: LoadStats) -> None:
    out = [f"# kdns P6 soak, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
           f"Command: `python3 -m tests.reliability.soak --minutes {cfg.minutes:g} --qps "
           f"{cfg.qps:g} --churn {cfg.churn_per_s:g} --flap-period {cfg.flap_period:g} "
           f"--outage-every {cfg.outage_every:g} --outage-len {cfg.outage_len:g} --warmup "
           f"{cfg.warmup:g} --sample-every {cfg.sample_every:g}`", "", summary.table(), "",
           "## Answers by query kind", "",
           "| kind | sent | answered | lost | rcodes |", "|---|---|---|---|---|"]
    for kind, ks in stats.kinds.items():
        rc = ", ".join(f"{dns.rcode.to_text(dns.rcode.Rcode(r))} {n}"
                       for r, n in sorted(ks.rcodes.items()))
        out.append(f"| {kind} | {ks.sent} | {ks.answered} | {ks.lost} | {rc} |")
    if stats.examples:
        out += ["", "## First wrong / stale / unexpected answers", ""]
        out += [f"- `{e}`" for e in stats.examples]
    step = max(1, math.ceil(len(samples) / MAX_REPORT_ROWS))
    out += ["", f"## Samples (every {step * cfg.sample_every:g} s; * = within "
            f"{cfg.settle:g} s of a flap or outage edge, not steady)", "", "```", Sample.HEADER]
    shown = samples[::step]
    out += [s.line(shown[i - 1] if i else None) for i, s in enumerate(shown)]
    out += ["```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))
