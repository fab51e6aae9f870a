"""Benchmarks for hosts and loadbalance (not collected by pytest; numbers, not assertions).

    python3 -m tests.plugins.hosts.bench_hosts table     # table build cost per hosts line
    python3 -m tests.plugins.hosts.bench_hosts dnsperf   # needs dnsperf and taskset; 2+ cores

``table`` times parse_hosts + build_table (CPU time, best of 3) for a block list (every name on
0.0.0.0) and for a file with a distinct address per name. ``dnsperf`` runs kdns pinned to CPU 1
with 1000 names x 4 addresses (plus 10% unknown names) and dnsperf pinned to CPU 0 for 10 s,
unthrottled, for: hosts alone, hosts + loadbalance, hosts + loadbalance with a prefer list that
splits every answer (never replayable by the fast path); it prints qps and server CPU per query.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kdns.plugins.hosts.table import build_table, parse_hosts
from tests.kdnsproc import free_port

N_LINES = 20_000


def bench_table() -> None:
    cases = {
        "block list": "".join(f"0.0.0.0 ads{i}.tracker{i % 97}.example.com\n"
                              for i in range(N_LINES)),
        "distinct addresses": "".join(f"10.{i // 65536}.{i // 256 % 256}.{i % 256} "
                                      f"host{i}.corp.example\n" for i in range(N_LINES)),
    }
    for label, text in cases.items():
        best_parse = best_build = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            lines, _ = parse_hosts(text)
            t1 = time.process_time()
            build_table(lines, (), (".",), 3600, True)
            t2 = time.process_time()
            best_parse, best_build = min(best_parse, t1 - t0), min(best_build, t2 - t1)
        print(f"{label}: parse {best_parse / N_LINES * 1e6:.1f} us/line, "
              f"build {best_build / N_LINES * 1e6:.1f} us/line")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def bench_dnsperf() -> None:
    with tempfile.TemporaryDirectory(prefix="kdns-bench-") as tmp:
        wd = Path(tmp)
        rng = random.Random(1)
        hosts = [f"10.{i // 250}.{i % 250}.{j} n{i}.example.org" for i in range(1000)
                 for j in (1, 2, 3)]
        hosts += [f"192.168.{i // 250}.{i % 250} n{i}.example.org" for i in range(1000)]
        (wd / "hosts").write_text("\n".join(hosts) + "\n")
        queries = [f"n{rng.randrange(1000)}.example.org A" for _ in range(20_000)]
        queries += [f"x{rng.randrange(1000)}.example.org A" for _ in range(2_000)]
        rng.shuffle(queries)
        (wd / "queries").write_text("\n".join(queries) + "\n")
        variants = {
            "hosts": "",
            "hosts + loadbalance": "    loadbalance\n",
            "hosts + loadbalance prefer (split answers)":
                "    loadbalance {\n        prefer 192.168.0.0/16\n    }\n",
        }
        for label, extra in variants.items():
            port = free_port()
            (wd / "Corefile").write_text(f"example.org:{port} {{\n    hosts hosts\n{extra}}}\n")
            proc = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "kdns",
                                     "-conf", "Corefile", "-quiet"], cwd=wd)
            try:
                time.sleep(2)
                cpu0 = _cpu_seconds(proc.pid)
                out = subprocess.run(
                    ["taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                     "-d", str(wd / "queries"), "-l", "10", "-c", "4", "-q", "500"],
                    capture_output=True, text=True, timeout=60).stdout
                cpu = _cpu_seconds(proc.pid) - cpu0
            finally:
                proc.terminate()
                proc.wait()
            qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
            done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
            print(f"{label}: {qps:,.0f} qps, {cpu / max(done, 1) * 1e6:.1f} us server CPU "
                  "per query")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "table"
    {"table": bench_table, "dnsperf": bench_dnsperf}[what]()
