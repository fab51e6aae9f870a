"""Two nodes routed host-gw style, one kdns-proxy per node (root): pod IPs are kept across
nodes, NodePorts masquerade under externalTrafficPolicy Cluster and keep the client IP under
Local, and a node without a local endpoint drops Local NodePort traffic.

ul: bridge joining n1 (192.0.2.1), n2 (192.0.2.2) and ext (192.0.2.100).
n1: pods p1 (10.244.1.10, backend) and c1 (10.244.1.30, client); n2: pod p2 (10.244.2.10).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from kdns.proxy.conntrack import Conntrack
from kdns.proxy.model import Endpoint, ServicePort
from kdns.proxy.nft import Nft
from kdns.proxy.render import RenderConfig
from kdns.proxy.syncer import Syncer
from tests.proxy.netns import PROBE, sh

pytestmark = pytest.mark.root
EXT = "192.0.2.100"
NODES = {"n1": ("192.0.2.1", 1), "n2": ("192.0.2.2", 2)}
PODS = {"p1": ("n1", 10), "c1": ("n1", 30), "p2": ("n2", 10)}


def pod_ip(pod: str) -> str:
    node, host = PODS[pod]
    return f"10.244.{NODES[node][1]}.{host}"


class TwoNodes:
    def __init__(self) -> None:
        self.prefix = f"kpx{os.getpid()}{secrets.token_hex(2)}"
        self.created: list[str] = []
        self.servers: list[subprocess.Popen[str]] = []

    def ns(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def create(self) -> None:
        for short in ("ul", "ext", *NODES, *PODS):
            sh("ip", "netns", "add", self.ns(short))
            self.created.append(self.ns(short))
            sh("ip", "-n", self.ns(short), "link", "set", "lo", "up")
        ul = self.ns("ul")
        sh("ip", "-n", ul, "link", "add", "ulbr", "type", "bridge")
        sh("ip", "-n", ul, "link", "set", "ulbr", "up")
        uplinks = {**{n: f"{ip}/24" for n, (ip, _) in NODES.items()}, "ext": f"{EXT}/24"}
        for short, addr in uplinks.items():
            sh("ip", "-n", ul, "link", "add", f"u-{short}", "type", "veth", "peer", "name",
               "up0", "netns", self.ns(short))
            sh("ip", "-n", ul, "link", "set", f"u-{short}", "master", "ulbr", "up")
            sh("ip", "-n", self.ns(short), "addr", "add", addr, "dev", "up0")
            sh("ip", "-n", self.ns(short), "link", "set", "up0", "up")
        for node, (_, idx) in NODES.items():
            n = self.ns(node)
            sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1",
               "net.bridge.bridge-nf-call-iptables=1")
            sh("ip", "-n", n, "link", "add", "kpxbr0", "type", "bridge")
            sh("ip", "-n", n, "link", "set", "kpxbr0", "up")
            sh("ip", "-n", n, "addr", "add", f"10.244.{idx}.1/24", "dev", "kpxbr0")
            other_node = "n2" if node == "n1" else "n1"
            sh("ip", "-n", n, "route", "add", f"10.244.{NODES[other_node][1]}.0/24", "via",
               NODES[other_node][0])
        for pod, (node, _) in PODS.items():
            p, n = self.ns(pod), self.ns(node)
            sh("ip", "-n", n, "link", "add", f"h-{pod}", "type", "veth", "peer", "name", "eth0",
               "netns", p)
            sh("ip", "-n", n, "link", "set", f"h-{pod}", "master", "kpxbr0", "up")
            sh("ip", "-n", p, "addr", "add", f"{pod_ip(pod)}/24", "dev", "eth0")
            sh("ip", "-n", p, "link", "set", "eth0", "up")
            sh("ip", "-n", p, "route", "add", "default", "via",
               f"10.244.{NODES[node][1]}.1")

    def serve(self, pod: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(pod), sys.executable, PROBE, "serve", pod,
             "--tcp=8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def probe(self, short: str, *args: str) -> list[str]:
        res = sh("ip", "netns", "exec", self.ns(short), sys.executable, PROBE, *args)
        answers: list[str] = json.loads(res.stdout)
        return answers

    def destroy(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for name in reversed(self.created):
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture(scope="module")
def nodes() -> Iterator[TwoNodes]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, nftables)")
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        pytest.skip("needs br_netfilter (bridged pod-to-pod replies must pass conntrack)")
    t = TwoNodes()
    try:
        t.create()
        t.serve("p1")
        t.serve("p2")
        yield t
    finally:
        t.destroy()


def svc(name: str, cip: str, node_port: int, local: bool, *pods: str) -> ServicePort:
    return ServicePort("default", name, "http", "tcp", 80, (cip,), node_port=node_port,
                       external_local=local,
                       endpoints=tuple(Endpoint(pod_ip(p), 8080, PODS[p][0]) for p in pods))


SERVICES = [
    svc("both", "10.96.0.10", 30080, False, "p1", "p2"),
    svc("local", "10.96.0.11", 30081, True, "p1", "p2"),
    svc("only-n1", "10.96.0.12", 30082, True, "p1"),
]


async def _sync_all(syncers: list[Syncer]) -> None:
    for s in syncers:
        assert await s.sync()


async def _cleanup_all(syncers: list[Syncer]) -> None:
    for s in syncers:
        await s.cleanup()


@pytest.fixture(scope="module")
def proxies(nodes: TwoNodes) -> Iterator[list[Syncer]]:
    table = f"kpx-{os.getpid()}-{secrets.token_hex(3)}"
    syncers = []
    for node in NODES:
        prefix = ("ip", "netns", "exec", nodes.ns(node))
        cfg = RenderConfig(node_name=node, table=table, cluster_cidrs=("10.244.0.0/16",),
                           service_cidrs=("10.96.0.0/16",))
        syncers.append(Syncer(cfg, lambda: SERVICES, nft=Nft(prefix=prefix),
                              conntrack=Conntrack(prefix=prefix), families=("ip",)))
    try:
        asyncio.run(_sync_all(syncers))
        yield syncers
    finally:
        asyncio.run(_cleanup_all(syncers))


def seen(answers: list[str]) -> Counter[str]:
    return Counter(answers)


def test_clusterip_across_nodes_keeps_pod_ip(nodes: TwoNodes, proxies: list[Syncer]) -> None:
    answers = nodes.probe("c1", "tcp", "10.96.0.10", "80", "--count=30")
    assert set(answers) == {f"p1 {pod_ip('c1')}", f"p2 {pod_ip('c1')}"}, answers


def test_nodeport_cluster_policy_masquerades_across_nodes(
    nodes: TwoNodes, proxies: list[Syncer]
) -> None:
    answers = nodes.probe("ext", "tcp", "192.0.2.1", "30080", "--count=30")
    # p1 (same node) sees n1's bridge address; p2 sees n1's uplink address (crossed the underlay).
    assert set(answers) == {"p1 10.244.1.1", "p2 192.0.2.1"}, answers


def test_nodeport_local_policy(nodes: TwoNodes, proxies: list[Syncer]) -> None:
    answers = nodes.probe("ext", "tcp", "192.0.2.1", "30081", "--count=10")
    assert seen(answers) == {f"p1 {EXT}": 10}  # only n1's endpoint, client IP preserved
    answers = nodes.probe("ext", "tcp", "192.0.2.2", "30081", "--count=10")
    assert seen(answers) == {f"p2 {EXT}": 10}
    dropped = nodes.probe("ext", "tcp", "192.0.2.2", "30082", "--timeout=0.5")
    assert dropped[0].startswith("ERR timeout"), dropped  # no endpoint on n2: drop, not reject


def test_pod_to_other_nodes_local_nodeport_fails_like_kube_proxy(
    nodes: TwoNodes, proxies: list[Syncer]
) -> None:
    # kubernetes/kubernetes#74383, kept on purpose (kube-proxy's behaviour): n2 short-circuits
    # pod traffic to the cluster chain and DNATs to p1 without masquerading, p1 answers c1
    # directly on n1, and c1 drops the answer from an address it never called.
    failed = nodes.probe("c1", "tcp", "192.0.2.2", "30082", "--timeout=0.5")
    assert failed[0].startswith("ERR"), failed
    # The supported way for pods, the ClusterIP, works.
    assert nodes.probe("c1", "tcp", "10.96.0.12", "80") == [f"p1 {pod_ip('c1')}"]
