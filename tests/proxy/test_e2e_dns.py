"""kdns behind a kube-dns ClusterIP programmed by kdns-proxy (root).

Everything is real: the fake API server runs in the node namespace; two kdns servers run in pods
``a`` and ``b`` with the kubernetes plugin pointed at it; ``kdns-proxy`` runs in the node and
programs 10.96.0.53; the client pod resolves through the ClusterIP with ``dig``. Each kdns also
answers ``backend.who.test`` with its own pod IP, so answers show which endpoint served them.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakeapi import objects as o
from tests.proxy.netns import REPO, FakeApiInNode, Topology, pod_v4, pod_v6, sh, stop_process

pytestmark = pytest.mark.root
DNS_IP, DNS_IP6 = "10.96.0.53", "fd00:96::53"

COREFILE = """\
.:53 {{
    kubernetes cluster.local {{
        endpoint {api}
    }}
}}
who.test:53 {{
    hosts {missing} who.test {{
        {ip} backend.who.test
    }}
}}
"""


def dig(topo: Topology, name: str, *extra: str, server: str = DNS_IP) -> list[str]:
    res = sh(*topo.exec_prefix("c"), "dig", f"@{server}", name, "+short", "+time=1", "+tries=1",
             *extra, check=False)
    return res.stdout.split()


def wait_for(probe: Callable[[], object], want: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while (got := probe()) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {got!r}, want {want!r}")
        time.sleep(0.1)


def dns_slice(*pods: str) -> dict[str, Any]:
    return o.endpointslice(
        "kube-system", "kube-dns-x1", "kube-dns",
        [o.endpoint(pod_v4(p), node="node-a") for p in pods],
        ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])


@pytest.fixture
def cluster(topo: Topology, tmp_path: Path) -> Iterator[tuple[Topology, FakeApiInNode]]:
    api = topo.start_fake_api()
    api.call("put_many", objs=[
        o.namespace("default"), o.namespace("kube-system"),
        o.service("kube-system", "kube-dns", cluster_ips=[DNS_IP, DNS_IP6],
                  ports=[o.port("dns", 53, "UDP"), o.port("dns-tcp", 53, "TCP")]),
        dns_slice("a", "b"),
        o.endpointslice("kube-system", "kube-dns-v6", "kube-dns",
                        [o.endpoint(pod_v6(p), node="node-a") for p in ("a", "b")],
                        address_type="IPv6",
                        ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
        o.service("default", "web", cluster_ip="10.96.0.10"),
        o.endpointslice("default", "web-x1", "web", [o.endpoint(pod_v4("b"), node="node-a")]),
    ])
    procs: list[subprocess.Popen[str]] = []
    for pod in ("a", "b"):
        corefile = tmp_path / f"Corefile.{pod}"
        corefile.write_text(COREFILE.format(api=api.pod_url, ip=pod_v4(pod),
                                            missing=tmp_path / "no-hosts-file"))
        procs.append(subprocess.Popen(
            [*topo.exec_prefix(pod), sys.executable, "-m", "kdns", "-conf", str(corefile)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    table = f"kpx-{os.getpid()}-{secrets.token_hex(3)}"
    procs.append(subprocess.Popen(
        [*topo.exec_prefix(), sys.executable, "-m", "kdns.proxy.cli", "--endpoint", api.url,
         "--node-name", "node-a", "--table", table, "--cluster-cidr", "10.244.0.0/16,fd00:244::/32",
         "--min-sync-period", "100ms", "--healthz-bind-address", "127.0.0.1:0",
         "--metrics-bind-address", "127.0.0.1:0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        yield topo, api
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for name, p in zip(("kdns a", "kdns b", "kdns-proxy"), procs, strict=True):
            assert p.stdout is not None
            print(f"--- {name} (shown by pytest when the test fails)\n{p.stdout.read()}")
        for family in ("ip", "ip6"):
            sh(*topo.exec_prefix(), "nft", "delete", "table", family, table, check=False)
        stop_process(topo.servers.pop())
        sh(*topo.exec_prefix(), "conntrack", "-F", check=False)


def test_kdns_behind_kube_dns_clusterip(cluster: tuple[Topology, FakeApiInNode]) -> None:
    topo, api = cluster
    # Like a readiness probe: both kdns pods must answer directly before the test starts.
    for pod in ("a", "b"):
        direct = functools.partial(dig, topo, "web.default.svc.cluster.local", server=pod_v4(pod))
        wait_for(direct, ["10.96.0.10"], 30, f"kdns in pod {pod} to answer")
    wait_for(lambda: dig(topo, "web.default.svc.cluster.local"), ["10.96.0.10"], 30,
             "kdns to answer through the kube-dns ClusterIP")
    # The first query of each path may wait on neighbour discovery: allow a retry or two.
    web_name = "web.default.svc.cluster.local"
    wait_for(lambda: dig(topo, web_name, "+tcp"), ["10.96.0.10"], 5, "DNS over TCP")
    assert dig(topo, "kube-dns.kube-system.svc.cluster.local") == [DNS_IP]
    # The same kdns pods behind the IPv6 ClusterIP (ip6 table), over UDP and TCP.
    wait_for(lambda: dig(topo, web_name, server=DNS_IP6), ["10.96.0.10"], 5, "DNS over IPv6")
    wait_for(lambda: dig(topo, web_name, "+tcp", server=DNS_IP6), ["10.96.0.10"], 5,
             "DNS over IPv6 TCP")
    served = Counter(dig(topo, "backend.who.test")[0] for _ in range(20))
    assert served.keys() == {pod_v4("a"), pod_v4("b")}, served

    # A resolver keeps its source port; after its endpoint leaves, the next query must reach
    # the other kdns at once (stale UDP conntrack deleted), not after the 30-120 s timeout.
    pinned = ("-b", f"{pod_v4('c')}#40053")
    victim = dig(topo, "backend.who.test", *pinned)[0]
    survivor = pod_v4("b") if victim == pod_v4("a") else pod_v4("a")
    survivor_pod = "b" if survivor == pod_v4("b") else "a"
    start = time.monotonic()
    api.call("put", obj=dns_slice(survivor_pod))
    wait_for(lambda: dig(topo, "backend.who.test", *pinned), [survivor], 10,
             "the pinned resolver flow to move to the remaining kdns")
    # Without the conntrack cleanup the flow would stick to the old kdns (still running) for
    # the UDP conntrack timeout, 30-120 s, refreshed by every query.
    assert time.monotonic() - start < 10
    assert Counter(dig(topo, "backend.who.test")[0] for _ in range(10)) == {survivor: 10}
