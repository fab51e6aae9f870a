# ruff: noqa: E501  (a data table)
"""Options of the kubernetes plugin through the pure engine: each config with its cases."""

from __future__ import annotations

from typing import Any

import dns.rcode
import pytest

from kdns.plugins.kubernetes.lookup import Outcome, Resolver
from kdns.plugins.kubernetes.names import normalize_zone
from kdns.plugins.kubernetes.selector import parse_selector
from kdns.plugins.kubernetes.store import Store
from tests.fakeapi import objects as k8s
from tests.plugins.kubernetes.cluster import SOA, Case, check, cluster_objects
from tests.plugins.kubernetes.engine import as_message, config, load_store, resolve

PODS = [
    k8s.namespace("podns"),
    k8s.pod("podns", "web-0", "10.240.0.1"),
    k8s.pod("podns", "web-6", "fd00::4"),
    k8s.pod("podns", "done", "10.240.0.2", phase="Succeeded"),
    k8s.pod("podns", "going", "10.240.0.3", deleting=True),
    k8s.pod("otherns", "x", "10.240.0.5"),
]
P = "podns.pod.cluster.local."


def _c(qname: str, qtype: str, rcode: str = "NOERROR", answer: tuple[str, ...] = (),
       ns: tuple[str, ...] | None = None, extra: tuple[str, ...] = ()) -> Case:
    if ns is None:
        ns = (SOA,) if (rcode != "NOERROR" or not answer) else ()
    return Case(qname, qtype, rcode, answer, ns, extra)


def _soa(ttl: int) -> str:
    return f"cluster.local. {min(ttl, 300)} SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 {ttl}"


