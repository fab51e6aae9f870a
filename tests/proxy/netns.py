"""A one-node cluster in network namespaces for kdns-proxy datapath tests (root only).

Layout (cni-proxy.md 6.1): ``<p>-node`` has bridge ``kpxbr0`` (10.244.1.1/24,
fd00:244:1::1/64) with pods ``<p>-a`` (.10), ``<p>-b`` (.11) as backends and ``<p>-c`` (.30) as
client, plus uplink ``up0`` (192.0.2.1/24, 2001:db8::1/64) to ``<p>-ext`` (.2), an off-cluster
client. Every namespace name starts with ``kpx`` and the run's pid, and ``destroy`` always
deletes them (killing the servers they hold).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

PROBE = str(Path(__file__).with_name("probe.py"))
REPO = str(Path(__file__).resolve().parents[2])
PODS = {"a": 10, "b": 11, "c": 30}
NODE_V4, NODE_V6 = "192.0.2.1", "2001:db8::1"
EXT_V4, EXT_V6 = "192.0.2.2", "2001:db8::2"
GW_V4, GW_V6 = "10.244.1.1", "fd00:244:1::1"
EXTERNAL_IP = "198.51.100.7"


def pod_v4(pod: str) -> str:
    return f"10.244.1.{PODS[pod]}"


def pod_v6(pod: str) -> str:
    return f"fd00:244:1::{PODS[pod]}"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res


def stop_process(proc: subprocess.Popen[str], grace: float = 10.0) -> int:
    """SIGTERM, wait, then SIGKILL if needed: nothing a test started outlives it."""
    proc.terminate()
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Topology:
    def __init__(self) -> None:
        self.prefix = f"kpx{os.getpid()}{secrets.token_hex(2)}"
        self.servers: list[subprocess.Popen[str]] = []
        self.created: list[str] = []

    def ns(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    @property
    def node(self) -> str:
        return self.ns("node")

    def exec_prefix(self, short: str = "node") -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns(short))

    def _add_ns(self, short: str) -> None:
        sh("ip", "netns", "add", self.ns(short))
        self.created.append(self.ns(short))
        # No IPv6 duplicate address detection: link-local addresses would stay "tentative" for
        # a second or two after each link comes up, and early IPv6 packets could be lost.
        sh("ip", "netns", "exec", self.ns(short), "sysctl", "-qw",
           "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        sh("ip", "-n", self.ns(short), "link", "set", "lo", "up")

    def create(self) -> None:
        node = self.node
        for short in ("node", "ext", *PODS):
            self._add_ns(short)
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1",
           "net.ipv6.conf.all.forwarding=1")
        # Pods on one bridge answer each other directly; br_netfilter sends those bridged
        # replies through conntrack so a ClusterIP's DNAT is undone (the default is already 1).
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1",
           "net.bridge.bridge-nf-call-ip6tables=1")
        sh("ip", "-n", node, "link", "add", "kpxbr0", "type", "bridge")
        sh("ip", "-n", node, "link", "set", "kpxbr0", "up")
        sh("ip", "-n", node, "addr", "add", f"{GW_V4}/24", "dev", "kpxbr0")
        sh("ip", "-n", node, "addr", "add", f"{GW_V6}/64", "dev", "kpxbr0", "nodad")
        for pod in PODS:
            pns = self.ns(pod)
            sh("ip", "-n", node, "link", "add", f"h-{pod}", "type", "veth", "peer", "name",
               "eth0", "netns", pns)
            sh("ip", "-n", node, "link", "set", f"h-{pod}", "master", "kpxbr0", "up")
            # Hairpin lets a pod reach itself through a ClusterIP (as bridge CNIs configure).
            sh("ip", "-n", node, "link", "set", f"h-{pod}", "type", "bridge_slave", "hairpin",
               "on")
            sh("ip", "-n", pns, "addr", "add", f"{pod_v4(pod)}/24", "dev", "eth0")
            sh("ip", "-n", pns, "addr", "add", f"{pod_v6(pod)}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", pns, "link", "set", "eth0", "up")
            sh("ip", "-n", pns, "route", "add", "default", "via", GW_V4)
            sh("ip", "-n", pns, "-6", "route", "add", "default", "via", GW_V6)
        ext = self.ns("ext")
        sh("ip", "-n", node, "link", "add", "up0", "type", "veth", "peer", "name", "eth0",
           "netns", ext)
        sh("ip", "-n", node, "addr", "add", f"{NODE_V4}/24", "dev", "up0")
        sh("ip", "-n", node, "addr", "add", f"{NODE_V6}/64", "dev", "up0", "nodad")
        sh("ip", "-n", node, "link", "set", "up0", "up")
        sh("ip", "-n", ext, "addr", "add", f"{EXT_V4}/24", "dev", "eth0")
        sh("ip", "-n", ext, "addr", "add", f"{EXT_V6}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", ext, "link", "set", "eth0", "up")
        # An external IP routed to the node, as a cloud or BGP router would.
        sh("ip", "-n", ext, "route", "add", f"{EXTERNAL_IP}/32", "via", NODE_V4)
        # Node processes reach ClusterIPs through the default route, as on a real node.
        sh("ip", "-n", node, "route", "add", "default", "via", EXT_V4)
        sh("ip", "-n", node, "-6", "route", "add", "default", "via", EXT_V6)

    def serve(self, pod: str, *, tcp: int | None = 8080, udp: int | None = 5353) -> None:
        """Starts the probe server in a pod, named after the pod."""
        args = [*self.exec_prefix(pod), sys.executable, PROBE, "serve", pod]
        args += [f"--tcp={tcp}"] if tcp else []
        args += [f"--udp={udp}"] if udp else []
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"probe server in {pod} did not start: {proc.stderr.read()}")

    def probe(self, short: str, *args: str) -> list[str]:
        res = sh(*self.exec_prefix(short), sys.executable, PROBE, *args)
        answers: list[str] = json.loads(res.stdout)
        return answers

    def hold(self, short: str, host: str, port: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.exec_prefix(short), sys.executable, PROBE, "hold", host, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def http(self, short: str, url: str, body: object = None) -> tuple[int, str]:
        args = ["get", url] if body is None else ["post", url, json.dumps(body)]
        res = sh(*self.exec_prefix(short), sys.executable, PROBE, *args)
        reply = json.loads(res.stdout)
        return int(reply["status"]), str(reply["body"])

    def nft_json(self, *args: str) -> list[dict[str, object]]:
        res = sh(*self.exec_prefix(), "nft", "-j", "list", *args)
        items: list[dict[str, object]] = json.loads(res.stdout)["nftables"]
        return items

    def start_fake_api(self) -> FakeApiInNode:
        """``python -m tests.fakeapi`` inside the node, reachable from pods at 10.244.1.1."""
        proc = subprocess.Popen(
            [*self.exec_prefix(), sys.executable, "-m", "tests.fakeapi", "--host", "0.0.0.0"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.servers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fake API server did not start: {proc.stderr.read()}")
        info = json.loads(line)
        port = int(info["url"].rsplit(":", 1)[1])
        control = int(info["control"].rsplit(":", 1)[1])
        return FakeApiInNode(self, port, f"http://127.0.0.1:{control}")

    def destroy(self) -> None:
        for proc in self.servers:
            stop_process(proc, grace=0)
        for name in reversed(self.created):
            sh("ip", "netns", "del", name, check=False)
        self.created.clear()


class FakeApiInNode:
    """Control of a fake API server that lives in the node namespace (calls go through it)."""

    def __init__(self, topo: Topology, port: int, control_url: str) -> None:
        self.topo = topo
        self.port = port
        self.url = f"http://127.0.0.1:{port}"  # as seen from the node
        self.pod_url = f"http://{GW_V4}:{port}"  # as seen from pods
        self.control_url = control_url

    def call(self, method: str, **kwargs: object) -> object:
        status, body = self.topo.http("node", f"{self.control_url}/call/{method}", kwargs)
        if status != 200:
            raise RuntimeError(f"fake API {method} failed: {status} {body}")
        return json.loads(body)["result"]
