"""The fake API server itself: selectors, watch semantics, thread and process runners."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kdns.k8s.client import ApiClient
from kdns.k8s.config import ApiConfig, from_endpoint
from kdns.k8s.errors import ApiConnectionError
from kdns.k8s.resources import NAMESPACES, PODS, SERVICES
from tests.fakeapi import objects as k8s
from tests.fakeapi.app import FakeApi, load_objects
from tests.fakeapi.control import FakeApiProcess
from tests.fakeapi.selectors import SelectorError, parse_field_selector, parse_label_selector
from tests.fakeapi.thread import FakeApiServer


@pytest.mark.parametrize("selector,labels,expected", [
    ("", {}, True),
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("app in (web, db),tier", {"app": "db", "tier": "x"}, True),
    ("app notin (web)", {"app": "web"}, False),
    ("!legacy", {"legacy": ""}, False),
    ("kubernetes.io/service-name=svc", {"kubernetes.io/service-name": "svc"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector)({"metadata": {"labels": labels}}) is expected


def test_field_selectors_and_errors() -> None:
    pred = parse_field_selector("status.phase!=Succeeded,status.phase!=Failed,spec.nodeName=n1")
    assert pred({"status": {"phase": "Running"}, "spec": {"nodeName": "n1"}})
    assert not pred({"status": {"phase": "Failed"}, "spec": {"nodeName": "n1"}})
    with pytest.raises(SelectorError):
        parse_label_selector("app in web")
    with pytest.raises(SelectorError):
        parse_field_selector("status.phase")


async def test_watch_from_zero_and_selector_transitions(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(k8s.pod("ns", "a", "10.0.0.1", labels={"app": "x"}))
    async with ApiClient(ApiConfig(api.url)) as client:
        seen: list[tuple[str, str]] = []

        async def mutate() -> None:
            await asyncio.sleep(0.1)
            api.put(k8s.pod("ns", "a", "10.0.0.1", labels={"app": "y"}))  # leaves the selector
            api.put(k8s.pod("ns", "b", "10.0.0.2", labels={"app": "y"}))  # never matches
            api.put(k8s.pod("ns", "b", "10.0.0.2", labels={"app": "x"}))  # enters it
            api.put(k8s.pod("ns", "b", "10.0.0.2", phase="Failed", labels={"app": "x"}))
            api.end_watches()

        task = asyncio.create_task(mutate())
        async for etype, obj in client.watch(PODS.path, resource_version="0",
                                             label_selector="app=x",
                                             field_selector="status.phase!=Failed"):
            seen.append((etype, obj["metadata"]["name"]))
        await task
    assert seen == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b"), ("DELETED", "b")]


async def test_history_bound_and_object_paths(tmp_path: Path) -> None:
    async with FakeApi(history_size=3) as api, ApiClient(ApiConfig(api.url)) as client:
        first = api.resource_version
        for i in range(5):
            api.put(k8s.namespace(f"n{i}"))
        with pytest.raises(Exception, match="too old"):
            async for _ in client.watch(NAMESPACES.path, resource_version=str(first)):
                pass
        events = []
        async for ev in client.watch(NAMESPACES.path, resource_version=str(first + 2),
                                     timeout_seconds=1):
            events.append(ev.object["metadata"].get("name"))
        assert events == ["n2", "n3", "n4"]
        items, _ = await client.list("/api/v1/namespaces/ns/services")
        assert items == []
    manifest = tmp_path / "objs.yaml"
    manifest.write_text("kind: List\nitems:\n- {kind: Namespace, metadata: {name: a}}\n---\n"
                        "kind: Namespace\nmetadata: {name: b}\n")
    assert [o["metadata"]["name"] for o in load_objects(tmp_path)] == ["a", "b"]


def test_thread_server_from_sync_code() -> None:
    with FakeApiServer() as server:
        server.put(k8s.namespace("ns"))
        server.put(k8s.service("ns", "web"))
        with urllib.request.urlopen(server.url + "/api/v1/services?limit=1") as resp:
            body = json.loads(resp.read())
        assert [i["metadata"]["name"] for i in body["items"]] == ["web"]
        server.fail_next(1, 503)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/api/v1/services")
        assert err.value.code == 503
        server.down()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(server.url + "/api/v1/services", timeout=2)
        server.up()
        urllib.request.urlopen(server.url + "/api/v1/namespaces/ns").close()
        paths = [(r.path, r.query) for r in server.requests()]
        assert paths[0] == ("/api/v1/services", {"limit": "1"})
        assert server.access_summary() == {("list", "", "services"), ("get", "", "namespaces")}
        assert server.resource_version > 1000


def test_process_server_with_control_api(tmp_path: Path) -> None:
    (tmp_path / "ns.yaml").write_text("kind: Namespace\nmetadata: {name: preloaded}\n")
    proc = FakeApiProcess.start("--token", "secret", "--tls", objects_dir=tmp_path)
    try:
        assert proc.url.startswith("https://127.0.0.1:") and proc.ca_file

        async def scenario() -> None:
            assert proc.ca_file is not None
            token = tmp_path / "token"
            token.write_text("secret")
            cfg = from_endpoint(proc.url, str(token), ca_file=proc.ca_file)
            async with ApiClient(cfg, connect_timeout=1, request_timeout=2) as client:
                proc.api.put(obj=k8s.service("ns", "web"))
                items, _ = await client.list(SERVICES.path)
                assert [i["metadata"]["name"] for i in items] == ["web"]
                names = [i["metadata"]["name"] for i in (await client.list(NAMESPACES.path))[0]]
                assert names == ["preloaded"]
                proc.api.down()
                with pytest.raises(ApiConnectionError):
                    await client.list(SERVICES.path)
                proc.api.up()
                await client.list(SERVICES.path)

        asyncio.run(scenario())
        log = proc.api.requests()
        assert {r["authorization"] for r in log} == {"Bearer secret"}
        assert proc.api.access_summary() == [["list", "", "namespaces"], ["list", "", "services"]]
        assert proc.api.state()["active_watches"] == 0
    finally:
        proc.stop()
    assert proc.proc.returncode == 0


def test_thread_server_stops_promptly_with_open_watches_and_hung_requests() -> None:
    import threading
    import time

    server = FakeApiServer().start()
    server.hang_next(1, watch=False)
    done = threading.Event()

    def client_side() -> None:
        async def run() -> None:
            async with ApiClient(ApiConfig(server.url), request_timeout=30) as client:
                watch = client.watch(SERVICES.path, resource_version="1000", idle_timeout=30)
                tasks = [asyncio.create_task(anext(watch)),
                         asyncio.create_task(client.list(SERVICES.path))]
                await asyncio.wait(tasks)
                for t in tasks:
                    assert isinstance(t.exception(), ApiConnectionError | StopAsyncIteration)
        asyncio.run(run())
        done.set()

    thread = threading.Thread(target=client_side)
    thread.start()
    server.wait_for_watches(1)
    while server.hanging < 1:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert done.wait(10)
    thread.join()
