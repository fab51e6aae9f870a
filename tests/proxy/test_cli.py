"""``kdns-proxy`` as a process in the node namespace, fed by the fake API server (root), plus
usage errors (no root needed)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakeapi import objects as o
from tests.proxy.netns import REPO, FakeApiInNode, Topology, pod_v4, sh, stop_process

CIP = "10.96.0.10"


def cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "kdns.proxy.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args,message", [
    (["--endpoint", "http://x", "--kubeconfig", "y"], "not allowed with argument"),
    (["--cluster-cidr", "10.0.0.0/33"], "10.0.0.0/33"),
    (["--min-sync-period", "soon"], "invalid duration"),
    (["--healthz-bind-address", "nowhere"], "HOST:PORT"),
    (["--ip-families", "ipv5"], "unknown IP family"),
    (["--table", "bad name;"], "invalid table name"),
    (["--once", "--cleanup"], "not allowed with argument"),
    (["--kubeconfig", "/nonexistent/kubeconfig", "--once"], "file not found"),
    (["--node-name", "", "--once"], "--node-name must not be empty"),
])
def test_usage_errors_are_clear(args: list[str], message: str) -> None:
    res = cli(*args)
    assert res.returncode == 2, res
    assert message in res.stderr and "Traceback" not in res.stderr


def web_service(**spec: Any) -> dict[str, Any]:
    svc = o.service("default", "web", cluster_ip=CIP,
                    ports=[o.port("http", 80, target_port="http")])
    svc["spec"].update(spec)
    return svc


def web_slice(*pods: str) -> dict[str, Any]:
    return o.endpointslice("default", "web-x1", "web",
                           [o.endpoint(pod_v4(p), node="node-a") for p in pods],
                           ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])


@pytest.fixture
def api(topo: Topology) -> Iterator[FakeApiInNode]:
    fake = topo.start_fake_api()
    yield fake
    stop_process(topo.servers.pop())


@pytest.fixture
def table(topo: Topology) -> Iterator[str]:
    name = f"kpx-{os.getpid()}-{secrets.token_hex(3)}"
    yield name
    for family in ("ip", "ip6"):
        sh(*topo.exec_prefix(), "nft", "delete", "table", family, name, check=False)
    sh(*topo.exec_prefix(), "conntrack", "-F", check=False)


def common(api: FakeApiInNode, table: str) -> list[str]:
    return ["--endpoint", api.url, "--node-name", "node-a", "--table", table,
            "--cluster-cidr", "10.244.0.0/16,fd00:244::/32", "--service-cidr", "10.96.0.0/16",
            "--sync-timeout", "20s"]


def has_table(topo: Topology, table: str) -> bool:
    listed = sh(*topo.exec_prefix(), "nft", "list", "tables").stdout
    return f"table ip {table}" in listed


@pytest.mark.root
def test_dry_run_prints_a_valid_ruleset_and_changes_nothing(
    topo: Topology, api: FakeApiInNode, table: str
) -> None:
    api.call("put_many", objs=[web_service(), web_slice("a", "b")])
    res = cli(*common(api, table), "--dry-run", prefix=topo.exec_prefix())
    assert res.returncode == 0, res.stderr
    assert f"add element ip {table} service-ips {{ {CIP} . tcp . 80 : goto service-" in res.stdout
    assert "dnat to 10.244.1.11:8080" in res.stdout  # named targetPort resolved
    assert not res.stdout.startswith("[")  # logs go to stderr in this mode
    check = subprocess.run([*topo.exec_prefix(), "nft", "-c", "-f", "-"], input=res.stdout,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert not has_table(topo, table)
    res = cli(*common(api, table), "--dry-run", "--nodeport-addresses", "192.0.2.0/24",
              prefix=topo.exec_prefix())
    assert res.returncode == 0, res.stderr
    assert f"add element ip {table} nodeport-ips {{ 192.0.2.1 }}" in res.stdout
    assert "10.244.1.1 }" not in res.stdout


@pytest.mark.root
def test_once_then_cleanup(topo: Topology, api: FakeApiInNode, table: str) -> None:
    api.call("put_many", objs=[web_service(), web_slice("a", "b")])
    res = cli(*common(api, table), "--once", prefix=topo.exec_prefix())
    assert res.returncode == 0, res.stdout + res.stderr
    answers = topo.probe("c", "tcp", CIP, "80", "--count=30")
    assert {a.split()[0] for a in answers} == {"a", "b"}, answers
    res = cli("--cleanup", "--table", table, prefix=topo.exec_prefix())
    assert res.returncode == 0, res.stderr
    assert not has_table(topo, table)
    assert cli("--cleanup", "--table", table, prefix=topo.exec_prefix()).returncode == 0


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_daemon(
    topo: Topology, api: FakeApiInNode, table: str
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """kdns-proxy in the node; returns the process and its healthz/metrics ports."""
    proc = subprocess.Popen(
        [*topo.exec_prefix(), sys.executable, "-m", "kdns.proxy.cli", *common(api, table),
         "--min-sync-period", "100ms", "--healthz-bind-address", "127.0.0.1:0",
         "--metrics-bind-address", "127.0.0.1:0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    seen = []
    while len(ports) < 2 and len(seen) < 20:
        seen.append(proc.stdout.readline())
        m = re.search(r"(healthz|metrics) listening on 127.0.0.1:(\d+)", seen[-1])
        if m:
            ports[m.group(1)] = int(m.group(2))
    if len(ports) < 2:
        proc.kill()
        proc.wait()
        raise AssertionError(f"kdns-proxy did not start: {seen}")
    return proc, ports


def stop(proc: subprocess.Popen[str]) -> int | None:
    """SIGTERM, then the exit code; None (and a kill, so nothing leaks) if it hangs."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


