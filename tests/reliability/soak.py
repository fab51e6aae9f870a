"""P6 soak (reliability.md section 9.3 E): a real kdns under steady mixed load, API churn, a
flapping upstream and API outages; judged on crashes, RSS slope, fds/threads, wrong answers.

    python3 -m tests.reliability.soak --minutes 120    # the plan's run, docs/reliability-soak.md
    python3 -m tests.reliability.soak --minutes 30 --outage-every 1800

kdns runs the stock cluster Corefile against the fake API (tests/fakeapi) and two fake
upstreams (tests/upstream/fakeupstream.py); the second upstream blackholes every other
``--flap-period``. The cluster and its churn are in soakmodel.py, the query mix and the answer
check in soakload.py. Samples are printed as they are taken; the summary goes to stdout and to
a Markdown report.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.reliability.helpers import fd_count, metric_value, rss_kib, wait_status
from tests.reliability.soakload import Load
from tests.reliability.soakmodel import Churn, ClusterModel
from tests.reliability.soakreport import Sample, Summary, summarize, write_report
from tests.upstream.fakeupstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
COREFILE = """\
.:{port} {
    errors
    health 127.0.0.1:%(health)d
    ready 127.0.0.1:%(ready)d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %(api)s
    }
    prometheus 127.0.0.1:%(metrics)d
    forward . %(up1)s %(up2)s
    cache 30
    loop
    reload
    loadbalance
}
"""


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 120.0
    qps: float = 1000.0
    churn_per_s: float = 20.0
    flap_period: float = 60.0     # the second upstream is down every other period
    outage_every: float = 1800.0  # one API outage in the middle of each such period
    outage_len: float = 120.0
    warmup: float = 600.0         # excluded from the RSS slope and the fd/thread baseline
    sample_every: float = 10.0
    report: Path | None = None

    @property
    def settle(self) -> float:
        """Seconds after a flap or outage edge before a sample counts as steady (fds and threads
        are judged on steady samples: a blackholed upstream holds one socket per query in flight
        for its 2 s timeout, which is load, not a leak)."""
        return min(10.0, self.flap_period / 2)

    @property
    def seconds(self) -> float:
        return self.minutes * 60.0

    def api_down_at(self, t: float) -> bool:
        return (t - self.outage_every / 2) % self.outage_every < self.outage_len \
            and t >= self.outage_every / 2

    def upstream_down_at(self, t: float) -> bool:
        return int(t // self.flap_period) % 2 == 1


def p99_ms(seconds: list[float]) -> float:
    s = sorted(seconds)
    return s[int(len(s) * 0.99)] * 1000 if s else float("nan")


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no Threads for {pid}")


@dataclass
class Control:
    """Churn, flaps, outages and samples, in a thread beside the load."""

    cfg: SoakConfig
    api: FakeApiServer
    flappy: FakeUpstream
    steady: FakeUpstream
    k: KdnsProcess
    metrics_port: int
    churn: Churn
    load: Load
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[Sample] = field(default_factory=list)
    flaps: int = 0
    outages: int = 0
    crashed: str = ""
    start: float = 0.0
    last_change: float = 0.0  # t of the last flap or outage edge

    def run(self) -> None:
        self.start = time.monotonic()
        api_down = up_down = False
        next_sample = 0.0
        while not self.stop.is_set():
            t = time.monotonic() - self.start
            if t >= self.cfg.seconds:
                break
            if self.k.proc.poll() is not None:
                self.crashed = f"kdns exited with {self.k.proc.returncode} at t={t:.0f}s"
                print(self.crashed, flush=True)
                break
            while self.churn.steps < t * self.cfg.churn_per_s:
                self.churn.step(self.api)
            if self.cfg.upstream_down_at(t) != up_down:
                up_down = not up_down
                self.last_change = t
                self.flappy.mode = "blackhole" if up_down else ""
                self.flaps += up_down
            if self.cfg.api_down_at(t) != api_down:
                api_down = not api_down
                self.last_change = t
                self._api(api_down)
            if t >= next_sample:
                self._sample(t, api_down, up_down)
                next_sample += self.cfg.sample_every
            time.sleep(0.01)
        self.stop.set()

    def _api(self, down: bool) -> None:
        if down:
            self.outages += 1
            self.churn.model.api_down()
            self.api.down()
        else:
            self.api.up()
            self.churn.model.api_up()

    def _sample(self, t: float, api_down: bool, up_down: bool) -> None:
        pid = self.k.proc.pid
        st = self.load.stats
        try:
            panics: float | None = metric_value(self.metrics_port, "coredns_panics_total")
        except OSError:
            panics = None
        lat = st.take_latencies()
        s = Sample(t=t, rss_mib=rss_kib(pid) / 1024, fds=fd_count(pid), threads=threads(pid),
                   answered=st.total("answered"), sent=st.total("sent"), lost=st.total("lost"),
                   wrong=st.wrong, stale=st.stale, panics=panics,
                   p99_cluster_ms=p99_ms([x for c, x in lat if c]),
                   p99_external_ms=p99_ms([x for c, x in lat if not c]),
                   churn=self.churn.steps, api_down=api_down, upstream_down=up_down,
                   steady=t - self.last_change >= self.cfg.settle)
        self.samples.append(s)
        prev = self.samples[-2] if len(self.samples) > 1 else None
        print(s.line(prev), flush=True)
        self.flappy.clear()  # the fakes' query logs would grow for hours
        self.steady.clear()


def run(cfg: SoakConfig) -> Summary:
    model = ClusterModel()
    churn = Churn(model)
    with FakeApiServer(bookmark_interval=5.0) as api, FakeUpstream() as up1, \
            FakeUpstream() as up2:
        api.put_many(churn.initial_objects())
        ports = {"health": free_port(), "ready": free_port(), "metrics": free_port()}
        text = COREFILE % {**ports, "api": api.url, "up1": up1.addr, "up2": up2.addr}
        with run_kdns(text) as k:
            wait_status(f"http://127.0.0.1:{ports['ready']}/ready", 200, timeout=30)
            print(f"kdns pid {k.proc.pid} on 127.0.0.1:{k.port}; {cfg}", flush=True)
            print(Sample.HEADER, flush=True)
            load = Load(k.port, cfg.qps, model)
            ctl = Control(cfg, api, up2, up1, k, ports["metrics"], churn, load)
            thread = threading.Thread(target=ctl.run, name="soak-control", daemon=True)
            thread.start()
            try:
                load.run(cfg.seconds, ctl.stop)
            finally:
                ctl.stop.set()
                thread.join(60)
                load.close()
            elapsed = time.monotonic() - ctl.start
            try:
                panics = metric_value(ports["metrics"], "coredns_panics_total")
            except OSError:
                panics = float("nan")
            tracebacks = k.output.count("Traceback")
            crashed = ctl.crashed
        if not crashed and k.proc.returncode not in (0, -15):
            crashed = f"kdns exit status {k.proc.returncode} on SIGTERM"
    summary = summarize(cfg, ctl.samples, load.stats, elapsed=elapsed, crashed=crashed,
                        tracebacks=tracebacks, panics=panics, flaps=ctl.flaps,
                        outages=ctl.outages, churn_steps=churn.steps)
    print(summary.table(), flush=True)
    if cfg.report is not None:
        write_report(cfg.report, cfg, summary, ctl.samples, load.stats)
        print(f"report: {cfg.report}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m tests.reliability.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=120.0)
    p.add_argument("--qps", type=float, default=1000.0)
    p.add_argument("--churn", type=float, default=20.0, help="API updates per second")
    p.add_argument("--flap-period", type=float, default=60.0, help="seconds")
    p.add_argument("--outage-every", type=float, default=1800.0, help="seconds")
    p.add_argument("--outage-len", type=float, default=120.0, help="seconds")
    p.add_argument("--warmup", type=float, default=600.0, help="seconds")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    p.add_argument("--report", type=Path,
                   help="Markdown report (default loadtest/results/soak-<stamp>.md)")
    a = p.parse_args(argv)
    report = a.report or ROOT / "loadtest" / "results" / \
        f"soak-{time.strftime('%Y%m%d-%H%M%S')}.md"
    cfg = SoakConfig(minutes=a.minutes, qps=a.qps, churn_per_s=a.churn,
                     flap_period=a.flap_period, outage_every=a.outage_every,
                     outage_len=a.outage_len, warmup=a.warmup, sample_every=a.sample_every,
                     report=report)
    return 0 if run(cfg).passed else 1


if __name__ == "__main__":
    sys.exit(main())
