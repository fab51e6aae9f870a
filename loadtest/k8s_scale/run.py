"""kubernetes plugin at scale: 10,000 Services + 100,000 endpoints (1,000 slices of 100) +
1,000 Namespaces served by the fake API server (a separate process, real list/watch protocol).

Measures, for one real kdns process:
- initial sync: from spawning kdns until /ready answers 200 (every list applied);
- RSS (VmRSS and peak VmHWM) after the sync, and after a forced relist;
- query latency (UDP, closed loop, several client threads) at steady state and during a forced
  relist of every resource (the fake API server expires all watches with 410 and compacts its
  history, so every reflector lists again from scratch).

Run from the repository root:  python3 -m loadtest.k8s_scale.run [--services N] ...
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.message

from tests.fakeapi import objects as k8s
from tests.fakeapi.control import FakeApiProcess
from tests.kdnsproc import free_port

ROOT = Path(__file__).resolve().parents[2]


def build_objects(namespaces: int, services: int, slices: int, per_slice: int
                  ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Objects plus the ClusterIP and headless names to query."""
    objs: list[dict[str, Any]] = [k8s.namespace(f"ns{i}") for i in range(namespaces)]
    clusterip_names, headless_names = [], []
    for i in range(services):
        ns = f"ns{i % namespaces}"
        name = f"svc{i}"
        headless = i < slices
        ip = "None" if headless else f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        objs.append(k8s.service(ns, name, cluster_ip=ip,
                                ports=[k8s.port("http", 80), k8s.port("grpc", 9090)]))
        (headless_names if headless else clusterip_names).append(f"{name}.{ns}.svc.cluster.local.")
        if headless:
            eps = []
            for j in range(per_slice):
                n = i * per_slice + j
                eps.append(k8s.endpoint(f"172.{16 + n // 65536}.{(n // 256) % 256}.{n % 256}",
                                        pod=f"{name}-{j}", ns=ns, node=f"node-{j % 50}"))
            objs.append(k8s.endpointslice(ns, f"{name}-abcde", name, eps))
    return objs, clusterip_names, headless_names


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), ""


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def relists(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("kdns_k8s_relists_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Load:
    """Closed-loop UDP clients; each records (send time, latency or None for a timeout)."""

    def __init__(self, port: int, names: list[str], threads: int) -> None:
        self.port = port
        self.wires = [dns.message.make_query(n, "A", use_edns=0, payload=1232).to_wire()
                      for n in names]
        self.samples: list[tuple[float, float | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2.0)
        s.connect(("127.0.0.1", self.port))
        rnd = random.Random()
        local: list[tuple[float, float | None]] = []
        qid = rnd.randrange(65536)
        while not self._stop.is_set():
            wire = bytearray(rnd.choice(self.wires))
            qid = (qid + 1) & 0xFFFF
            wire[0:2] = qid.to_bytes(2, "big")
            t0 = time.monotonic()
            s.send(wire)
            try:
                while True:
                    data = s.recv(65535)
                    if data[:2] == wire[:2]:
                        break
                local.append((t0, time.monotonic() - t0))
            except TimeoutError:
                local.append((t0, None))
        self.samples += local
        s.close()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def percentiles(samples: list[tuple[float, float | None]], start: float, end: float
                ) -> dict[str, float]:
    lat = sorted(x for t, x in samples if start <= t <= end and x is not None)
    lost = sum(1 for t, x in samples if start <= t <= end and x is None)
    if not lat:
        return {"queries": 0, "lost": lost}

    def p(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3)

    return {"queries": len(lat), "lost": lost, "qps": round(len(lat) / (end - start)),
            "p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99),
            "max_ms": round(lat[-1] * 1000, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--namespaces", type=int, default=1000)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--slices", type=int, default=1000)
    ap.add_argument("--per-slice", type=int, default=100)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--steady-seconds", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=1, help="kdns -workers N")
    ap.add_argument("--headless-share", type=float, default=0.1,
                    help="share of queries for headless names (100 A records each)")
    args = ap.parse_args()

    objs, cip, hl = build_objects(args.namespaces, args.services, args.slices, args.per_slice)
    rnd = random.Random(1)
    n_headless = round(len(cip) * args.headless_share / max(1e-9, 1 - args.headless_share))
    names = cip + [rnd.choice(hl) for _ in range(n_headless)] if hl else cip
    result: dict[str, Any] = {"workers": args.workers, "objects": {"namespaces": args.namespaces,
                                          "services": args.services,
                                          "endpointslices": args.slices,
                                          "endpoints": args.slices * args.per_slice}}
    with tempfile.TemporaryDirectory(prefix="k8s-scale-") as tmp:
        objfile = Path(tmp) / "objects.json"
        objfile.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
        del objs
        api = FakeApiProcess.start(objects_dir=objfile)
        dport, rport, mport = free_port(), free_port(), free_port()
        corefile = Path(tmp) / "Corefile"
        corefile.write_text(
            f".:{dport} {{\n    ready 127.0.0.1:{rport}\n    prometheus 127.0.0.1:{mport}\n"
            f"    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n"
            f"        endpoint {api.url}\n        startup_timeout 60s\n    }}\n}}\n")
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "kdns", "-conf", str(corefile),
                                 "-workers", str(args.workers)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    if http_get(f"http://127.0.0.1:{rport}/ready")[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() - t0 > 300:
                    raise SystemExit("kdns did not become ready")
                time.sleep(0.05)
            result["initial_sync_s"] = round(time.monotonic() - t0, 2)
            time.sleep(1.0)
            result["rss_after_sync_mib"] = {k: round(v / 1024, 1)
                                            for k, v in rss_kib(proc.pid).items()}
            with Load(dport, names, args.threads) as load:
                steady_start = time.monotonic()
                time.sleep(args.steady_seconds)
                steady_end = time.monotonic()
                before = relists(http_get(f"http://127.0.0.1:{mport}/metrics")[1])
                api.api.expire_watches()
                t_relist = time.monotonic()
                while relists(http_get(f"http://127.0.0.1:{mport}/metrics")[1]) < before + 3:
                    if time.monotonic() - t_relist > 120:
                        raise SystemExit("relist did not finish")
                    time.sleep(0.05)
                t_done = time.monotonic()
                time.sleep(0.5)
            result["steady"] = percentiles(load.samples, steady_start, steady_end)
            result["relist_s"] = round(t_done - t_relist, 2)
            result["during_relist"] = percentiles(load.samples, t_relist, t_done)
            result["rss_after_relist_mib"] = {k: round(v / 1024, 1)
                                              for k, v in rss_kib(proc.pid).items()}
        finally:
            proc.terminate()
            proc.wait(30)
            api.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
