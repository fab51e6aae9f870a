"""/healthz, /livez and /metrics handlers on 127.0.0.1:0 (no root)."""

from __future__ import annotations

import json

import aiohttp

from kdns.proxy import http
from tests.proxy.test_syncer import make


async def test_healthz_follows_the_syncer_and_metrics_can_share_the_port() -> None:
    syncer, nft, _, clock = make([])
    runner, port = await http.start(http.health_app(syncer, with_metrics=True), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            async with session.get(f"{base}/healthz") as r:
                body = json.loads(await r.text())
                assert r.status == 200 and body["nodeHealthy"] is True
                assert body["lastUpdated"] == ""  # nothing synced yet, but not overdue either
            nft.fail.append(True)
            assert not await syncer.sync()
            clock.now += 61  # the failed change has now waited longer than the health timeout
            async with session.get(f"{base}/livez") as r:
                assert r.status == 503 and json.loads(await r.text())["nodeHealthy"] is False
            assert await syncer.sync()
            async with session.get(f"{base}/healthz") as r:
                body = json.loads(await r.text())
                assert r.status == 200 and body["lastUpdated"]
            async with session.get(f"{base}/metrics") as r:
                text = await r.text()
                assert r.status == 200 and "kubeproxy_sync_proxy_rules_duration_seconds" in text
    finally:
        await runner.cleanup()


async def test_busy_address_is_a_listen_error() -> None:
    runner, port = await http.start(http.metrics_app(), "127.0.0.1", 0)
    try:
        try:
            await http.start(http.metrics_app(), "127.0.0.1", port)
        except http.ListenError as e:
            assert f"127.0.0.1:{port}" in str(e)
        else:
            raise AssertionError("a second listener on a busy port must fail")
    finally:
        await runner.cleanup()
