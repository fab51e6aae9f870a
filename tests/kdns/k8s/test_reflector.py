"""Reflector against the fake API server: list, watch, resume, relist, faults, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY, generate_latest

from kdns.k8s import metrics
from kdns.k8s.client import ApiClient
from kdns.k8s.config import ApiConfig
from kdns.k8s.objects import (
    Service,
    reduce_endpointslice,
    reduce_namespace,
    reduce_pod,
    reduce_service,
)
from kdns.k8s.reflector import DictSink, Reflector, ReflectorTiming
from kdns.k8s.resources import ENDPOINTSLICES, NAMESPACES, PODS, SERVICES, Resource
from tests.fakeapi import objects as k8s
from tests.fakeapi.app import FakeApi
from tests.kdns.k8s.conftest import FAST, RecordingSink, wait_until


def svc(name: str, ip: str = "10.0.0.1", ns: str = "ns", **kw: Any) -> dict[str, Any]:
    return k8s.service(ns, name, cluster_ip=ip, **kw)


@contextlib.asynccontextmanager
async def reflecting(api: FakeApi, resource: Resource = SERVICES,
                     reduce: Callable[[dict[str, Any]], Any] = reduce_service,
                     timing: ReflectorTiming = FAST, request_timeout: float = 2.0,
                     **kw: Any) -> AsyncIterator[tuple[Reflector[Any], RecordingSink]]:
    sink = RecordingSink()
    async with ApiClient(ApiConfig(api.url), request_timeout=request_timeout,
                         connect_timeout=0.5) as client:
        r: Reflector[Any] = Reflector(client, resource, reduce, sink, timing=timing, **kw)
        task = asyncio.create_task(r.run())
        try:
            await asyncio.wait_for(r.synced.wait(), 5)
            yield r, sink
            assert not task.done(), task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def lists(api: FakeApi, path: str = SERVICES.path) -> list[dict[str, str]]:
    """Query strings of the first page of every list request."""
    return [r.query for r in api.requests
            if r.path == path and not r.watch and "continue" not in r.query]


def watches(api: FakeApi, path: str = SERVICES.path) -> list[dict[str, str]]:
    return [r.query for r in api.requests if r.path == path and r.watch]


def counter(c: Any, *labels: str) -> float:
    return float(c.labels(*labels)._value.get())


async def test_initial_list_is_paginated_delivered_at_once_then_watched(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    for i in range(5):
        api.put(svc(f"s{i}", f"10.0.0.{i}"))
    list_rv = str(api.resource_version)
    async with reflecting(api, page_size=2) as (r, sink):
        assert sink.calls == [("replace", [f"ns/s{i}" for i in range(5)])]
        assert isinstance(sink.items["ns/s3"], Service)
        assert sink.items["ns/s3"].cluster_ips == ("10.0.0.3",)
        assert r.resource_version == list_rv
        await wait_until(lambda: len(watches(api)) == 1)
    pages = [r.query for r in api.requests if not r.watch]
    assert [p.get("limit") for p in pages] == ["2", "2", "2"]
    assert watches(api)[0]["resourceVersion"] == list_rv


async def test_events_are_applied_and_bookmarks_advance_the_resource_version(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))
    async with reflecting(api) as (r, sink):
        await wait_until(lambda: api.active_watches == 1)
        api.put(svc("b", "10.0.0.2"))
        api.put(svc("a", "10.0.0.9"))
        api.delete("Service", "ns", "b")
        await wait_until(lambda: sink.ops("delete") == ["ns/b"])
        assert sink.ops("upsert") == ["ns/b", "ns/a"]
        assert sink.items["ns/a"].cluster_ips == ("10.0.0.9",)
        api.put(k8s.namespace("unrelated"))  # moves the global rv; services see a bookmark
        api.send_bookmarks()
        await wait_until(lambda: r.resource_version == str(api.resource_version))
        api.end_watches()  # a clean end (timeoutSeconds): resume from the bookmark
        await wait_until(lambda: len(watches(api)) == 2)
    assert watches(api)[1]["resourceVersion"] == str(api.resource_version)
    assert len(lists(api)) == 1


async def test_dropped_watch_resumes_from_last_event_without_relist(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    async with reflecting(api) as (r, sink):
        await wait_until(lambda: api.active_watches == 1)
        api.put(svc("a"))
        await wait_until(lambda: "ns/a" in sink.items)
        rv_after_a = r.resource_version
        before = counter(metrics.WATCH_RESTARTS, "services", "dropped")
        api.drop_watches()
        api.put(svc("b"))  # happens while no watch is open: must not be missed
        await wait_until(lambda: "ns/b" in sink.items)
    assert len(lists(api)) == 1
    assert watches(api)[1]["resourceVersion"] == rv_after_a
    assert counter(metrics.WATCH_RESTARTS, "services", "dropped") == before + 1
    assert [op for op, _ in sink.calls] == ["replace", "upsert", "upsert"]


async def test_410_error_event_relists_and_replaces_atomically(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put_many(svc(f"s{i}", f"10.0.0.{i}") for i in range(3))
    async with reflecting(api) as (r, sink):
        await wait_until(lambda: api.active_watches == 1)
        before = counter(metrics.RELISTS, "services", "gone")
        await api.down()  # the reflector loses its watch ...
        api.delete("Service", "ns", "s0")
        api.put(svc("s1", "10.0.1.1"))
        api.put(svc("s9", "10.0.0.9"))
        api.compact()  # ... and the history it would resume from is gone
        await api.up()
        await wait_until(lambda: len(sink.ops("replace")) == 2, what="relist")
        assert sink.items.keys() == {"ns/s1", "ns/s2", "ns/s9"}
        assert sink.items["ns/s1"].cluster_ips == ("10.0.1.1",)
        # one atomic swap, no per-object deletes or upserts
        assert [op for op, _ in sink.calls] == ["replace", "replace"]
        assert r.resource_version == str(api.resource_version)
    assert counter(metrics.RELISTS, "services", "gone") == before + 1
    assert len(lists(api)) == 2


async def test_expire_watches_error_event_relists(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))
    async with reflecting(api) as (_, sink):
        await wait_until(lambda: api.active_watches == 1)
        api.expire_watches()  # ERROR event with a 410 Status on the open stream
        await wait_until(lambda: len(sink.ops("replace")) == 2)
        await wait_until(lambda: api.active_watches == 1)
        api.put(svc("b"))
        await wait_until(lambda: "ns/b" in sink.items)


async def test_http_410_on_watch_relists(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    async with reflecting(api) as (_, sink):
        await wait_until(lambda: api.active_watches == 1)
        api.gone_next(watch=True)
        api.end_watches()
        await wait_until(lambda: len(sink.ops("replace")) == 2)
    assert len(lists(api)) == 2


async def test_expired_continue_token_restarts_the_list(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put_many(svc(f"s{i}") for i in range(5))
    api.gone_next(1, param="continue")  # the second page of the first list
    async with reflecting(api, page_size=2) as (_, sink):
        assert sink.calls == [("replace", [f"ns/s{i}" for i in range(5)])]
    assert len(lists(api)) == 2


async def test_errors_back_off_exponentially_with_a_cap_then_recover(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))
    api.fail_next(7, 500, watch=False)
    timing = ReflectorTiming(backoff_initial=0.02, backoff_max=0.1, idle_timeout=2,
                             resync_interval=None)
    async with reflecting(api, timing=timing) as (_, sink):
        assert sink.items.keys() == {"ns/a"}
    times = [r.time for r in api.requests if not r.watch]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 7
    assert gaps[0] >= 0.009 and gaps[2] >= 0.039  # 0.02 * 2**n * [0.5, 1]
    assert gaps[3] >= gaps[0]
    # capped at 0.1 s: uncapped, the 7th wait would be at least 0.64 s
    assert all(g < 0.45 for g in gaps)


def test_backoff_values() -> None:
    t = ReflectorTiming(backoff_initial=0.2, backoff_max=5.0)
    for n, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (6, 5.0), (50, 5.0), (10_000, 5.0)]:
        values = [t.backoff(n) for _ in range(200)]
        assert all(ceiling * 0.5 <= v <= ceiling for v in values)
        assert len(set(values)) > 100  # jittered
    assert ReflectorTiming().backoff(1000) <= 5.0


async def test_hanging_watch_and_silent_watch_restart_without_relist(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    timing = ReflectorTiming(backoff_initial=0.02, backoff_max=0.1, idle_timeout=0.4,
                             resync_interval=None)
    async with reflecting(api, timing=timing, request_timeout=0.4) as (_, sink):
        await wait_until(lambda: api.active_watches == 1)
        stalled = counter(metrics.WATCH_RESTARTS, "services", "stalled")
        api.stall_watches()
        api.hang_next(watch=True)  # and the first re-watch never gets response headers
        api.put(svc("late"))
        await wait_until(lambda: "ns/late" in sink.items, timeout=5)
        assert counter(metrics.WATCH_RESTARTS, "services", "stalled") == stalled + 1
    assert len(lists(api)) == 1
    assert len(watches(api)) >= 3


async def test_api_down_keeps_state_and_catches_up_after(
        fake_api_async: FakeApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kdns.k8s")
    api = fake_api_async
    api.put_many(svc(f"s{i}") for i in range(3))
    async with reflecting(api) as (r, sink):
        await wait_until(lambda: api.active_watches == 1)
        await api.down()
        api.put(svc("new"))
        api.delete("Service", "ns", "s0")
        await asyncio.sleep(0.5)  # several failed reconnects
        assert sink.items.keys() == {"ns/s0", "ns/s1", "ns/s2"}  # last known state kept
        assert r.synced.is_set()
        await api.up()
        await wait_until(lambda: sink.items.keys() == {"ns/new", "ns/s1", "ns/s2"}, timeout=3)
    assert len(lists(api)) == 1  # resumed from the watch history, no relist
    messages = [r.getMessage() for r in caplog.records]
    assert any("(failure 1, retrying)" in m for m in messages)
    assert any("answering again after" in m for m in messages)


async def test_periodic_safety_relist(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))
    timing = ReflectorTiming(backoff_initial=0.02, idle_timeout=2, resync_interval=0.3,
                             resync_jitter=0.1)
    before = counter(metrics.RELISTS, "services", "resync")
    async with reflecting(api, timing=timing) as (_, sink):
        await wait_until(lambda: len(sink.ops("replace")) >= 3, timeout=3)
        assert sink.items.keys() == {"ns/a"}
    assert counter(metrics.RELISTS, "services", "resync") >= before + 2


async def test_malformed_objects_and_events_are_skipped_and_counted(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("good"))
    bad = svc("bad")
    bad["spec"]["ports"] = "eighty"
    api.put(bad)
    before = counter(metrics.MALFORMED, "services")
    async with reflecting(api) as (_, sink):
        assert sink.items.keys() == {"ns/good"}
        assert counter(metrics.MALFORMED, "services") == before + 1
        await wait_until(lambda: api.active_watches == 1)
        worse = svc("good")
        worse["spec"]["clusterIPs"] = [1, 2]
        api.put(worse)  # MODIFIED to a malformed object: skipped, old record kept
        api.put(svc("after"))
        await wait_until(lambda: "ns/after" in sink.items)
        assert sink.items["ns/good"].cluster_ips == ("10.0.0.1",)
        assert counter(metrics.MALFORMED, "services") == before + 2


async def test_a_reducer_that_raises_is_counted_not_fatal(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))
    api.put(svc("boom"))

    def reduce(raw: dict[str, Any]) -> str:
        if raw["metadata"]["name"] == "boom":
            raise KeyError("reducer bug")
        return str(raw["metadata"]["name"])

    async with reflecting(api, reduce=reduce) as (_, sink):
        assert sink.items == {"ns/a": "a"}


async def test_reduce_returning_none_deletes_the_key(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))

    def only_clusterip(raw: dict[str, Any]) -> Service | None:
        s = reduce_service(raw)
        return None if s.is_headless else s

    async with reflecting(api, reduce=only_clusterip) as (_, sink):
        await wait_until(lambda: api.active_watches == 1)
        api.put(svc("a", "None"))
        await wait_until(lambda: "ns/a" not in sink.items)
        assert sink.ops("delete") == ["ns/a"]


async def test_label_selector_change_arrives_as_delete(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a", labels={"tier": "web"}))
    api.put(svc("b", labels={"tier": "db"}))
    async with reflecting(api, label_selector="tier=web") as (_, sink):
        assert sink.items.keys() == {"ns/a"}
        await wait_until(lambda: api.active_watches == 1)
        api.put(svc("a", labels={"tier": "db"}))
        await wait_until(lambda: not sink.items)
    assert all(q.get("labelSelector") == "tier=web" for q in lists(api) + watches(api))


async def test_four_reflectors_share_one_client(fake_api_async: FakeApi) -> None:
    """The kubernetes plugin's shape: services, slices, namespaces, pods on one session."""
    api = fake_api_async
    api.put(k8s.namespace("ns"))
    api.put(svc("web"))
    api.put(k8s.endpointslice("ns", "web-1", "web", [k8s.endpoint("10.1.0.1")]))
    api.put(k8s.pod("ns", "p", "10.1.0.1"))
    api.put(k8s.pod("ns", "done", "10.1.0.2", phase="Succeeded"))
    sinks: dict[str, DictSink[Any]] = {}
    async with ApiClient(ApiConfig(api.url)) as client:
        reflectors = []
        for res, reduce, fields in ((SERVICES, reduce_service, None),
                                    (ENDPOINTSLICES, reduce_endpointslice, None),
                                    (NAMESPACES, reduce_namespace, None),
                                    (PODS, reduce_pod, "status.phase!=Succeeded")):
            sinks[res.name] = DictSink()
            reflectors.append(Reflector(client, res, reduce, sinks[res.name], timing=FAST,
                                        field_selector=fields))
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(r.run()) for r in reflectors]
            await asyncio.wait_for(asyncio.gather(*(r.synced.wait() for r in reflectors)), 5)
            await wait_until(lambda: api.active_watches == 4)
            for t in tasks:
                t.cancel()
    assert sinks["namespaces"].items.keys() == {"ns"}
    assert sinks["endpointslices"].items["ns/web-1"].service_name == "web"
    assert sinks["pods"].items.keys() == {"ns/p"}
    # what the ClusterRole must grant, and nothing more (RBAC audit)
    assert api.access_summary() == {(verb, group, res) for verb in ("list", "watch")
                                    for group, res in (("", "services"), ("", "namespaces"),
                                                       ("", "pods"),
                                                       ("discovery.k8s.io", "endpointslices"))}