@pytest.mark.root
def test_daemon_follows_api_changes(topo: Topology, api: FakeApiInNode, table: str) -> None:
    api.call("put_many", objs=[web_service(), web_slice("a", "b")])
    proc, ports = start_daemon(topo, api, table)
    try:
        healthz = f"http://127.0.0.1:{ports['healthz']}/healthz"
        wait_for(lambda: has_table(topo, table), 10, "the first sync")
        status, body = topo.http("node", healthz)
        assert status == 200 and '"nodeHealthy": true' in body, body
        assert {a.split()[0] for a in topo.probe("c", "tcp", CIP, "80", "--count=30")} == {
            "a", "b"}

        start = time.monotonic()
        api.call("put", obj=web_slice("b"))
        wait_for(lambda: topo.probe("c", "tcp", CIP, "80", "--count=10")
                 == [f"b {pod_v4('c')}"] * 10, 5, "endpoint a to leave")
        follow = time.monotonic() - start
        assert follow < 5, f"change took {follow:.2f}s to reach the datapath"

        api.call("delete", kind="EndpointSlice", namespace="default", name="web-x1")
        wait_for(lambda: topo.probe("c", "tcp", CIP, "80", "--timeout=2")[0].startswith(
            "ERR ECONNREFUSED"), 5, "no-endpoint reject")

        status, metrics = topo.http("node", f"http://127.0.0.1:{ports['metrics']}/metrics")
        assert status == 200
        count = re.search(r"^kubeproxy_sync_proxy_rules_duration_seconds_count (\S+)$",
                          metrics, re.M)
        assert count and float(count.group(1)) >= 3, metrics[:2000]
        rules = re.search(r'^kdns_proxy_rules\{family="ip"\} (\S+)$', metrics, re.M)
        assert rules and float(rules.group(1)) > 10
        assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1.0" in metrics
    finally:
        rc = stop(proc)
    assert rc == 0
    assert has_table(topo, table)  # rules outlive the process (restarts keep traffic flowing)