OPTION_CASES: list[tuple[str, dict[str, Any], list[Case]]] = [
    ("pods-insecure", {"pods": "insecure"}, [
        _c("10-240-0-1." + P, "A", answer=(f"10-240-0-1.{P} 5 A 10.240.0.1",)),
        _c("172-0-0-2." + P, "A", answer=(f"172-0-0-2.{P} 5 A 172.0.0.2",)),
        _c("172-0-0-2." + P, "AAAA"),
        _c("fd00--4." + P, "AAAA", answer=(f"fd00--4.{P} 5 AAAA fd00::4",)),
        _c("x.10-240-0-1." + P, "A", answer=(f"x.10-240-0-1.{P} 5 A 10.240.0.1",)),
        _c("10-240-0-1." + P, "SRV", answer=(f"10-240-0-1.{P} 5 SRV 0 100 0 10-240-0-1.{P}",),
           extra=(f"10-240-0-1.{P} 5 A 10.240.0.1",)),
        _c("010-240-0-1." + P, "A", "NXDOMAIN"),
        _c("blah." + P, "A", "NXDOMAIN"),
        _c("blah." + P, "HINFO", "NXDOMAIN"),
        _c("10-240-0-1.pod-nons.pod.cluster.local.", "A", "NXDOMAIN"),
        _c(P, "A"),
        _c("10-240-0-1." + P, "TXT"),
        _c("a.b.c.10-240-0-1." + P, "A", "NXDOMAIN"),
    ]),
    ("pods-verified", {"pods": "verified"}, [
        _c("10-240-0-1." + P, "A", answer=(f"10-240-0-1.{P} 5 A 10.240.0.1",)),
        _c("fd00--4." + P, "AAAA", answer=(f"fd00--4.{P} 5 AAAA fd00::4",)),
        _c("fd00-0-0-0-0-0-0-4." + P, "AAAA", "NXDOMAIN"),
        _c("10-240-0-2." + P, "A", "NXDOMAIN"),  # Succeeded: filtered like the field selector
        _c("10-240-0-3." + P, "A", "NXDOMAIN"),  # terminating pods are skipped
        _c("10-240-0-5." + P, "A", "NXDOMAIN"),  # pod in another namespace
        _c("172-0-0-2." + P, "A", "NXDOMAIN"),
        _c("10-240-0-5.otherns.pod.cluster.local.", "A",
           answer=("10-240-0-5.otherns.pod.cluster.local. 5 A 10.240.0.5",)),
        _c(P, "A"),
        _c("5.0.240.10.in-addr.arpa.", "PTR", "NXDOMAIN",
           ns=("in-addr.arpa. 5 SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. SERIAL 7200 1800 86400 5",)),
    ]),
    ("ttl", {"ttl": 30}, [
        _c("svc1.testns.svc.cluster.local.", "A", answer=("svc1.testns.svc.cluster.local. 30 A 10.0.0.1",)),
        _c("svc0.testns.svc.cluster.local.", "A", "NXDOMAIN", ns=(_soa(30),)),
        _c("dns-version.cluster.local.", "TXT", answer=('dns-version.cluster.local. 28800 TXT "1.1.0"',)),
    ]),
    ("ttl-3600", {"ttl": 3600}, [
        _c("svc1.testns.svc.cluster.local.", "AAAA", ns=(_soa(3600),)),
        _c("cluster.local.", "SOA", answer=(_soa(3600),), ns=()),
    ]),
    ("ttl-0", {"ttl": 0}, [
        _c("svc1.testns.svc.cluster.local.", "A", answer=("svc1.testns.svc.cluster.local. 0 A 10.0.0.1",)),
    ]),
    ("namespaces", {"namespaces": frozenset({"testns"})}, [
        _c("svc1.testns.svc.cluster.local.", "A", answer=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
        _c("kube-dns.kube-system.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("kube-system.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("10.0.96.10.in-addr.arpa.", "PTR", "NXDOMAIN",
           ns=("in-addr.arpa. 5 SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. SERIAL 7200 1800 86400 5",)),
        _c("1.0.0.172.in-addr.arpa.", "PTR",
           answer=("1.0.0.172.in-addr.arpa. 5 PTR ep1a.svc1.testns.svc.cluster.local.",)),
    ]),
    ("endpoint_pod_names", {"endpoint_pod_names": True}, [
        _c("web-0.podsvc.testns.svc.cluster.local.", "A",
           answer=("web-0.podsvc.testns.svc.cluster.local. 5 A 172.0.5.1",)),
        _c("172-0-5-1.podsvc.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("host.podsvc.testns.svc.cluster.local.", "A",
           answer=("host.podsvc.testns.svc.cluster.local. 5 A 172.0.5.2",)),
        _c("172-0-5-3.podsvc.testns.svc.cluster.local.", "A",
           answer=("172-0-5-3.podsvc.testns.svc.cluster.local. 5 A 172.0.5.3",)),
        _c("1.5.0.172.in-addr.arpa.", "PTR",
           answer=("1.5.0.172.in-addr.arpa. 5 PTR web-0.podsvc.testns.svc.cluster.local.",)),
    ]),
    ("no endpoint_pod_names", {}, [
        _c("web-0.podsvc.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("172-0-5-1.podsvc.testns.svc.cluster.local.", "A",
           answer=("172-0-5-1.podsvc.testns.svc.cluster.local. 5 A 172.0.5.1",)),
    ]),
    ("noendpoints", {"noendpoints": True}, [
        _c("svc1.testns.svc.cluster.local.", "A", answer=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
        _c("hdls1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("ep1a.svc1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("2.0.0.172.in-addr.arpa.", "PTR", "NXDOMAIN",
           ns=("in-addr.arpa. 5 SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. SERIAL 7200 1800 86400 5",)),
        _c("1.0.0.10.in-addr.arpa.", "PTR", answer=("1.0.0.10.in-addr.arpa. 5 PTR svc1.testns.svc.cluster.local.",)),
    ]),
    ("ignore empty_service", {"ignore_empty_service": True}, [
        _c("svc1.testns.svc.cluster.local.", "A", answer=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
        _c("svcempty.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("svcempty.testns.svc.cluster.local.", "TXT", "NXDOMAIN"),
        _c("noports.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("hdls1.testns.svc.cluster.local.", "AAAA",
           answer=("hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::1", "hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::2")),
        _c("external.testns.svc.cluster.local.", "CNAME",
           answer=("external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test.",)),
        _c("2.0.0.10.in-addr.arpa.", "PTR", answer=("2.0.0.10.in-addr.arpa. 5 PTR svcempty.testns.svc.cluster.local.",)),
    ]),
    ("zonal", {"zonal": True}, [
        _c("zone-a.pin._zone.zsvc.testns.svc.cluster.local.", "A",
           answer=("zone-a.pin._zone.zsvc.testns.svc.cluster.local. 5 A 172.0.7.1",)),
        _c("ZONE-A.pin._zone.zsvc.testns.svc.cluster.local.", "A",
           answer=("ZONE-A.pin._zone.zsvc.testns.svc.cluster.local. 5 A 172.0.7.1",)),
        _c("us.east.pin._zone.zsvc.testns.svc.cluster.local.", "A",
           answer=("us.east.pin._zone.zsvc.testns.svc.cluster.local. 5 A 172.0.7.3",)),
        _c("zone-c.pin._zone.zsvc.testns.svc.cluster.local.", "A"),
        _c("zone-c.pin._zone.zsvc.testns.svc.cluster.local.", "TXT"),
        _c("zone-c.prefer._zone.zsvc.testns.svc.cluster.local.", "A",
           answer=tuple(f"zone-c.prefer._zone.zsvc.testns.svc.cluster.local. 5 A 172.0.7.{i}" for i in (1, 2, 3))),
        _c("zone-b.prefer._zone.zsvc.testns.svc.cluster.local.", "SRV",
           answer=("zone-b.prefer._zone.zsvc.testns.svc.cluster.local. 5 SRV 0 100 80 172-0-7-2.zsvc.testns.svc.cluster.local.",),
           extra=("172-0-7-2.zsvc.testns.svc.cluster.local. 5 A 172.0.7.2",)),
        _c("zone-a.bogus._zone.zsvc.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("zone-a.pin._zone.svc1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("zone-a.pin._zone.external.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("zone-a.pin._zone.zsvc.testns.svc.cluster.local.", "MX"),
    ]),
    ("zonal off", {}, [
        _c("zone-a.pin._zone.zsvc.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    ]),
    ("namespace_labels", {"namespace_labels": parse_selector("team=a")}, [
        _c("svc1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
        _c("web.labelled.svc.cluster.local.", "A", answer=("web.labelled.svc.cluster.local. 5 A 10.0.9.1",)),
        _c("1.0.0.10.in-addr.arpa.", "PTR", answer=("1.0.0.10.in-addr.arpa. 5 PTR svc1.testns.svc.cluster.local.",)),
    ]),
]


def _objects(name: str, cfg_kw: dict[str, Any]) -> list[dict[str, Any]]:
    objs = cluster_objects() + PODS + [
        k8s.service("testns", "podsvc", cluster_ip="None"),
        k8s.endpointslice("testns", "podsvc-1", "podsvc", [
            k8s.endpoint("172.0.5.1", pod="web-0", ns="testns"),
            k8s.endpoint("172.0.5.2", pod="web-1", ns="testns", hostname="host"),
            k8s.endpoint("172.0.5.3"),
        ]),
        k8s.service("testns", "zsvc", cluster_ip="None"),
        k8s.endpointslice("testns", "zsvc-1", "zsvc", [
            k8s.endpoint("172.0.7.1", zone="zone-a"), k8s.endpoint("172.0.7.2", zone="zone-b"),
            k8s.endpoint("172.0.7.3", zone="us.east")]),
        k8s.namespace("labelled", {"team": "a"}),
        k8s.service("labelled", "web", cluster_ip="10.0.9.1"),
    ]
    sel = cfg_kw.get("namespace_labels")
    if sel is not None:  # the API server applies namespace_labels to the Namespace watch
        objs = [o for o in objs if o["kind"] != "Namespace" or sel.matches(o["metadata"]["labels"])]
    return objs


@pytest.mark.parametrize(
    "name,cfg_kw,case",
    [(n, kw, c) for n, kw, cases in OPTION_CASES for c in cases],
    ids=[f"{n}:{c.id}" for n, _, cases in OPTION_CASES for c in cases],
)
def test_option_table(name: str, cfg_kw: dict[str, Any], case: Case) -> None:
    cfg = config(**cfg_kw)
    resolver = Resolver(cfg, load_store(_objects(name, cfg_kw), cfg=cfg))
    check(as_message(resolve(resolver, case.qname, case.qtype), case.qname, case.qtype), case)


def test_fallthrough_only_for_name_errors_in_its_zones() -> None:
    cfg = config(fallthrough=("in-addr.arpa.", "ip6.arpa."))
    r = Resolver(cfg, load_store(cluster_objects(), cfg=cfg))
    assert resolve(r, "9.9.9.10.in-addr.arpa.", "PTR").outcome is Outcome.NEXT
    assert resolve(r, "svc0.testns.svc.cluster.local.", "A").rcode == dns.rcode.NXDOMAIN
    assert resolve(r, "in-addr.arpa.", "PTR").outcome is Outcome.REPLY  # NODATA stays
    everything = Resolver(config(fallthrough=(".",)), r.store)
    assert resolve(everything, "svc0.testns.svc.cluster.local.", "A").outcome is Outcome.NEXT
    assert resolve(everything, "svc1.testns.svc.cluster.local.", "AAAA").outcome is Outcome.REPLY


def test_unsynced_name_errors_are_servfail_positive_answers_served() -> None:
    store = Store()
    cfg = config()
    r = Resolver(cfg, store)
    res = resolve(r, "svc1.testns.svc.cluster.local.", "A")
    assert res.rcode == dns.rcode.SERVFAIL and res.authority and not res.cacheable
    load_store(cluster_objects(), store=store)
    assert resolve(r, "svc0.testns.svc.cluster.local.", "A").rcode == dns.rcode.NXDOMAIN


def test_cidr_zones_answer_only_inside_them() -> None:
    zones = tuple(["cluster.local.", *normalize_zone("172.0.0.0/24"), *normalize_zone("10.0.0.0/20")])
    assert zones[1] == "0.0.172.in-addr.arpa." and len(zones) == 18
    cfg = config(zones=zones)
    r = Resolver(cfg, load_store(cluster_objects(), cfg=cfg))
    res = resolve(r, "2.0.0.172.in-addr.arpa.", "PTR")
    assert [rr.to_text() for rr in res.answer] == [
        "2.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-2.hdls1.testns.svc.cluster.local."]
    miss = resolve(r, "99.0.0.172.in-addr.arpa.", "PTR")
    assert miss.rcode == dns.rcode.NXDOMAIN
    assert miss.authority[0].name.to_text() == "0.0.172.in-addr.arpa."
    assert resolve(r, "2.1.0.172.in-addr.arpa.", "PTR").outcome is Outcome.NEXT
    assert resolve(r, "1.0.0.10.in-addr.arpa.", "PTR").answer


def test_ptr_targets_use_the_primary_zone_and_other_zones_answer() -> None:
    cfg = config(zones=("example.org.", "cluster.local.", "in-addr.arpa."), primary_zone="example.org.")
    r = Resolver(cfg, load_store(cluster_objects(), cfg=cfg))
    assert resolve(r, "1.0.0.10.in-addr.arpa.", "PTR").answer[0][0].to_text() == \
        "svc1.testns.svc.example.org."
    assert resolve(r, "svc1.testns.svc.example.org.", "A").answer
    assert resolve(r, "svc1.testns.svc.cluster.local.", "A").answer


def test_clusterip_ptr_returns_only_the_first_service() -> None:
    objs = [*cluster_objects(), k8s.service("otherns", "shared", cluster_ip="10.0.0.1")]
    r = Resolver(config(), load_store(objs))
    assert len(resolve(r, "1.0.0.10.in-addr.arpa.", "PTR").answer[0]) == 1


def test_ns_and_ns_dns_use_local_addresses() -> None:
    cfg = config()
    store = load_store(cluster_objects(), cfg=cfg)
    r = Resolver(cfg, store, ["192.0.2.53", "fd00::53"])
    msg = as_message(resolve(r, "cluster.local.", "NS"), "cluster.local.", "NS")
    assert [rr.to_text() for rr in msg.answer] == ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    assert sorted(rr.to_text() for rr in msg.additional) == [
        "ns.dns.cluster.local. 5 IN A 192.0.2.53", "ns.dns.cluster.local. 5 IN AAAA fd00::53"]
    a = resolve(r, "ns.dns.cluster.local.", "A")
    assert [rr.to_text() for rr in a.answer] == ["ns.dns.cluster.local. 5 IN A 192.0.2.53"]
    # running as the endpoint of the DNS service: the NS target is the service name
    store.upsert_slice("kube-system/kube-dns-1", load_store(
        [k8s.endpointslice("kube-system", "kube-dns-1", "kube-dns",
                           [k8s.endpoint("192.0.2.53")])]).slices["kube-system/kube-dns-1"])
    msg = as_message(resolve(r, "cluster.local.", "NS"), "cluster.local.", "NS")
    assert [rr.to_text() for rr in msg.answer] == [
        "cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local."]
    assert [rr.to_text() for rr in msg.additional] == [
        "kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]
    none = Resolver(cfg, store, [])
    assert not resolve(none, "cluster.local.", "NS").answer


def test_cname_chain_is_bounded_and_loops_dropped() -> None:
    objs = [k8s.namespace("ns")] + [
        k8s.service("ns", f"c{i}", type="ExternalName", external_name=f"c{i + 1}.ns.svc.cluster.local")
        for i in range(15)] + [k8s.service("ns", "c15", cluster_ip="10.9.9.9"),
                               k8s.service("ns", "loop", type="ExternalName",
                                           external_name="loop.ns.svc.cluster.local")]
    r = Resolver(config(), load_store(objs))
    assert len(resolve(r, "c10.ns.svc.cluster.local.", "A").answer) == 6
    assert resolve(r, "c0.ns.svc.cluster.local.", "A").answer == ()
    loop = resolve(r, "loop.ns.svc.cluster.local.", "A")
    assert loop.rcode == dns.rcode.NOERROR and not loop.answer


def test_external_out_of_zone_target_is_chased() -> None:
    r = Resolver(config(), load_store(cluster_objects()))
    res = resolve(r, "external.testns.svc.cluster.local.", "A")
    assert res.chase is not None and res.chase.to_text() == "ext.interwebs.test."
    assert not res.cacheable


def test_root_zone_from_a_dot_server_block() -> None:
    cfg = config(zones=(".",), primary_zone=".")
    r = Resolver(cfg, load_store(cluster_objects(), cfg=cfg))
    assert [rr.to_text() for rr in resolve(r, "svc1.testns.svc.", "A").answer] == [
        "svc1.testns.svc. 5 IN A 10.0.0.1"]
    assert resolve(r, "svc0.testns.svc.", "A").rcode == dns.rcode.NXDOMAIN
    assert resolve(r, "example.org.", "A").rcode == dns.rcode.NXDOMAIN
