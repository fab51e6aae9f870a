"""Reducers from API JSON and the Service x EndpointSlice join."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.proxy.model import Endpoint
from kdns.proxy.objects import BadObject, join, reduce_endpoint_slice, reduce_service
from tests.fakeapi import objects as o


def svc(**spec: Any) -> dict[str, Any]:
    obj = o.service("default", "web", cluster_ips=["10.96.0.10", "fd00:96::10"],
                    ports=[o.port("http", 80, target_port="web"),
                           o.port("dns", 53, "UDP", 5353)])
    obj["spec"].update(spec)
    return obj


def test_service_fields() -> None:
    obj = svc(type="NodePort", externalTrafficPolicy="Local", internalTrafficPolicy="Local",
              sessionAffinity="ClientIP", externalIPs=["192.0.2.9"],
              loadBalancerSourceRanges=[" 203.0.113.0/24 "])
    obj["spec"]["ports"][0]["nodePort"] = 30080
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}, {"hostname": "x"}]}}
    s = reduce_service(obj)
    assert s is not None
    assert s.cluster_ips == ("10.96.0.10", "fd00:96::10")
    assert [(p.name, p.protocol, p.port, p.node_port) for p in s.ports] == [
        ("http", "tcp", 80, 30080), ("dns", "udp", 53, 0)]
    assert s.affinity_timeout == 10800  # the default when no sessionAffinityConfig
    assert s.external_local and s.internal_local
    assert s.external_ips == ("192.0.2.9", "198.51.100.1")
    assert s.lb_ips == ("198.51.100.1",)
    assert s.source_ranges == ("203.0.113.0/24",)


def test_ignored_services() -> None:
    assert reduce_service(o.service("default", "h", cluster_ip="None")) is None
    assert reduce_service(o.service("default", "x", type="ExternalName",
                                    external_name="example.com")) is None


@pytest.mark.parametrize("spec,message", [
    ({"clusterIPs": ["10.96.0.300"]}, "not an IP address"),
    ({"ports": [{"port": 70000}]}, "out of range"),
    ({"loadBalancerSourceRanges": ["10.0.0.0/40"]}, "not a CIDR"),
    ({"ports": [{"port": "80"}]}, "not a port number"),
    ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "unsupported protocol"),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": -1}}}, "timeoutSeconds"),
])
def test_bad_services_raise_clear_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(BadObject, match=message):
        reduce_service(svc(**spec))


def test_slice_conditions_default_like_kube_proxy() -> None:
    sl = o.endpointslice("default", "web-1", "web", [
        o.endpoint("10.244.1.10", node="n1"),
        o.endpoint("10.244.1.11", ready=None),  # no conditions: ready
        {"addresses": ["10.244.1.12"], "conditions": {"ready": False, "serving": True,
                                                      "terminating": True}},
    ], ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])
    r = reduce_endpoint_slice(sl)
    assert r is not None and r.service_key == "default/web"
    assert r.endpoints == (
        Endpoint("10.244.1.10", 0, "n1", True, True, False),
        Endpoint("10.244.1.11", 0, None, True, True, False),
        Endpoint("10.244.1.12", 0, None, False, True, True),
    )
    hinted = o.endpointslice("default", "web-2", "web", [o.endpoint("10.244.1.13")])
    hinted["endpoints"][0]["hints"] = {"forZones": [{"name": "zone-a"}, {"name": ""}]}
    r2 = reduce_endpoint_slice(hinted)
    assert r2 is not None and r2.endpoints[0].zone_hints == ("zone-a",)
    assert reduce_endpoint_slice(o.endpointslice("default", "x", None, [])) is None
    assert reduce_endpoint_slice(o.endpointslice("default", "f", "web", [],
                                                 address_type="FQDN")) is None


def test_join_resolves_named_target_ports_and_dedupes() -> None:
    s = reduce_service(svc())
    slices = [
        o.endpointslice("default", "web-a", "web", [o.endpoint("10.244.1.10")],
                        ports=[{"name": "http", "port": 8080, "protocol": "TCP"},
                               {"name": "dns", "port": 5353, "protocol": "UDP"}]),
        # The same address in a second slice, not ready there: the ready copy wins.
        o.endpointslice("default", "web-b", "web", [o.endpoint("10.244.1.10", ready=False),
                                                    o.endpoint("10.244.1.11")],
                        ports=[{"name": "http", "port": 8080, "protocol": "TCP"}]),
        o.endpointslice("other", "web-c", "web", [o.endpoint("10.244.9.9")],
                        ports=[{"name": "http", "port": 1, "protocol": "TCP"}]),
    ]
    reduced = [r for r in map(reduce_endpoint_slice, slices) if r]
    assert s is not None
    ports = join([s], reduced)
    assert [(p.port_name, p.protocol) for p in ports] == [("dns", "udp"), ("http", "tcp")]
    dns, http = ports
    assert [(e.ip, e.port) for e in dns.endpoints] == [("10.244.1.10", 5353)]
    assert [(e.ip, e.port, e.ready) for e in http.endpoints] == [
        ("10.244.1.10", 8080, True), ("10.244.1.11", 8080, True)]
    assert not http.external_local  # eTP applies only to externally reachable services


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[tuple[str, Any]]:
    paths = st.sampled_from(["spec", "spec.ports", "spec.ports.0", "spec.ports.0.port",
                             "spec.clusterIPs", "spec.externalIPs", "status.loadBalancer",
                             "spec.sessionAffinityConfig", "metadata", "endpoints",
                             "endpoints.0", "endpoints.0.addresses", "endpoints.0.conditions",
                             "ports", "ports.0", "metadata.labels", "addressType"])
    return st.tuples(paths, json_values)


def _set(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj[int(part)] if isinstance(obj, list) else obj.setdefault(part, {})
        if not isinstance(obj, dict | list):
            return
    if isinstance(obj, list):
        if obj:
            obj[int(last) if last.isdigit() else 0] = value
    elif isinstance(obj, dict):
        obj[last] = value


@settings(max_examples=300, deadline=None)
@given(st.lists(_mutations(), min_size=1, max_size=3))
def test_reducers_never_crash_on_corrupt_objects(mutations: list[tuple[str, Any]]) -> None:
    service = svc(externalIPs=["192.0.2.1"])
    slice_ = o.endpointslice("default", "web-1", "web", [o.endpoint("10.244.1.10")])
    for path, value in mutations:
        for obj in (service, slice_):
            try:
                _set(obj, path, value)
            except (IndexError, ValueError, TypeError):
                pass
    for reduce in (reduce_service, reduce_endpoint_slice):
        for obj in (service, slice_):
            try:
                reduce(obj)
            except BadObject:
                pass
