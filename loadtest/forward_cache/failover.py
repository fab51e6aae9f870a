"""Failover under load (reliability.md F1): one of two upstreams is blackholed mid-run.

    sudo python3 -m loadtest.forward_cache.failover [--rate 500] [--seconds 15] [--at 5]

Two knotd instances on 127.0.0.1 serve a wildcard zone; kdns forwards to both (policy random,
default health checks, 2 s per attempt). dnsperf sends unique names (all cache misses) at a fixed
rate; after ``--at`` seconds an nftables rule drops every packet to the first upstream's port
(a blackhole: no ICMP, the upstream just goes silent). dnsperf prints a qps line every second
(``-S 1``) and the final rcode counts, so you see the dip while the dead upstream is detected and
that forwarding continues through the live one. Needs root (nftables); the table it creates,
``kdnsfc_<random>``, is deleted at the end whatever happens.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from loadtest.forward_cache.run import ZONE, cpus, pin  # noqa: E402
from tests.kdnsproc import run_kdns  # noqa: E402
from tests.upstream.knot import run_knot  # noqa: E402


def nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True, text=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=int, default=500, help="queries per second (dnsperf -Q)")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--at", type=float, default=5.0, help="blackhole upstream A after this")
    args = p.parse_args()
    table = f"kdnsfc_{secrets.token_hex(3)}"
    kdns_cpu, load_cpu = cpus()
    with tempfile.TemporaryDirectory(prefix="kdns-failover-") as tmp, \
            run_knot({"bench.test.": ZONE}) as a, run_knot({"bench.test.": ZONE}) as b:
        pin(a.proc.pid, load_cpu)
        pin(b.proc.pid, load_cpu)
        corefile = ".:{port} {\n" f"    forward . {a.addr} {b.addr}\n}}\n"
        with run_kdns(corefile) as k:
            pin(k.proc.pid, kdns_cpu)
            names = Path(tmp) / "names.txt"
            total = args.rate * (args.seconds + 5)
            names.write_text("".join(f"f{i}.bench.test A\n" for i in range(total)))
            nft("add", "table", "inet", table)
            try:
                # The input hook: a drop there is silent. (Dropping in output would make the
                # sender's sendto() fail with EPERM at once: a fast error, not a blackhole.)
                nft("add", "chain", "inet", table, "inp",
                    "{ type filter hook input priority 0 ; }")

                def blackhole() -> None:
                    time.sleep(args.at)
                    for proto in ("udp", "tcp"):
                        nft("add", "rule", "inet", table, "inp", "ip", "daddr", "127.0.0.1",
                            proto, "dport", str(a.port), "drop")
                    print(f"--- t={args.at:.1f}s: upstream {a.addr} blackholed ---", flush=True)

                threading.Thread(target=blackhole, daemon=True).start()
                cmd = ["taskset", "-c", load_cpu, "dnsperf", "-s", "127.0.0.1", "-p",
                       str(k.port), "-d", str(names), "-n", "1", "-l", str(args.seconds),
                       "-Q", str(args.rate), "-c", "4", "-t", "5", "-S", "1"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            finally:
                nft("delete", "table", "inet", table)
    for line in out.splitlines():
        line = line.strip()
        if line and not line.startswith(("[Status]", "DNS Performance", "Version")):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
