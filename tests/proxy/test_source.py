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
