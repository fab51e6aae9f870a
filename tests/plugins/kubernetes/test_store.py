"""Store: incremental indexes, change notifications, relist diffs, serial and readiness."""

from __future__ import annotations

from kdns.plugins.kubernetes.records import slice_from_raw, svc_from_raw
from kdns.plugins.kubernetes.store import Change, Store
from tests.fakeapi import objects as k8s


def _svc(name: str, ip: str, rv: str = "1", ns: str = "ns") -> object:
    raw = k8s.service(ns, name, cluster_ip=ip)
    raw["metadata"]["resourceVersion"] = rv
    return svc_from_raw(raw)


def _slice(name: str, svc: str, *ips: str, rv: str = "1") -> object:
    raw = k8s.endpointslice("ns", name, svc, [k8s.endpoint(ip) for ip in ips])
    raw["metadata"]["resourceVersion"] = rv
    return slice_from_raw(raw)


def make() -> tuple[Store, list[Change]]:
    clock = iter(range(1000, 10**6))
    store = Store(clock=lambda: float(next(clock)))
    changes: list[Change] = []
    store.subscribe(changes.append)
    return store, changes


def test_synced_only_after_every_needed_list() -> None:
    store, _ = make()
    assert not store.synced
    store.replace_services({})
    store.replace_namespaces({})
    assert not store.synced
    store.replace_slices({})
    assert store.synced
    pods = Store(need_pods=True, need_slices=False)
    pods.replace_services({})
    pods.replace_namespaces({})
    assert not pods.synced
    pods.replace_pods({})
    assert pods.synced


def test_events_update_indexes_and_report_what_changed() -> None:
    store, changes = make()
    store.upsert_service("ns/a", _svc("a", "10.0.0.1"))  # type: ignore[arg-type]
    assert changes[-1] == Change(services=frozenset({"ns/a"}), ips=frozenset({"10.0.0.1"}))
    assert [s.name for s in store.services_with_ip("10.0.0.1")] == ["a"]
    store.upsert_service("ns/a", _svc("a", "10.0.0.2", rv="2"))  # type: ignore[arg-type]
    assert store.services_with_ip("10.0.0.1") == []
    assert changes[-1].ips == {"10.0.0.1", "10.0.0.2"}
    store.upsert_slice("ns/a-1", _slice("a-1", "a", "172.0.0.1"))  # type: ignore[arg-type]
    assert [s.name for s in store.slices_of("ns", "a")] == ["a-1"]
    store.upsert_slice("ns/a-1", _slice("a-1", "b", "172.0.0.2", rv="2"))  # type: ignore[arg-type]
    assert store.slices_of("ns", "a") == () and len(store.slices_of("ns", "b")) == 1
    assert changes[-1].services == {"ns/a", "ns/b"}
    assert store.slices_with_ip("172.0.0.1") == []
    gen = store.generation
    store.delete_slice("ns/missing")
    assert store.generation == gen  # nothing applied, nothing reported
    store.delete_slice("ns/a-1")
    assert store.slices_of("ns", "b") == () and store.generation == gen + 1


def test_relist_applies_only_the_difference() -> None:
    store, changes = make()
    a, b = _svc("a", "10.0.0.1"), _svc("b", "10.0.0.2")
    store.replace_services({"ns/a": a, "ns/b": b})  # type: ignore[dict-item]
    serial = store.serial
    # same resourceVersions (new objects): nothing changes, serial kept
    store.replace_services({"ns/a": _svc("a", "10.0.0.1"),  # type: ignore[dict-item]
                            "ns/b": _svc("b", "10.0.0.2")})
    assert changes[-1].services == frozenset() and store.serial == serial
    assert store.services["ns/a"] is a  # untouched objects are kept
    store.replace_services({"ns/a": _svc("a", "10.0.0.9", rv="5"),  # type: ignore[dict-item]
                            "ns/c": _svc("c", "10.0.0.3")})
    assert changes[-1].services == {"ns/a", "ns/b", "ns/c"}
    assert sorted(store.services) == ["ns/a", "ns/c"]
    assert store.services_with_ip("10.0.0.2") == [] and store.serial > serial


def test_serial_moves_only_on_dns_relevant_changes() -> None:
    store, _ = make()
    store.upsert_service("ns/a", _svc("a", "10.0.0.1"))  # type: ignore[arg-type]
    s1 = store.serial
    raw = k8s.service("ns", "a", cluster_ip="10.0.0.1", labels={"x": "y"})
    raw["metadata"]["resourceVersion"] = "2"
    store.upsert_service("ns/a", svc_from_raw(raw))  # labels only: not relevant
    assert store.serial == s1
    store.upsert_namespace("ns", "ns")
    assert store.serial == s1
    store.delete_service("ns/a")
    assert store.serial > s1


def test_terminating_pod_updates_keep_the_old_copy() -> None:
    from kdns.plugins.kubernetes.records import pod_from_raw

    store = Store(need_pods=True)
    p = pod_from_raw(k8s.pod("ns", "p", "10.1.0.1"))
    assert p is not None
    store.upsert_pod("ns/p", p)
    going = pod_from_raw(k8s.pod("ns", "p", "10.1.0.1", deleting=True))
    assert going is not None
    store.upsert_pod("ns/p", going)
    assert store.pods_with_ip("10.1.0.1") == [p]
    store.delete_pod("ns/p")
    assert store.pods_with_ip("10.1.0.1") == []
    assert pod_from_raw(k8s.pod("ns", "q", "10.1.0.2", phase="Succeeded")) is None
