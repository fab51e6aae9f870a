"""-workers N: several DNS processes on one port, supervised, with merged metrics."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import dns.rcode
import pytest

from kdns.server.workers import merge_expositions
from tests.kdnsproc import free_port, run_kdns


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def wait_until(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


@pytest.fixture(scope="module")
def kdns():  # type: ignore[no-untyped-def]
    ready, metrics = free_port(), free_port()
    corefile = (".:{port} {\n  ready 127.0.0.1:" + str(ready) + "\n  prometheus 127.0.0.1:"
                + str(metrics) + "\n  hosts {\n    10.1.2.3 web.example.internal\n  }\n}\n")
    with run_kdns(corefile, extra_args=("-workers", "2")) as k:
        k.ready_port, k.metrics_port = ready, metrics  # type: ignore[attr-defined]
        wait_until(lambda: http_get(ready, "/ready")[0] == 200)
        yield k


def test_two_workers_answer_and_parent_does_not_bind(kdns) -> None:  # type: ignore[no-untyped-def]
    assert len(children(kdns.proc.pid)) == 2
    for _ in range(40):  # fresh source ports spread over both workers
        r = kdns.query("web.example.internal", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].address == "10.1.2.3"
    assert kdns.query("web.example.internal", "A", tcp=True).rcode() == 0


def test_metrics_are_summed_over_workers(kdns) -> None:  # type: ignore[no-untyped-def]
    def total() -> float:
        _, text = http_get(kdns.metrics_port, "/metrics")
        n = 0.0
        for line in text.splitlines():
            if line.startswith("coredns_dns_requests_total{") and 'zone="."' in line:
                n += float(line.rsplit(" ", 1)[1])
        return n

    before = total()
    for _ in range(30):
        kdns.query("web.example.internal", "A")
    wait_until(lambda: total() >= before + 30, timeout=10)
    _, text = http_get(kdns.metrics_port, "/metrics")
    assert text.count("# TYPE coredns_dns_requests_total counter") == 1
    assert 'coredns_build_info{' in text


def test_dead_worker_is_restarted(kdns) -> None:  # type: ignore[no-untyped-def]
    victim = children(kdns.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in children(kdns.proc.pid)
               and len(children(kdns.proc.pid)) == 2)
    wait_until(lambda: http_get(kdns.ready_port, "/ready")[0] == 200)
    for _ in range(20):
        assert kdns.query("web.example.internal", "A").rcode() == 0


def test_sigterm_stops_every_process() -> None:
    with run_kdns(".:{port} {\n whoami\n}\n", extra_args=("-workers", "2")) as k:
        wait_until(lambda: len(children(k.proc.pid)) == 2)
        kids = children(k.proc.pid)
        assert k.stop() == 0
    for pid in kids:
        assert not os.path.exists(f"/proc/{pid}/stat") or "Z" in open(
            f"/proc/{pid}/stat").read().split()[2]


def test_merge_sums_counters_and_keeps_build_info() -> None:
    a = ('# HELP x_total h\n# TYPE x_total counter\nx_total{zone="."} 2.0\n'
         "# HELP b g\n# TYPE b gauge\nb{v=\"1\"} 1.0\n")
    merged = merge_expositions([a, a, a])
    assert 'x_total{zone="."} 6.0' in merged
    assert 'b{v="1"} 1.0' in merged


def test_one_set_of_watches_for_all_workers() -> None:
    from tests.fakeapi import objects as k8s
    from tests.fakeapi.thread import FakeApiServer

    with FakeApiServer(bookmark_interval=0.5) as api:
        api.put(k8s.namespace("ns1"))
        api.put(k8s.service("ns1", "web", cluster_ip="10.96.0.20"))
        corefile = ("cluster.local:{port} {\n  kubernetes {\n    endpoint " + api.url
                    + "\n  }\n}\n")
        with run_kdns(corefile, extra_args=("-workers", "3")) as k:
            wait_until(lambda: k.query("web.ns1.svc.cluster.local").rcode() == 0)
            for _ in range(30):  # every worker answers from the relayed state
                r = k.query("web.ns1.svc.cluster.local")
                assert r.rcode() == 0 and r.answer[0][0].address == "10.96.0.20"
            api.put(k8s.service("ns1", "api", cluster_ip="10.96.0.21"))
            wait_until(lambda: all(k.query("api.ns1.svc.cluster.local").rcode() == 0
                                   for _ in range(20)), timeout=10)
            lists = [r for r in api.requests() if r.method == "GET" and not r.watch]
            watches = [r for r in api.requests() if r.watch]
            # services, endpointslices, namespaces: one list and one watch each, not x3
            assert len({r.path for r in lists}) == 3
            assert len(lists) == 3, [r.path for r in lists]
            assert len(watches) == 3, [r.path for r in watches]
