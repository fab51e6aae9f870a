"""AnswerCache: after any sequence of store events, every cached answer equals a fresh one."""

from __future__ import annotations

import random

import dns.name
import pytest

from kdns.plugins.kubernetes.cache import AnswerCache
from kdns.plugins.kubernetes.lookup import Resolver, Result
from kdns.plugins.kubernetes.records import pod_from_raw, slice_from_raw, svc_from_raw
from kdns.plugins.kubernetes.store import Store
from tests.fakeapi import objects as k8s
from tests.plugins.kubernetes.engine import config, load_store

NAMES = [f"{s}.{ns}.svc.cluster.local." for s in ("a", "b", "c", "ext") for ns in ("n1", "n2")]
NAMES += [f"{ip.replace('.', '-')}.{s}.n1.svc.cluster.local." for s in ("a", "b")
          for ip in ("172.0.0.1", "172.0.0.2")]
NAMES += ["n1.svc.cluster.local.", "n3.svc.cluster.local.", "10-1-0-1.n1.pod.cluster.local.",
          "1.0.0.172.in-addr.arpa.", "2.0.0.172.in-addr.arpa.", "1.0.0.10.in-addr.arpa.",
          "2.0.0.10.in-addr.arpa.", "cluster.local."]
QTYPES = [1, 28, 33, 16, 12, 5, 6, 2]


def _event(rnd: random.Random, store: Store, version: int) -> None:
    ns = rnd.choice(["n1", "n2", "n3"])
    name = rnd.choice(["a", "b", "c", "ext"])
    kind = rnd.randrange(5)
    if kind == 0:
        if rnd.random() < 0.5:
            store.upsert_namespace(ns, ns)
        else:
            store.delete_namespace(ns)
    elif kind == 1:
        if rnd.random() < 0.3:
            store.delete_service(f"{ns}/{name}")
            return
        if name == "ext":
            raw = k8s.service(ns, name, type="ExternalName",
                              external_name=rnd.choice(["a.n1.svc.cluster.local", "x.test"]))
        else:
            raw = k8s.service(ns, name, cluster_ip=rnd.choice(["None", "10.0.0.1", "10.0.0.2"]))
        raw["metadata"]["resourceVersion"] = str(version)
        store.upsert_service(f"{ns}/{name}", svc_from_raw(raw))
    elif kind == 2:
        key = f"{ns}/{name}-{rnd.randrange(2)}"
        if rnd.random() < 0.3:
            store.delete_slice(key)
            return
        ips = rnd.sample(["172.0.0.1", "172.0.0.2", "172.0.0.3"], rnd.randrange(3))
        raw = k8s.endpointslice(ns, key.split("/")[1], name,
                                [k8s.endpoint(ip, ready=rnd.random() < 0.8) for ip in ips])
        raw["metadata"]["resourceVersion"] = str(version)
        store.upsert_slice(key, slice_from_raw(raw))
    elif kind == 3:
        pod = pod_from_raw(k8s.pod(ns, "p", rnd.choice(["10.1.0.1", "10.1.0.2"])))
        assert pod is not None
        store.upsert_pod(f"{ns}/p", pod)
    else:
        objs = [k8s.namespace("n1"), k8s.service("n1", "a", cluster_ip="10.0.0.1")]
        if rnd.random() < 0.5:
            objs.append(k8s.service("n2", "b", cluster_ip="None"))
        fresh = load_store(objs)
        store.replace_services(fresh.services)


def _same(a: Result, b: Result) -> bool:
    return (a.outcome, a.rcode, a.answer, a.authority, a.additional, a.chase) == \
        (b.outcome, b.rcode, b.answer, b.authority, b.additional, b.chase)


@pytest.mark.parametrize("seed", range(3))
def test_cached_answers_always_equal_fresh_ones(seed: int) -> None:
    rnd = random.Random(seed)
    cfg = config(pods="verified")
    store = Store(need_pods=True)
    resolver = Resolver(cfg, store, ["172.0.0.3"])
    cache = AnswerCache(store)
    for version in range(200):
        _event(rnd, store, version)
        for _ in range(12):
            qname, qtype = rnd.choice(NAMES), rnd.choice(QTYPES)
            name = dns.name.from_text(qname)
            fresh = resolver.resolve(name, qtype)
            cached = cache.get((qname, qtype))
            if cached is not None:
                assert _same(cached, fresh), (version, qname, qtype)
            cache.put((qname, qtype), fresh)
    assert len(cache) > 0


def test_cache_is_bounded() -> None:
    store = load_store([k8s.namespace("n")])
    cache = AnswerCache(store, max_entries=10)
    resolver = Resolver(config(), store)
    for i in range(25):
        q = f"s{i}.n.svc.cluster.local."
        cache.put((q, 1), resolver.resolve(dns.name.from_text(q), 1))
    assert len(cache) <= 10


def test_tag_versions_bump_exactly_the_touched_tags() -> None:
    from kdns.plugins.kubernetes.versions import TagVersions

    store = load_store([k8s.namespace("n1"), k8s.service("n1", "a", cluster_ip="10.0.0.1"),
                        k8s.service("n1", "b", cluster_ip="10.0.0.2")])
    versions = TagVersions(store, max_tags=50)
    resolver = Resolver(config(), store)
    res_a = resolver.resolve(dns.name.from_text("a.n1.svc.cluster.local."), 1)
    res_b = resolver.resolve(dns.name.from_text("b.n1.svc.cluster.local."), 1)
    res_x = resolver.resolve(dns.name.from_text("x.n1.svc.cluster.local."), 1)  # NXDOMAIN
    va, vb, vx = (versions.for_result(r) for r in (res_a, res_b, res_x))
    snap = {id(v): v.n for v in va + vb + vx}
    raw = k8s.service("n1", "a", cluster_ip="10.0.0.9")
    raw["metadata"]["resourceVersion"] = "2"
    store.upsert_service("n1/a", svc_from_raw(raw))
    assert any(v.n != snap[id(v)] for v in va)
    assert all(v.n == snap[id(v)] for v in vb)
    store.upsert_service("n1/x", svc_from_raw(k8s.service("n1", "x", cluster_ip="10.0.0.3")))
    assert any(v.n != snap[id(v)] for v in vx)  # the NXDOMAIN (with SOA) is invalidated
    for i in range(60):  # overflow: everything is invalidated, then the table starts over
        versions.for_result(resolver.resolve(dns.name.from_text(f"z{i}.n1.svc.cluster.local."), 1))
    assert len(versions) <= 50
    assert versions.everything.n > 0
