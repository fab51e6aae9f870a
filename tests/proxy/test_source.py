"""The API side: sinks trigger syncs only on real changes, and the joined snapshot."""

from __future__ import annotations

from kdns.proxy.objects import reduce_endpoint_slice, reduce_service
from kdns.proxy.source import ChangeSink
from tests.fakeapi import objects as o


def test_change_sink_signals_only_real_changes() -> None:
    calls: list[int] = []
    sink: ChangeSink[object] = ChangeSink(lambda: calls.append(1))
    svc = reduce_service(o.service("default", "web"))
    sink.replace({"default/web": svc})
    sink.upsert("default/web", reduce_service(o.service("default", "web")))  # equal record
    sink.delete("default/missing")
    assert len(calls) == 1
    sink.upsert("default/web", reduce_service(o.service("default", "web", cluster_ip="10.96.0.9")))
    sink.delete("default/web")
    assert len(calls) == 3 and sink.items == {}


def test_status_only_slice_updates_reduce_to_equal_records() -> None:
    a = o.endpointslice("default", "s", "web", [o.endpoint("10.244.1.10", pod="p")])
    b = o.endpointslice("default", "s", "web", [o.endpoint("10.244.1.10", pod="p")])
    b["metadata"]["resourceVersion"] = "99"
    b["endpoints"][0]["targetRef"]["uid"] = "x"
    assert reduce_endpoint_slice(a) == reduce_endpoint_slice(b)


def test_health_check_node_port_only_for_local_policy_and_counts_ready_local() -> None:
    from kdns.proxy.healthcheck import LocalHealth, local_health
    from kdns.proxy.objects import join

    obj = o.service("default", "lb", type="LoadBalancer",
                    ports=[o.port("http", 80), o.port("https", 443)])
    obj["spec"].update(externalTrafficPolicy="Local", healthCheckNodePort=32000)
    for p, node_port in zip(obj["spec"]["ports"], (30080, 30443), strict=True):
        p["nodePort"] = node_port
    sl = o.endpointslice("default", "lb-1", "lb", [
        o.endpoint("10.244.1.10", node="node-a"), o.endpoint("10.244.1.11", node="node-a",
                                                             ready=False),
        o.endpoint("10.244.2.10", node="node-b")],
        ports=[{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "https", "port": 8443, "protocol": "TCP"}])
    svc, slc = reduce_service(obj), reduce_endpoint_slice(sl)
    assert svc is not None and slc is not None
    ports = join([svc], [slc])
    assert {p.health_check_node_port for p in ports} == {32000}
    assert local_health(ports, "node-a") == {32000: LocalHealth("default", "lb", 1)}
    assert local_health(ports, "node-c") == {32000: LocalHealth("default", "lb", 0)}
    obj["spec"]["externalTrafficPolicy"] = "Cluster"
    cluster = reduce_service(obj)
    assert cluster is not None
    assert local_health(join([cluster], [slc]), "node-a") == {}


def test_zone_sink_reports_changes_only() -> None:
    from kdns.proxy.source import ZoneSink, node_zone

    seen: list[str | None] = []
    sink = ZoneSink(seen.append)
    node = {"metadata": {"name": "n", "labels": {"topology.kubernetes.io/zone": "zone-a"}}}
    sink.replace({"n": node_zone(node)})
    sink.upsert("n", node_zone(node))
    sink.upsert("n", node_zone({"metadata": {"name": "n"}}))  # label removed
    sink.replace({"n": "zone-b"})
    sink.delete("n")
    assert seen == ["zone-a", None, "zone-b", None]
