"""Readiness and API failures through the real kdns: SERVFAIL and /ready 503 before the first
sync, last known state served while the API server is away, changes applied from watch events
(and after a relist) within seconds."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import dns.rcode
import pytest

from tests.fakeapi import objects as k8s
from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.plugins.kubernetes.test_kubernetes import wait_answer

COREFILE = """.:{port} {
    ready 127.0.0.1:%d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %s
        startup_timeout 1s
    }
}
"""
SVC1 = "svc1.testns.svc.cluster.local."


def ready_status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def wait_ready(port: int, status: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = ready_status(port)
        except OSError:
            got = None
        if got == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"/ready is {got}, wanted {status}")


def base_objects() -> list[dict[str, object]]:
    return [k8s.namespace("testns"), k8s.service("testns", "svc1", cluster_ip="10.0.0.1")]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        server.put_many(base_objects())
        yield server


@pytest.fixture
def synced(api: FakeApiServer) -> Iterator[tuple[KdnsProcess, int]]:
    rport = free_port()
    with run_kdns(COREFILE % (rport, api.url)) as k:
        wait_answer(k, SVC1)
        wait_ready(rport, 200)
        yield k, rport


def test_api_down_at_start_servfail_and_not_ready_until_it_comes_up(api: FakeApiServer) -> None:
    api.down()
    rport = free_port()
    with run_kdns(COREFILE % (rport, api.url)) as k:
        for tcp in (False, True):
            r = k.query(SVC1, "A", tcp=tcp)
            assert r.rcode() == dns.rcode.SERVFAIL
            assert r.flags & dns.flags.AA and r.authority  # the plugin's SERVFAIL carries SOA
        r = k.query("nope.testns.svc.cluster.local.", "A")
        assert r.rcode() == dns.rcode.SERVFAIL
        wait_ready(rport, 503)
        k.wait_for_line("starting server with unsynced Kubernetes API")
        api.up()
        wait_answer(k, SVC1, timeout=15)
        wait_ready(rport, 200)
        r = k.query("nope.testns.svc.cluster.local.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN


def test_changes_are_served_right_after_their_watch_event(
        api: FakeApiServer, synced: tuple[KdnsProcess, int]) -> None:
    k, _ = synced
    t0 = time.monotonic()
    api.put(k8s.service("testns", "new", cluster_ip="10.0.0.7"))
    wait_answer(k, "new.testns.svc.cluster.local.", timeout=5)
    assert time.monotonic() - t0 < 1.0
    api.put(k8s.service("testns", "new", cluster_ip="10.0.0.8"))
    deadline = time.monotonic() + 5
    while k.query("new.testns.svc.cluster.local.").answer[0][0].to_text() != "10.0.0.8":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    api.delete("Service", "testns", "new")
    wait_answer(k, "new.testns.svc.cluster.local.", rcode=dns.rcode.NXDOMAIN, timeout=5)
    api.put(k8s.service("testns", "hl", cluster_ip="None"))
    api.put(k8s.endpointslice("testns", "hl-1", "hl", [k8s.endpoint("172.9.0.1")]))
    wait_answer(k, "hl.testns.svc.cluster.local.", timeout=5)
    wait_answer(k, "1.0.9.172.in-addr.arpa.", "PTR", timeout=5)


def test_api_lost_mid_run_keeps_serving_then_catches_up(
        api: FakeApiServer, synced: tuple[KdnsProcess, int]) -> None:
    k, rport = synced
    api.down()
    time.sleep(1.0)
    for tcp in (False, True):
        r = k.query(SVC1, "A", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR and r.answer
    assert k.query("nope.testns.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert ready_status(rport) == 200
    # changes made while kdns cannot see the API server
    api.put(k8s.service("testns", "while-away", cluster_ip="10.0.0.9"))
    api.delete("Service", "testns", "svc1")
    time.sleep(0.5)
    assert k.query(SVC1).answer  # still the last known state
    api.up()
    wait_answer(k, "while-away.testns.svc.cluster.local.", timeout=15)
    wait_answer(k, SVC1, rcode=dns.rcode.NXDOMAIN, timeout=15)


def test_relist_after_410_keeps_names_and_applies_changes(
        api: FakeApiServer, synced: tuple[KdnsProcess, int]) -> None:
    k, _ = synced
    api.put(k8s.service("testns", "before", cluster_ip="10.0.0.11"))
    wait_answer(k, "before.testns.svc.cluster.local.", timeout=5)
    api.down()
    api.put(k8s.service("testns", "during", cluster_ip="10.0.0.12"))
    api.compact()  # the watch's resourceVersion is now too old: 410, relist
    api.up()
    wait_answer(k, "during.testns.svc.cluster.local.", timeout=15)
    assert k.query(SVC1).answer and k.query("before.testns.svc.cluster.local.").answer
    api.expire_watches()  # ERROR 410 event form
    api.put(k8s.service("testns", "after", cluster_ip="10.0.0.13"))
    wait_answer(k, "after.testns.svc.cluster.local.", timeout=15)
    assert k.query(SVC1).answer
