"""Forward/cache benchmark: forwarded-miss qps and cache-hit qps of a real kdns, with dnsperf.

    bash loadtest/forward_cache/setup.sh          # once: installs dnsperf (and knot)
    python3 -m loadtest.forward_cache.run [--seconds 10] [--clients 4] [--outstanding 100]

Setup: knotd on 127.0.0.1 serves a wildcard zone (every name answers, so every unique name is a
cache miss that kdns must forward); kdns runs ``cache`` + ``forward`` to it. On a machine with 2+
cores kdns is pinned to CPU 0 and dnsperf/knot to the others (taskset), as reliability.md §9.1.

1. Misses: a file of unique names, each asked once (``-n 1``), so every query is forwarded.
2. Hits: 1000 names asked once to fill the cache, then the same file replayed for ``--seconds``.

Prints one summary line per measurement. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.kdnsproc import run_kdns  # noqa: E402
from tests.upstream.knot import run_knot  # noqa: E402

ZONE = """$ORIGIN bench.test.
$TTL 3600
@   SOA ns.bench.test. h.bench.test. 1 3600 900 604800 3600
@   NS  ns
ns  A   127.0.0.1
*   A   192.0.2.1
"""


def cpus() -> tuple[str, str]:
    n = os.cpu_count() or 1
    return ("0", ",".join(str(i) for i in range(1, n))) if n > 1 else ("0", "0")


def pin(pid: int, cpu_list: str) -> None:
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-a", "-p", "-c", cpu_list, str(pid)], check=False,
                       capture_output=True)


def dnsperf(port: int, qfile: Path, args: argparse.Namespace, *, repeat: bool) -> dict[str, float]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
           "-c", str(args.clients), "-q", str(args.outstanding), "-t", "3"]
    cmd += ["-l", str(args.seconds)] if repeat else ["-n", "1", "-l", str(args.seconds * 3)]
    _, load_cpus = cpus()
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", load_cpus, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    stats: dict[str, float] = {}
    for key, pattern in (("sent", r"Queries sent:\s+(\d+)"),
                         ("completed", r"Queries completed:\s+(\d+)"),
                         ("lost", r"Queries lost:\s+(\d+)"),
                         ("qps", r"Queries per second:\s+([\d.]+)"),
                         ("latency_ms", r"Average Latency \(s\):\s+([\d.]+)")):
        m = re.search(pattern, out)
        stats[key] = float(m.group(1)) if m else float("nan")
    stats["latency_ms"] *= 1000
    noerror = re.search(r"NOERROR (\d+)", out)
    stats["noerror"] = float(noerror.group(1)) if noerror else 0.0
    return stats


def cpu_seconds(pid: int) -> float:
    """User+system CPU time a process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run dnsperf and add kdns's CPU use: queries per kdns CPU-second is the capacity of one
    core, and does not depend on how busy the machine is with other work."""
    before = cpu_seconds(pid)
    stats = run()
    stats["cpu"] = cpu_seconds(pid) - before
    stats["per_cpu_s"] = stats["completed"] / stats["cpu"] if stats["cpu"] else float("nan")
    return stats


def report(name: str, s: dict[str, float]) -> None:
    print(f"{name}: {s['qps']:.0f} qps, {s['completed']:.0f}/{s['sent']:.0f} completed, "
          f"{s['lost']:.0f} lost, NOERROR {s['noerror']:.0f}, avg latency "
          f"{s['latency_ms']:.2f} ms; kdns used {s['cpu']:.1f} CPU-s = "
          f"{s['per_cpu_s']:.0f} queries per kdns CPU-second", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--outstanding", type=int, default=100)
    p.add_argument("--miss-names", type=int, default=60_000)
    args = p.parse_args()
    if not shutil.which("dnsperf"):
        print("dnsperf not found: run bash loadtest/forward_cache/setup.sh", file=sys.stderr)
        return 2
    kdns_cpu, load_cpu = cpus()
    with tempfile.TemporaryDirectory(prefix="kdns-bench-") as tmp, \
            run_knot({"bench.test.": ZONE}) as knot:
        pin(knot.proc.pid, load_cpu)
        corefile = (".:{port} {\n    cache {\n        success 100000\n    }\n"
                    f"    forward . {knot.addr} {{\n        max_concurrent 1000\n    }}\n}}\n")
        with run_kdns(corefile) as k:
            pin(k.proc.pid, kdns_cpu)
            print(f"kdns on CPU {kdns_cpu}, dnsperf+knot on CPU {load_cpu}; "
                  f"{args.clients} clients, {args.outstanding} outstanding", flush=True)
            misses = Path(tmp) / "misses.txt"
            misses.write_text("".join(f"m{i}.bench.test A\n" for i in range(args.miss_names)))
            report("forwarded misses (unique names)", measured(
                k.proc.pid, lambda: dnsperf(k.port, misses, args, repeat=False)))
            hits = Path(tmp) / "hits.txt"
            hits.write_text("".join(f"h{i}.bench.test A\n" for i in range(1000)))
            warm = argparse.Namespace(**{**vars(args), "seconds": 5})
            dnsperf(k.port, hits, warm, repeat=False)
            report("cache hits (1000 hot names)", measured(
                k.proc.pid, lambda: dnsperf(k.port, hits, args, repeat=True)))
    print(f"load average after the run: {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} CPUs; other work on the machine lowers the qps, not the "
          "per-CPU-second figures)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
