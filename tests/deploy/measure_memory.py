"""Resident memory of kdns under deploy/'s posture, by cluster size (not a test; run as root):

    python3 tests/deploy/measure_memory.py 1000 10000

For each N: N Services (ClusterIP, spread over 10 namespaces) and N EndpointSlices of 3
endpoints each in the fake API server, kdns running kubeadm's stock Corefile exactly as
test_deploy_cluster_dns.py runs it, RSS read from /proc once /ready says 200 and a few
queries went through. Compare with the Deployment's 70Mi request and 170Mi limit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import test_deploy_cluster_dns as e2e  # noqa: E402
from kdep_sandbox import proc_status  # noqa: E402

from tests.fakeapi import objects as o  # noqa: E402

NAMESPACES = 10
ENDPOINTS_PER_SLICE = 3


def ip(base: int, i: int) -> str:
    return f"10.{base + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def cluster_of(n: int) -> list[dict[str, Any]]:
    objs = [o.namespace(f"ns{i}") for i in range(NAMESPACES)]
    objs += [o.namespace("default"), o.namespace("kube-system")]
    objs.append(o.service("default", "web", cluster_ip=e2e.WEB_IP))
    for i in range(n):
        ns = f"ns{i % NAMESPACES}"
        objs.append(o.service(ns, f"svc{i}", cluster_ip=ip(96, i), ports=[o.port("http", 80)]))
        eps = [o.endpoint(ip(200, i * ENDPOINTS_PER_SLICE + k)) for k in range(ENDPOINTS_PER_SLICE)]
        objs.append(o.endpointslice(ns, f"svc{i}-abc", f"svc{i}", eps))
    return objs


def measure(n: int) -> str:
    e2e.cluster_objects = lambda: cluster_of(n)
    with e2e.cluster_up() as cluster:
        e2e.wait_ready(cluster)
        ready_after = time.monotonic() - cluster.kdns.at
        last = f"svc{n - 1}.ns{(n - 1) % NAMESPACES}.svc.cluster.local."
        answered = "status: NOERROR" in cluster.dig(last) if n else True
        time.sleep(1)
        rss_mib = int(proc_status(cluster.kdns.proc.pid)["VmRSS"].split()[0]) / 1024
    return (
        f"services={n} endpointslices={n}x{ENDPOINTS_PER_SLICE}: RSS {rss_mib:.1f} MiB, "
        f"ready {ready_after:.1f}s after exec, last service answered: {answered}"
    )


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1000]
    e2e.START_TIMEOUT = 120.0
    for n in sizes:
        print(measure(n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