@pytest.mark.root
@pytest.mark.parametrize("lines_before_term", [1, 2])
def test_sigterm_during_start_up_exits_promptly(
    topo: Topology, api: FakeApiInNode, table: str, lines_before_term: int
) -> None:
    # Regression: a cancellation landing in aiohttp's server start-up used to be swallowed,
    # leaving the daemon running after SIGTERM.
    api.call("put_many", objs=[web_service(), web_slice("a")])
    proc = subprocess.Popen(
        [*topo.exec_prefix(), sys.executable, "-m", "kdns.proxy.cli", *common(api, table),
         "--healthz-bind-address", "127.0.0.1:0", "--metrics-bind-address", "127.0.0.1:0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    for _ in range(lines_before_term):
        proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(8) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.root
def test_busy_healthz_port_is_a_clear_error(
    topo: Topology, api: FakeApiInNode, table: str
) -> None:
    res = cli(*common(api, table), "--healthz-bind-address", f"0.0.0.0:{api.port}",
              prefix=topo.exec_prefix())
    assert res.returncode == 1
    assert f"cannot listen on 0.0.0.0:{api.port}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout


@pytest.mark.root
def test_health_check_node_port(topo: Topology, api: FakeApiInNode, table: str) -> None:
    svc = web_service(type="LoadBalancer", externalTrafficPolicy="Local",
                      healthCheckNodePort=32123)
    svc["spec"]["ports"][0]["nodePort"] = 30123
    api.call("put_many", objs=[svc, web_slice("a")])
    proc, _ = start_daemon(topo, api, table)
    url = "http://192.0.2.1:32123/healthz"  # what a cloud load balancer probes
    try:
        wait_for(lambda: topo.http("ext", url)[0] == 200, 10, "a healthy health check")
        body = json.loads(topo.http("ext", url)[1])
        assert body == {"service": {"namespace": "default", "name": "web"},
                        "localEndpoints": 1, "serviceProxyHealthy": True}
        other = o.endpointslice("default", "web-x1", "web",
                                [o.endpoint(pod_v4("b"), node="node-b")],
                                ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])
        api.call("put", obj=other)
        wait_for(lambda: topo.http("ext", url)[0] == 503, 10, "503 without local endpoints")
        assert json.loads(topo.http("ext", url)[1])["localEndpoints"] == 0
        api.call("delete", kind="Service", namespace="default", name="web")
        wait_for(lambda: topo.http("ext", url)[0] == 0, 10, "the listener to close")
    finally:
        assert stop(proc) == 0


@pytest.mark.root
def test_kubeconfig_source(
    topo: Topology, api: FakeApiInNode, table: str, tmp_path: pathlib.Path
) -> None:
    api.call("put_many", objs=[web_service(), web_slice("a")])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: {api.url}\n"
        "users:\n- name: me\n  user:\n    token: not-checked\n"
        "contexts:\n- name: test\n  context:\n    cluster: fake\n    user: me\n"
    )
    args = [a for a in common(api, table) if a not in ("--endpoint", api.url)]
    res = cli(*args, "--kubeconfig", str(kubeconfig), "--dry-run", prefix=topo.exec_prefix())
    assert res.returncode == 0, res.stderr
    assert "dnat to 10.244.1.10:8080" in res.stdout
    res = cli(*args, "--kubeconfig", str(kubeconfig), "--context", "nope", "--dry-run",
              prefix=topo.exec_prefix())
    assert res.returncode == 2 and "nope" in res.stderr, res.stderr


@pytest.mark.root
def test_zone_hints_follow_the_nodes_zone(topo: Topology, api: FakeApiInNode, table: str) -> None:
    hinted = web_slice("a", "b")
    for e, zone in zip(hinted["endpoints"], ("zone-a", "zone-b"), strict=True):
        e["hints"] = {"forZones": [{"name": zone}]}
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-b"}}}
    api.call("put_many", objs=[web_service(), hinted, node])
    proc, _ = start_daemon(topo, api, table)
    try:
        wait_for(lambda: topo.probe("c", "tcp", CIP, "80", "--count=10")
                 == [f"b {pod_v4('c')}"] * 10, 10, "only the endpoint hinted for zone-b")
        node["metadata"]["labels"] = {"topology.kubernetes.io/zone": "zone-a"}  # type: ignore[index]
        api.call("put", obj=node)
        wait_for(lambda: topo.probe("c", "tcp", CIP, "80", "--count=10")
                 == [f"a {pod_v4('c')}"] * 10, 10, "the zone change to move traffic to a")
    finally:
        assert stop(proc) == 0
