"""kdns against BIND 9, Knot, dnsmasq and twisted.names, side by side in one run.

    bash loadtest/setup.sh            # once: dnsperf, bind9, knot, dnsmasq, twisted, matplotlib
    python3 -m loadtest.bench         # writes loadtest/results/<stamp>.md and .png

Each server is pinned to CPU 1 and dnsperf to CPU 0 (the machine has 2 cores). For each server:
server CPU µs per answered query and latency percentiles at fixed offered loads, the qps ceiling
(dnsperf unthrottled), lost queries and RSS. kdns runs the stock Kubernetes Corefile (errors,
health, ready, kubernetes, prometheus, forward, cache, loop, reload, loadbalance) against the fake
API server, with a knot upstream for external names; the peers serve an equivalent zone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.cluster import Cluster, hosts_queries
from loadtest.servers import (
    Bind,
    Dnsmasq,
    Kdns,
    KdnsHosts,
    Knot,
    Server,
    Twisted,
    cpu_seconds,
    rss_mib,
)

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Run:
    offered: int | None
    sent: int
    completed: int
    lost: int
    qps: float
    cpu_us: float
    p50_ms: float
    p99_ms: float


def dnsperf(port: int, queries: Path, seconds: float, rate: int | None, cpu: str) -> (
        tuple[int, int, int, float, list[float]]):
    cmd = ["taskset", "-c", cpu, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d",
           str(queries), "-l", str(seconds), "-t", "2", "-q", "500", "-c", "4"]
    if rate:
        cmd += ["-Q", str(rate), "-v"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout

    def num(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+)", out)
        return float(m.group(1)) if m else 0.0

    lat = []
    for line in out.splitlines():
        if line.startswith("> "):
            try:
                lat.append(float(line.rsplit(" ", 1)[1]))
            except ValueError:
                continue
    return (int(num("Queries sent")), int(num("Queries completed")), int(num("Queries lost")),
            num("Queries per second"), lat)


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def measure(server: Server, queries: Path, rates: list[int], seconds: float,
            client_cpu: str, warmup: float = 0) -> tuple[list[Run], float, float, float]:
    rss_idle = rss_mib(server.pid)
    if warmup:  # every server alike: caches filled as in steady state, first-query costs paid
        dnsperf(server.port, queries, warmup, 10000, client_cpu)
        time.sleep(0.5)
    runs = []
    for rate in [*rates, None]:
        before = cpu_seconds(server.pid)
        sent, done, lost, qps, lat = dnsperf(server.port, queries, seconds, rate, client_cpu)
        cpu = cpu_seconds(server.pid) - before
        runs.append(Run(rate, sent, done, lost, qps, cpu / max(done, 1) * 1e6,
                        pct(lat, 0.5), pct(lat, 0.99)))
        time.sleep(0.5)
    return runs, rss_idle, rss_mib(server.pid), runs[-1].qps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--headless", type=int, default=50)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=6,
                    help="seconds of dnsperf at 10K qps before measuring (fills caches)")
    ap.add_argument("--rates", default="5000,10000,20000,40000")
    ap.add_argument("--peers", default="kdns,bind,knot,dnsmasq,twisted")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--scenario", choices=["cluster", "hosts"], default="cluster",
                    help="hosts: kdns serves the services as hosts entries (A queries only)")
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--client-cpu", default="0")
    args = ap.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r]
    cluster = Cluster(services=args.services, headless=args.headless,
                      endpoints=args.endpoints)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path("/tmp") / f"kdns-bench-{stamp}"
    work.mkdir(parents=True)
    queries = work / "queries.txt"
    if args.scenario == "hosts":
        names = [f"{n}.{ns}.svc.cluster.local" for ns, n, _ in cluster.svc]
        queries.write_text("\n".join(hosts_queries(names, 50000)) + "\n")
    else:
        queries.write_text("\n".join(cluster.queries(50000)) + "\n")
    makers = {
        "kdns": lambda: (KdnsHosts if args.scenario == "hosts" else Kdns)(
            "kdns", work / "kdns", args.server_cpu, cluster, args.workers),
        "bind": lambda: Bind("bind", work / "bind", args.server_cpu, cluster),
        "knot": lambda: Knot("knot", work / "knot", args.server_cpu, cluster),
        "dnsmasq": lambda: Dnsmasq("dnsmasq", work / "dnsmasq", args.server_cpu, cluster),
        "twisted": lambda: Twisted("twisted", work / "twisted", args.server_cpu, cluster),
    }
    results: dict[str, tuple[list[Run], float, float, float]] = {}
    for name in args.peers.split(","):
        for attempt in (1, 2):  # a side port taken between free_port() and bind: new ports
            server = makers[name]()
            try:
                server.start()
            except Exception as e:  # a missing peer must not hide the others' numbers
                print(f"{name}: {e}" + (", retrying" if attempt == 1 else ""))
                server.stop()
                continue
            try:
                time.sleep(1)
                results[name] = measure(server, queries, rates, args.seconds, args.client_cpu,
                                        args.warmup)
            except Exception as e:
                print(f"{name}: {e}")
            finally:
                server.stop()
            break
        if name in results:
            runs, _, rss, ceiling = results[name]
            print(f"{name}: ceiling {ceiling:.0f} qps ({1e6 / max(runs[-1].cpu_us, 1e-9):.0f} per "
                  f"server core), RSS {rss:.1f} MiB, "
                  + ", ".join(f"{r.offered}: {r.cpu_us:.1f} µs/q p99 {r.p99_ms:.2f} ms "
                              f"lost {r.lost}" for r in runs[:-1]), flush=True)
    report = render(results, rates, args, cluster)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stamp}.md").write_text(report)
    plot(results, RESULTS / f"{stamp}.png")
    print(report)
    return 0


def render(results: dict[str, tuple[list[Run], float, float, float]], rates: list[int],
           args: argparse.Namespace, cluster: Cluster) -> str:
    lines = [f"# kdns load test {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Cluster: {cluster.services} services, {cluster.headless} headless x "
             f"{cluster.endpoints} endpoints; " + (
                 "scenario hosts: kdns answers the services as hosts entries, A queries only"
                 if args.scenario == "hosts" else
                 "query mix: cluster A, search-path NXDOMAIN, SRV, AAAA NODATA, external "
                 "(cached) names, 20% mixed case") + f". Server on CPU "
             f"{args.server_cpu}, dnsperf on CPU {args.client_cpu}, {args.seconds:.0f} s per "
             f"point, kdns workers: {args.workers}.", "",
             "| server | ceiling qps | server cores @ceiling | qps per server core | RSS MiB "
             "idle / after | "
             + " | ".join(f"µs/q @{r // 1000}k | p99 ms @{r // 1000}k | lost @{r // 1000}k"
                          for r in rates) + " |",
             "|---|---|---|---|---|" + "---|---|---|" * len(rates)]
    for name, (runs, rss_idle, rss, ceiling) in results.items():
        cells = [f"{r.cpu_us:.1f} | {r.p99_ms:.2f} | {r.lost}" for r in runs[:-1]]
        top = runs[-1]
        cores = top.qps * top.cpu_us / 1e6
        per_core = 1e6 / top.cpu_us if top.cpu_us else 0
        lines.append(f"| {name} | {ceiling:.0f} | {cores:.2f} | {per_core:.0f} | "
                     f"{rss_idle:.1f} / {rss:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "The ceiling is dnsperf unthrottled; when the server core is not saturated "
              "(cores @ceiling well below 1) dnsperf or a noisy machine was the limit, and qps per "
              "server core (answered queries / server CPU seconds at the ceiling) is the "
              "server's own one-core figure."]
    if "kdns" in results:
        k_runs, _, _, k_ceiling = results["kdns"]
        lines += ["", "Ratios kdns/peer (CPU per query at 20k: < 1 means kdns is cheaper; "
                  "ceiling: > 1 means kdns is faster):", ""]
        idx = rates.index(20000) if 20000 in rates else 0
        for name, (runs, _, _, ceiling) in results.items():
            if name == "kdns":
                continue
            cpu_ratio = k_runs[idx].cpu_us / runs[idx].cpu_us if runs[idx].cpu_us else 0
            core_ratio = runs[-1].cpu_us / k_runs[-1].cpu_us if k_runs[-1].cpu_us else 0
            lines.append(f"- vs {name}: CPU/query {cpu_ratio:.2f}x, ceiling "
                         f"{k_ceiling / ceiling if ceiling else 0:.2f}x, qps per server core "
                         f"{core_ratio:.2f}x")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, tuple[list[Run], float, float, float]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (runs, _, _, _) in results.items():
        pts = [(r.offered, r.p99_ms) for r in runs if r.offered]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xlabel("offered load (qps)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    raise SystemExit(main())
