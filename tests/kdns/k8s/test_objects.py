"""Reducers: good objects keep what consumers need; malformed ones raise MalformedObject only."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.k8s.errors import MalformedObject
from kdns.k8s.objects import (
    Endpoint,
    EndpointPort,
    ServicePort,
    reduce_endpointslice,
    reduce_namespace,
    reduce_pod,
    reduce_service,
)
from tests.fakeapi import objects as k8s

FULL_SERVICE: dict[str, Any] = {
    "kind": "Service", "apiVersion": "v1",
    "metadata": {"namespace": "prod", "name": "web", "labels": {"b": "2", "a": "1"},
                 "resourceVersion": "77"},
    "spec": {
        "type": "LoadBalancer", "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"],
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web",
             "nodePort": 30080, "appProtocol": "http"},
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353},
        ],
        "selector": {"app": "web"}, "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
        "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
        "healthCheckNodePort": 32000, "externalIPs": ["192.0.2.1"],
        "loadBalancerSourceRanges": ["10.0.0.0/8"], "publishNotReadyAddresses": True,
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}, {"hostname": "lb.x"}]}},
}


def test_service_full() -> None:
    s = reduce_service(FULL_SERVICE)
    assert (s.namespace, s.name, s.type, s.key) == ("prod", "web", "LoadBalancer", "prod/web")
    assert s.cluster_ips == ("10.96.0.10", "fd00::10") and not s.is_headless
    assert s.ports == (ServicePort("http", "TCP", 80, "web", 30080, "http"),
                       ServicePort("dns", "UDP", 53, 5353, None, None))
    assert (s.session_affinity, s.session_affinity_timeout) == ("ClientIP", 600)
    assert (s.external_traffic_policy, s.internal_traffic_policy) == ("Local", "Cluster")
    assert s.labels == (("a", "1"), ("b", "2")) and s.label("b") == "2" and s.label("x") is None
    assert s.has_selector and s.publish_not_ready_addresses
    assert s.ip_families == ("IPv4", "IPv6") and s.external_ips == ("192.0.2.1",)
    assert s.load_balancer_ips == ("198.51.100.1",)
    assert s.load_balancer_source_ranges == ("10.0.0.0/8",)
    assert s.health_check_node_port == 32000
    hash(s)  # records are hashable


def test_service_kinds() -> None:
    headless = reduce_service(k8s.service("ns", "h", cluster_ip="None"))
    assert headless.is_headless and headless.cluster_ips == ("None",)
    ext = reduce_service(k8s.service("ns", "e", type="ExternalName", external_name="x.org"))
    assert ext.is_external_name and ext.external_name == "x.org" and ext.cluster_ips == ("",)
    # only the legacy single field: CoreDNS falls back to [spec.clusterIP]
    legacy = reduce_service({"metadata": {"namespace": "n", "name": "l"},
                             "spec": {"clusterIP": "10.0.0.1"}})
    assert legacy.cluster_ips == ("10.0.0.1",) and legacy.ports == ()
    assert legacy.type == "" and legacy.session_affinity == "None" and not legacy.has_selector
    noproto = reduce_service({"metadata": {"namespace": "n", "name": "p"},
                              "spec": {"ports": [{"port": 80}]}})
    assert noproto.ports[0].protocol == "" and noproto.ports[0].name == ""


def test_endpointslice() -> None:
    raw = k8s.endpointslice("ns", "web-abc", "web", [
        k8s.endpoint("10.1.0.1", hostname="h1", node="n1", zone="z1", pod="web-0", ns="ns"),
        k8s.endpoint("10.1.0.2", ready=False),
        k8s.endpoint("10.1.0.3", ready=None),
    ], ports=[{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "h2c"}, {}])
    raw["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": "2026-01-02T03:04:05Z"}
    raw["endpoints"][0]["conditions"]["terminating"] = True
    raw["endpoints"][0]["hints"] = {"forZones": [{"name": "z1"}]}
    s = reduce_endpointslice(raw)
    assert (s.key, s.service_name, s.service_key, s.address_type) == (
        "ns/web-abc", "web", "ns/web", "IPv4")
    assert s.ports == (EndpointPort("http", "TCP", 8080, "h2c"), EndpointPort("", "", None, None))
    assert s.endpoints[0] == Endpoint(("10.1.0.1",), "h1", "n1", "z1", True, True, True, "Pod",
                                      "web-0", "ns", ("z1",))
    assert (s.endpoints[1].ready, s.endpoints[1].serving) == (False, False)
    # nil ready counts as ready (API semantics); nil serving follows ready
    assert (s.endpoints[2].ready, s.endpoints[2].serving, s.endpoints[2].terminating) == (
        True, True, False)
    assert s.last_change_trigger_time == 1767323045.0
    orphan = reduce_endpointslice(k8s.endpointslice("ns", "o", None, []))
    assert orphan.service_name is None and orphan.service_key is None and orphan.endpoints == ()


def test_records_pickle_round_trip() -> None:
    """Workers receive records pickled by the parent (kdns/k8s/relay.py)."""
    import pickle
    slice_raw = k8s.endpointslice("ns", "s", "svc", [k8s.endpoint("10.0.0.1", pod="p")])
    for record in (reduce_service(FULL_SERVICE), reduce_endpointslice(slice_raw),
                   reduce_namespace(k8s.namespace("n")), reduce_pod(k8s.pod("n", "p", "1.2.3.4"))):
        assert pickle.loads(pickle.dumps(record, pickle.HIGHEST_PROTOCOL)) == record


def test_namespace_and_pod() -> None:
    n = reduce_namespace(k8s.namespace("kube-system", {"team": "x"}))
    assert n.key == "kube-system" and n.label("team") == "x"
    p = reduce_pod(k8s.pod("ns", "p", None, ips=["10.1.0.5", "fd00::5"], host_network=True,
                           deleting=True, phase="Pending"))
    assert (p.key, p.pod_ip, p.pod_ips) == ("ns/p", "10.1.0.5", ("10.1.0.5", "fd00::5"))
    assert p.deleting and p.host_network and p.phase == "Pending" and p.node_name == "node-1"
    bare = reduce_pod({"metadata": {"namespace": "ns", "name": "b"}})
    assert bare.pod_ip is None and bare.pod_ips == () and not bare.deleting


def _mutate(obj: dict[str, Any], path: str | tuple[str | int, ...],
            value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    cur: Any = out
    keys = path.split(".") if isinstance(path, str) else path
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return out


@pytest.mark.parametrize("path,value,where", [
    ("metadata", "x", "metadata"),
    ("metadata.name", 5, "metadata.name"),
    ("metadata.name", "", "metadata.name"),
    ("metadata.namespace", None, "metadata.namespace"),
    ("metadata.labels", ["a"], "metadata.labels"),
    ("metadata.labels.a", 1, "metadata.labels.a"),
    ("spec", [], "spec"),
    ("spec.clusterIPs", "10.0.0.1", "spec.clusterIPs"),
    ("spec.clusterIPs.1", None, "spec.clusterIPs[1]"),
    ("spec.ports.1.port", "53", "spec.ports[1].port"),
    ("spec.ports.1.port", 70000, "spec.ports[1].port"),
    ("spec.ports.1.port", True, "spec.ports[1].port"),
    ("spec.ports.1.port", None, "spec.ports[1].port"),
    ("spec.ports.0.targetPort", 1.5, "spec.ports[0].targetPort"),
    ("spec.ports.0", "http", "spec.ports[0]"),
    ("spec.sessionAffinityConfig.clientIP", 3, "clientIP"),
    ("spec.publishNotReadyAddresses", "yes", "publishNotReadyAddresses"),
    ("status.loadBalancer.ingress", {}, "ingress"),
])
def test_malformed_service_names_the_field(path: str, value: Any, where: str) -> None:
    with pytest.raises(MalformedObject, match=f".*{where.replace('[', '.').replace(']', '.')}"):
        reduce_service(_mutate(FULL_SERVICE, path, value))


@pytest.mark.parametrize("path,value", [
    ("endpoints", {}), ("endpoints.0", "10.0.0.1"), ("endpoints.0.addresses", "10.0.0.1"),
    ("endpoints.0.conditions.ready", "true"), ("endpoints.0.hostname", 3),
    ("ports.0.port", "x"), ("addressType", 4), ("endpoints.0.targetRef", "pod"),
])
def test_malformed_endpointslice(path: str, value: Any) -> None:
    raw = k8s.endpointslice("ns", "s", "svc", [k8s.endpoint("10.0.0.1", pod="p")])
    with pytest.raises(MalformedObject):
        reduce_endpointslice(_mutate(raw, path, value))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12)

_TEMPLATES = [FULL_SERVICE,
              k8s.endpointslice("ns", "s", "svc", [k8s.endpoint("10.0.0.1", pod="p")]),
              k8s.namespace("ns"), k8s.pod("ns", "p", "10.0.0.1")]
_REDUCERS = [reduce_service, reduce_endpointslice, reduce_namespace, reduce_pod]


def _paths(obj: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else []
    for k, v in items:
        p = (*prefix, k)
        out.append(p)
        out.extend(_paths(v, p))
    return out


@settings(max_examples=200, deadline=None, database=None)
@given(which=st.integers(0, 3), pick=st.integers(0, 10_000), value=json_values)
def test_any_corruption_is_a_record_or_malformed_object(which: int, pick: int,
                                                        value: Any) -> None:
    template = _TEMPLATES[which]
    paths = _paths(template)
    corrupted = _mutate(template, paths[pick % len(paths)], value)
    try:
        record = _REDUCERS[which](corrupted)
    except MalformedObject:
        return
    hash(record)  # whatever is accepted is a complete, hashable record


@settings(max_examples=100, deadline=None, database=None)
@given(raw=st.dictionaries(st.sampled_from(["metadata", "spec", "status", "endpoints", "ports",
                                            "addressType", "kind"]), json_values, max_size=5))
def test_arbitrary_documents_never_escape_as_other_errors(raw: dict[str, Any]) -> None:
    json.dumps(raw)  # the strategy only builds JSON-able documents
    for reduce in _REDUCERS:
        try:
            reduce(raw)
        except MalformedObject:
            pass
