"""The kubernetes plugin inside a fuller chain, through real processes: the kubeadm options,
fallthrough to the next plugin, ExternalName targets chased through the server (forward to an
upstream), pods verified with the Pod watch, and the programming-latency metric."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dns.rcode
import dns.rdatatype
import pytest

from tests.fakeapi import objects as k8s
from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, free_port, rrtext, run_kdns
from tests.plugins.kubernetes.cluster import cluster_objects
from tests.plugins.kubernetes.test_kubernetes import wait_answer

UPSTREAM = """.:{port} {
    hosts {
        192.0.2.10 ext.interwebs.test
        192.0.2.99 99.2.0.192.in-addr.arpa
    }
}
"""
COREFILE = """.:{port} {
    prometheus 127.0.0.1:%d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %s
        pods verified
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . 127.0.0.1:%d
}
"""


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        server.put_many([*cluster_objects(), k8s.namespace("podns"),
                         k8s.pod("podns", "web-0", "10.240.0.1"),
                         k8s.pod("podns", "old", "10.240.0.2", phase="Failed")])
        yield server


@pytest.fixture(scope="module")
def chain(api: FakeApiServer) -> Iterator[tuple[KdnsProcess, int]]:
    with run_kdns(UPSTREAM) as up:
        mport = free_port()
        with run_kdns(COREFILE % (mport, api.url, up.port)) as k:
            wait_answer(k, "svc1.testns.svc.cluster.local.")
            yield k, mport


def test_external_name_chased_through_forward(chain: tuple[KdnsProcess, int]) -> None:
    k, _ = chain
    for tcp in (False, True):
        r = k.query("external.testns.svc.cluster.local.", "A", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR
        assert rrtext(r) == ["ext.interwebs.test. 3600 A 192.0.2.10",
                             "external.testns.svc.cluster.local. 30 CNAME ext.interwebs.test."]
        assert r.answer[0].rdtype == dns.rdatatype.CNAME  # the CNAME comes first
    r = k.query("external.testns.svc.cluster.local.", "AAAA")
    assert rrtext(r) == ["external.testns.svc.cluster.local. 30 CNAME ext.interwebs.test."]


def test_fallthrough_hands_reverse_misses_to_the_next_plugin(
        chain: tuple[KdnsProcess, int]) -> None:
    k, _ = chain
    r = k.query("99.2.0.192.in-addr.arpa.", "PTR")
    assert r.rcode() == dns.rcode.NOERROR and r.answer  # answered by the upstream's hosts
    r = k.query("1.0.0.10.in-addr.arpa.", "PTR")
    assert rrtext(r) == ["1.0.0.10.in-addr.arpa. 30 PTR svc1.testns.svc.cluster.local."]
    r = k.query("svc0.testns.svc.cluster.local.", "A")  # not covered by fallthrough
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert rrtext(r, "authority")[0].startswith("cluster.local. 30 SOA")


def test_pods_verified_uses_the_pod_watch(api: FakeApiServer,
                                          chain: tuple[KdnsProcess, int]) -> None:
    k, _ = chain
    assert rrtext(k.query("10-240-0-1.podns.pod.cluster.local.")) == [
        "10-240-0-1.podns.pod.cluster.local. 30 A 10.240.0.1"]
    assert k.query("10-240-0-2.podns.pod.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    api.put(k8s.pod("podns", "web-1", "10.240.0.3"))
    wait_answer(k, "10-240-0-3.podns.pod.cluster.local.", timeout=5)
    api.delete("Pod", "podns", "web-1")
    wait_answer(k, "10-240-0-3.podns.pod.cluster.local.", rcode=dns.rcode.NXDOMAIN, timeout=5)


def test_programming_latency_metric(api: FakeApiServer, chain: tuple[KdnsProcess, int]) -> None:
    k, mport = chain
    trigger = (datetime.now(UTC) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sl = k8s.endpointslice("testns", "hdls1-3", "hdls1", [k8s.endpoint("172.0.0.77")])
    sl["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    api.put(sl)
    wait_answer(k, "172-0-0-77.hdls1.testns.svc.cluster.local.", timeout=5)
    deadline = time.monotonic() + 5
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=2) as r:
            text = r.read().decode()
        line = ('coredns_kubernetes_dns_programming_duration_seconds_count'
                '{service_kind="headless_with_selector"}')
        if line in text:
            count = float(text.split(line)[1].split()[0])
            assert count >= 1
            assert 'le="4.096",service_kind="headless_with_selector"' in text or \
                'service_kind="headless_with_selector",le="4.096"' in text
            return
        assert time.monotonic() < deadline, text[:2000]
        time.sleep(0.1)


def test_fallthrough_answer_is_replaced_once_the_name_exists_here(
        api: FakeApiServer, chain: tuple[KdnsProcess, int]) -> None:
    k, _ = chain
    for _ in range(3):  # repeated: a replayed (fast path) answer must not outlive the change
        assert rrtext(k.query("99.2.0.192.in-addr.arpa.", "PTR")) == [
            "99.2.0.192.in-addr.arpa. 3600 PTR 99.2.0.192.in-addr.arpa."]
    api.put(k8s.service("testns", "late", cluster_ip="192.0.2.99"))
    deadline = time.monotonic() + 5
    while rrtext(k.query("99.2.0.192.in-addr.arpa.", "PTR")) != [
            "99.2.0.192.in-addr.arpa. 30 PTR late.testns.svc.cluster.local."]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