async def test_last_sync_age_is_exported(fake_api_async: FakeApi) -> None:
    async with reflecting(fake_api_async, resource=NAMESPACES, reduce=reduce_namespace):
        text = generate_latest(REGISTRY).decode()
    line = next(x for x in text.splitlines()
                if x.startswith('kdns_k8s_last_sync_age_seconds{resource="namespaces"}'))
    assert 0 <= float(line.split()[-1]) < 5
    assert "kdns_k8s_lists_total" in text
    # a stopped reflector is no longer reported
    text = generate_latest(REGISTRY).decode()
    assert 'kdns_k8s_last_sync_age_seconds{resource="namespaces"}' not in text


async def test_server_without_resource_versions_is_watched_from_empty_and_relisted() -> None:
    """A stand-in server that omits metadata.resourceVersion still works: watch from "",
    and relist whenever that watch ends (it cannot be resumed)."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        is_watch = request.query.get("watch") == "true"
        calls.append(f"{'watch' if is_watch else 'list'}:{request.query.get('resourceVersion')}")
        obj = k8s.namespace("a")
        if not is_watch:
            return web.json_response({"kind": "NamespaceList", "items": [obj]})
        resp = web.StreamResponse()
        await resp.prepare(request)
        added = k8s.namespace("b")
        await resp.write(json.dumps({"type": "ADDED", "object": added}).encode() + b"\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/api/v1/namespaces", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sink = RecordingSink()
    try:
        async with ApiClient(ApiConfig(f"http://127.0.0.1:{runner.addresses[0][1]}")) as c:
            r = Reflector(c, NAMESPACES, reduce_namespace, sink, timing=FAST)
            task = asyncio.create_task(r.run())
            await wait_until(lambda: len(sink.ops("replace")) >= 2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await runner.cleanup()
    assert calls[:3] == ["list:None", "watch:", "list:None"]
    assert sink.calls[:2] == [("replace", ["a"]), ("upsert", "b")]


@pytest.mark.parametrize("line", [
    b"garbage", b"[1, 2]", b'{"type": "ADDED", "object": {}}', b'{"type": "WEIRD", "object": {}}',
    b'{"type": "BOOKMARK", "object": {"metadata": {}}}',
    b'{"type": "MODIFIED", "object": {"metadata": {"namespace": "ns", "name": "x"}, "spec": 5}}',
])
async def test_garbage_on_the_watch_stream_is_counted(line: bytes,
                                                      fake_api_async: FakeApi) -> None:
    api = fake_api_async
    async with reflecting(api) as (r, sink):
        await wait_until(lambda: api.active_watches == 1)
        before = counter(metrics.MALFORMED, "services")
        rv = r.resource_version
        assert api.inject_raw(line) == 1
        api.put(svc("ok"))
        await wait_until(lambda: "ns/ok" in sink.items)
        assert counter(metrics.MALFORMED, "services") == before + 1
        assert r.resource_version == str(api.resource_version) != rv
    assert len(lists(api)) == 1 and len(watches(api)) == 1


async def test_tls_api_lost_three_ways_keeps_state_and_catches_up(tmp_path: Any) -> None:
    """reliability.md K2 in small: refused, blackholed (TLS handshake never completes) and
    reset mid-stream, over https; the last state is kept and changes arrive after each."""
    from tests.fakeapi.tls import make_tls_bundle

    bundle = make_tls_bundle(tmp_path)
    timing = ReflectorTiming(backoff_initial=0.02, backoff_max=0.2, idle_timeout=1.0,
                             resync_interval=None)
    async with FakeApi(tls=bundle, bookmark_interval=0.3) as api:
        api.put(svc("a"))
        cfg = ApiConfig(api.url, ca_file=str(bundle.ca_cert))
        sink = RecordingSink()
        async with ApiClient(cfg, connect_timeout=0.3, request_timeout=0.5) as client:
            r = Reflector(client, SERVICES, reduce_service, sink, timing=timing)
            task = asyncio.create_task(r.run())
            await asyncio.wait_for(r.synced.wait(), 5)
            for n, outage in enumerate(("down", "blackhole", "reset")):
                await wait_until(lambda: api.active_watches == 1)
                if outage == "reset":
                    api.drop_watches()
                    api.drop_next(3)
                else:
                    await getattr(api, outage)()
                api.put(svc(f"during-{n}"))
                await asyncio.sleep(0.6)
                assert f"ns/during-{n}" not in sink.items or outage == "reset"
                assert "ns/a" in sink.items
                await api.up()
                await wait_until(lambda n=n: f"ns/during-{n}" in sink.items, timeout=5)
            assert not task.done()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(lists(api)) == 1


async def test_relist_reuses_records_of_unchanged_objects(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put_many(svc(f"s{i}", f"10.0.0.{i}") for i in range(3))
    reduced: list[str] = []

    def counting(raw: dict[str, Any]) -> Service:
        reduced.append(raw["metadata"]["name"])
        return reduce_service(raw)

    async with reflecting(api, reduce=counting) as (_, sink):
        await wait_until(lambda: api.active_watches == 1)
        before = dict(sink.items)
        await api.down()
        api.put(svc("s1", "10.0.1.1"))
        api.compact()
        await api.up()
        await wait_until(lambda: len(sink.ops("replace")) == 2)
        assert sink.items["ns/s0"] is before["ns/s0"] and sink.items["ns/s2"] is before["ns/s2"]
        assert sink.items["ns/s1"].cluster_ips == ("10.0.1.1",)
        api.put(svc("s2", "10.0.2.2"))  # the cache follows watch events too
        api.delete("Service", "ns", "s0")
        await wait_until(lambda: "ns/s0" not in sink.items)
    assert sorted(reduced) == ["s0", "s1", "s1", "s2", "s2"]


async def test_retry_after_of_a_429_is_honoured(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(svc("a"))
    api.fail_next(1, 429, watch=False, retry_after=1)
    async with reflecting(api) as (_, sink):
        assert sink.items.keys() == {"ns/a"}
    first, second = (r.time for r in api.requests if not r.watch)
    assert second - first >= 0.95  # FAST's own backoff would be 0.01-0.02 s


async def test_non_410_error_event_restarts_the_watch_without_relist(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    async with reflecting(api) as (r, sink):
        await wait_until(lambda: api.active_watches == 1)
        rv = r.resource_version
        error = {"type": "ERROR", "object": {"kind": "Status", "status": "Failure",
                                             "code": 500, "message": "etcd hiccup"}}
        api.inject_raw(json.dumps(error).encode())
        await wait_until(lambda: len(watches(api)) == 2)
        api.put(svc("after"))
        await wait_until(lambda: "ns/after" in sink.items)
    assert watches(api)[1]["resourceVersion"] == rv
    assert len(lists(api)) == 1


async def test_last_sync_follows_watch_opens_and_grows_while_the_api_is_away() -> None:
    import time

    timing = ReflectorTiming(backoff_initial=0.02, backoff_max=0.1, idle_timeout=0.3,
                             resync_interval=None)
    async with FakeApi(bookmark_interval=None) as api:  # quiet: no events, no bookmarks
        async with reflecting(api, timing=timing) as (r, _):
            await asyncio.sleep(1.0)
            assert r.last_sync is not None and time.monotonic() - r.last_sync < 0.5
            await api.down()
            await asyncio.sleep(1.0)
            assert time.monotonic() - r.last_sync > 0.8
            await api.up()
            await wait_until(lambda: time.monotonic() - (r.last_sync or 0) < 0.2)
