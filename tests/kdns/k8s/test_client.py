"""ApiClient against the fake API server: pagination, watch framing, error mapping, auth, TLS."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kdns.k8s import metrics
from kdns.k8s.client import MALFORMED, ApiClient
from kdns.k8s.config import ApiConfig, from_endpoint
from kdns.k8s.errors import (
    ApiConnectionError,
    ApiError,
    ApiGone,
    ApiProtocolError,
    ConfigError,
    WatchStalled,
)
from kdns.k8s.resources import ENDPOINTSLICES, NAMESPACES, PODS, SERVICES
from tests.fakeapi import objects as k8s
from tests.fakeapi.app import FakeApi
from tests.fakeapi.tls import TlsBundle, make_tls_bundle


def client_for(api: FakeApi, **kw: Any) -> ApiClient:
    return ApiClient(ApiConfig(api.url), **kw)


async def test_paginated_list_returns_every_item_and_one_resource_version(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    for i in range(7):
        api.put(k8s.service("ns", f"s{i}", cluster_ip=f"10.0.0.{i}"))
    async with client_for(api) as client:
        pages = [p async for p in client.list_pages(SERVICES.path, limit=3)]
        items, rv = await client.list(SERVICES.path, limit=3)
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert [p.continue_token != "" for p in pages] == [True, True, False]
    assert {p.resource_version for p in pages} == {str(api.resource_version)}
    assert sorted(i["metadata"]["name"] for i in items) == [f"s{i}" for i in range(7)]
    assert rv == str(api.resource_version)
    lists = [r for r in api.requests if not r.watch]
    assert [r.query.get("limit") for r in lists] == ["3"] * 6
    assert sum("continue" in r.query for r in lists) == 4


async def test_expired_continue_token_is_api_gone(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put_many(k8s.namespace(f"n{i}") for i in range(4))
    async with client_for(api) as client:
        first = await client.list_page(NAMESPACES.path, limit=2)
        api.expire_continue_tokens()
        with pytest.raises(ApiGone) as err:
            await client.list_page(NAMESPACES.path, limit=2, continue_token=first.continue_token)
    assert err.value.status == 410 and err.value.reason == "Expired"


async def test_selectors_are_sent_and_honoured(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(k8s.pod("ns", "run", "10.1.0.1", labels={"app": "a"}))
    api.put(k8s.pod("ns", "done", "10.1.0.2", phase="Succeeded", labels={"app": "a"}))
    api.put(k8s.pod("ns", "other", "10.1.0.3", labels={"app": "b"}))
    async with client_for(api) as client:
        items, _ = await client.list(
            PODS.path, label_selector="app in (a)",
            field_selector="status.phase!=Succeeded,status.phase!=Failed")
    assert [i["metadata"]["name"] for i in items] == ["run"]


async def test_watch_streams_events_and_bookmarks_from_a_resource_version(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(k8s.namespace("a"))
    async with client_for(api) as client:
        _, rv = await client.list(NAMESPACES.path)
        api.put(k8s.namespace("b"))
        api.put(k8s.namespace("b", labels={"x": "y"}))
        api.delete("Namespace", None, "a")
        got: list[tuple[str, str]] = []
        async with aclosing(client.watch(NAMESPACES.path, resource_version=rv,
                                         timeout_seconds=5, idle_timeout=5)) as events:
            async for etype, obj in events:
                got.append((etype, obj["metadata"].get("name", "")))
                if len(got) == 3:
                    api.send_bookmarks()
                if etype == "BOOKMARK":
                    bookmark_rv = obj["metadata"]["resourceVersion"]
                    break
    assert got[:3] == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    assert bookmark_rv == str(api.resource_version)
    watch = next(r for r in api.requests if r.watch)
    assert watch.query["allowWatchBookmarks"] == "true"
    assert watch.query["resourceVersion"] == rv and watch.query["timeoutSeconds"] == "5"


async def test_watch_ends_cleanly_at_server_timeout(fake_api_async: FakeApi) -> None:
    async with client_for(fake_api_async) as client:
        events = [e async for e in client.watch(SERVICES.path, resource_version="1000",
                                               timeout_seconds=1, idle_timeout=5)]
    assert all(e.type == "BOOKMARK" for e in events)


async def test_too_old_resource_version_is_gone_in_both_forms(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.put(k8s.namespace("a"))
    api.compact()  # the ERROR-event form: 200 + {"type":"ERROR", 410 Status}
    async with client_for(api) as client:
        with pytest.raises(ApiGone, match="too old resource version"):
            async for _ in client.watch(NAMESPACES.path, resource_version="1000"):
                pass
        api.gone_next(watch=True)  # the HTTP form
        with pytest.raises(ApiGone):
            async for _ in client.watch(NAMESPACES.path, resource_version="1001"):
                pass


async def test_error_status_is_mapped(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    api.fail_next(1, 500)
    api.fail_next(1, 403, path="/apis/")
    async with client_for(api) as client:
        with pytest.raises(ApiError) as err:
            await client.list(SERVICES.path)
        assert err.value.status == 500 and not isinstance(err.value, ApiGone)
        with pytest.raises(ApiError) as err:
            await client.list(ENDPOINTSLICES.path)
        assert err.value.status == 403
        with pytest.raises(ApiError) as err:
            await client.list("/api/v1/nonsense")
        assert err.value.status == 404
        assert (await client.list(SERVICES.path))[0] == []


async def test_hang_drop_refused_and_stall_are_connection_errors(
        fake_api_async: FakeApi) -> None:
    api = fake_api_async
    async with client_for(api, request_timeout=0.3, connect_timeout=0.3) as client:
        api.hang_next(watch=False)
        with pytest.raises(ApiConnectionError, match="timed out"):
            await client.list(SERVICES.path)
        api.drop_next(2)  # aiohttp retries an idempotent GET once on a reset: drop both
        with pytest.raises(ApiConnectionError):
            await client.list(SERVICES.path)
        api.hang_next(watch=True)  # headers never come
        with pytest.raises(ApiConnectionError, match="timed out"):
            async for _ in client.watch(SERVICES.path, resource_version="1000"):
                pass

        async def stall_after_open() -> None:
            await asyncio.sleep(0.1)
            api.stall_watches()
        task = asyncio.create_task(stall_after_open())
        with pytest.raises(WatchStalled):
            async for _ in client.watch(SERVICES.path, resource_version="1000",
                                        idle_timeout=0.5):
                pass
        await task

        async def drop_mid_stream() -> None:
            await asyncio.sleep(0.1)
            api.put(k8s.namespace("x"))
            await asyncio.sleep(0.1)
            api.drop_watches()
        task = asyncio.create_task(drop_mid_stream())
        seen = []
        with pytest.raises(ApiConnectionError):
            async for etype, _ in client.watch(NAMESPACES.path, resource_version="1000"):
                seen.append(etype)
        await task
        assert seen == ["ADDED"]
        await api.down()
        with pytest.raises(ApiConnectionError):
            await client.list(SERVICES.path)
        await api.up()
    async with client_for(api) as client:  # default timeouts: immune to a loaded machine
        assert (await client.list(NAMESPACES.path))[0][0]["metadata"]["name"] == "x"


async def _raw_server(body: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 7000):  # many small chunks: lines span chunk borders
            await resp.write(body[i:i + 7000])
        await resp.write_eof()
        return resp
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_watch_framing_big_events_and_malformed_lines() -> None:
    big = {"metadata": {"name": "big", "resourceVersion": "5",
                        "annotations": {"a": "x" * 500_000}}}
    lines = [json.dumps({"type": "ADDED", "object": big}).encode(), b"{not json",
             b'["list"]', b'{"type": "ADDED"}', b"",
             json.dumps({"type": "DELETED", "object": {"metadata": {"name": "z"}}}).encode()]
    runner, url = await _raw_server(b"\n".join(lines) + b"\n")
    try:
        async with ApiClient(ApiConfig(url)) as client:
            events = [e async for e in client.watch("/x", resource_version="1")]
    finally:
        await runner.cleanup()
    assert [e.type for e in events] == ["ADDED", MALFORMED, MALFORMED, MALFORMED, "DELETED"]
    assert len(events[0].object["metadata"]["annotations"]["a"]) == 500_000


async def test_list_protocol_errors() -> None:
    for body in (b"not json", b"[]", b"{}", b'{"items": {}}',
                 b'{"items": [], "metadata": {"resourceVersion": 5}}'):
        runner, url = await _raw_server(body)
        try:
            async with ApiClient(ApiConfig(url)) as client:
                with pytest.raises(ApiProtocolError):
                    await client.list("/x")
        finally:
            await runner.cleanup()


async def test_list_without_resource_version_is_accepted() -> None:
    runner, url = await _raw_server(b'{"items": [{"metadata": {"name": "a"}}, 7]}')
    try:
        async with ApiClient(ApiConfig(url)) as client:
            page = await client.list_page("/x")
    finally:
        await runner.cleanup()
    assert (page.resource_version, page.continue_token, page.malformed) == ("", "", 1)
    assert page.items == [{"metadata": {"name": "a"}}]


async def test_token_file_is_reread_when_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    async with FakeApi(tokens={"first"}) as api, \
            ApiClient(from_endpoint(api.url, str(token))) as client:
        await client.list(SERVICES.path)
        api.tokens = {"second"}
        with pytest.raises(ApiError) as err:
            await client.list(SERVICES.path)
        assert err.value.status == 401
        # kubelet-style rotation: a new file renamed over the old one
        (tmp_path / "token.new").write_text("second")
        (tmp_path / "token.new").rename(token)
        await client.list(SERVICES.path)
        auths = [r.authorization for r in api.requests]
    assert auths[0] == "Bearer first" and auths[-1] == "Bearer second"


async def test_unauthorized_forces_a_token_reread(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("aaaa")
    async with FakeApi(tokens={"aaaa"}) as api, \
            ApiClient(from_endpoint(api.url, str(token))) as client:
        await client.list(SERVICES.path)
        stat = token.stat()
        token.write_text("bbbb")  # same size; restore the mtime so only a 401 reveals it
        import os
        os.utime(token, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        api.tokens = {"bbbb"}
        await client.list(SERVICES.path)
        assert [r.authorization for r in api.requests][-2:] == ["Bearer aaaa", "Bearer bbbb"]


async def test_static_token_and_no_token(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    async with ApiClient(ApiConfig(api.url, token="static")) as client:
        await client.list(SERVICES.path)
    async with ApiClient(ApiConfig(api.url)) as client:
        await client.list(SERVICES.path)
    assert [r.authorization for r in api.requests] == ["Bearer static", None]


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsBundle, TlsBundle]:
    d = tmp_path_factory.mktemp("tls")
    return make_tls_bundle(d / "good"), make_tls_bundle(d / "other", ca_name="other-ca")


async def test_https_verifies_the_server_and_presents_a_client_cert(
        tls_pair: tuple[TlsBundle, TlsBundle]) -> None:
    good, other = tls_pair
    async with FakeApi(tls=good, require_client_cert=True) as api:
        assert api.url.startswith("https://127.0.0.1:")
        cfg = from_endpoint(api.url, ca_file=str(good.ca_cert),
                            client_cert_file=str(good.client_cert),
                            client_key_file=str(good.client_key))
        async with ApiClient(cfg) as client:
            await client.list(SERVICES.path)
        assert api.requests[-1].client_cert_cn == "kdns-test"
        # wrong CA: verification fails, as a connection error (never silently accepted)
        async with ApiClient(from_endpoint(api.url, ca_file=str(other.ca_cert))) as client:
            with pytest.raises(ApiConnectionError, match=r"(?i)certificate"):
                await client.list(SERVICES.path)
        # system trust store only: the test CA is unknown there
        async with ApiClient(ApiConfig(api.url)) as client:
            with pytest.raises(ApiConnectionError, match=r"(?i)certificate"):
                await client.list(SERVICES.path)
        # right CA, but no client cert: the server refuses
        async with ApiClient(from_endpoint(api.url, ca_file=str(good.ca_cert))) as client:
            with pytest.raises(ApiError) as err:
                await client.list(SERVICES.path)
            assert err.value.status == 401


async def test_https_hostname_must_match_the_certificate(
        tls_pair: tuple[TlsBundle, TlsBundle]) -> None:
    good, _ = tls_pair
    async with FakeApi(tls=good) as api:
        # The cert names 127.0.0.1 and localhost; asking for another name must fail.
        cfg = ApiConfig(api.url, ca_file=str(good.ca_cert), tls_server_name="kubernetes")
        async with ApiClient(cfg) as client:
            with pytest.raises(ApiConnectionError, match=r"(?i)hostname|certificate"):
                await client.list(SERVICES.path)
        cfg = ApiConfig(api.url, ca_file=str(good.ca_cert), tls_server_name="localhost")
        async with ApiClient(cfg) as client:
            await client.list(SERVICES.path)


def test_bad_tls_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="TLS"):
        ApiClient(ApiConfig("https://127.0.0.1:1", ca_file=str(bad)))


async def test_rest_client_metrics_count_requests(fake_api_async: FakeApi) -> None:
    api = fake_api_async
    host = f"127.0.0.1:{api.port}"

    def count(code: str) -> float:
        v = metrics.REST_REQUESTS.labels(code, "GET", host)._value.get()
        return float(v)

    api.fail_next(1, 500)
    async with client_for(api) as client:
        with pytest.raises(ApiError):
            await client.list(SERVICES.path)
        await client.list(SERVICES.path)
    assert count("500") == 1 and count("200") == 1


async def test_closing_the_client_under_a_watch_is_a_connection_error(
        fake_api_async: FakeApi) -> None:
    client = client_for(fake_api_async)
    events = client.watch(SERVICES.path, resource_version="1000", idle_timeout=5)
    first = asyncio.create_task(anext(events))
    await asyncio.sleep(0.2)
    await client.close()
    with pytest.raises(ApiConnectionError):
        await first
    with pytest.raises(ApiConnectionError, match="closed"):
        await client.list(SERVICES.path)


async def test_qps_limit_spaces_requests(fake_api_async: FakeApi) -> None:
    loop = asyncio.get_running_loop()
    async with client_for(fake_api_async, qps=20, burst=1) as client:
        started = loop.time()
        for _ in range(5):
            await client.list(SERVICES.path)
        elapsed = loop.time() - started
    assert elapsed >= 0.18  # 4 waits of 50 ms after the single burst token
