"""ready handler against a fake App: names, latching, continuously, shutting down, log line."""

from __future__ import annotations

import logging

import dns.message
import pytest

from kdns.plugin import HttpResponse, Request
from kdns.plugins.ready.handler import Ready
from kdns.plugins.ready.parse import ReadyConfig


class FakeApp:
    corefile_path = None

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.shutting_down = False
        self.asked = 0

    def request_reload(self) -> None: ...

    def not_ready(self) -> list[str]:
        self.asked += 1
        return sorted(self.pending)

    def config_digest(self) -> str:
        return ""


class _End:
    name = "end"

    async def serve(self, req: Request) -> dns.message.Message:
        return req.reply()


async def get(r: Ready) -> HttpResponse:
    (route,) = r.http_routes()
    assert (route.address, route.path) == (r.cfg.address, "/ready")
    return await route.handle()


async def test_until_ready_latches_each_plugin(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = FakeApp()
    r = Ready(_End(), ReadyConfig(), app)
    app.pending = ["kubernetes", "etcd"]
    assert await get(r) == HttpResponse(503, b"etcd,kubernetes")
    assert 'Plugins not ready: "etcd,kubernetes"' in caplog.text
    app.pending = ["kubernetes"]
    assert await get(r) == HttpResponse(503, b"kubernetes")
    app.pending = ["etcd"]  # etcd was ready once: latched, not reported again
    assert await get(r) == HttpResponse(200, b"OK")
    app.pending = ["etcd", "kubernetes"]
    assert await get(r) == HttpResponse(200, b"OK")


async def test_continuously_asks_every_time() -> None:
    app = FakeApp()
    r = Ready(_End(), ReadyConfig(monitor="continuously"), app)
    assert await get(r) == HttpResponse(200, b"OK")
    app.pending = ["kubernetes"]
    assert await get(r) == HttpResponse(503, b"kubernetes")


async def test_shutting_down_is_503_without_asking() -> None:
    app = FakeApp()
    r = Ready(_End(), ReadyConfig(), app)
    app.shutting_down = True
    assert await get(r) == HttpResponse(503, b"Shutting down")
    assert app.asked == 0


async def test_queries_pass_through() -> None:
    r = Ready(_End(), ReadyConfig(), FakeApp())
    q = Request(dns.message.make_query("a.", "A"), ("127.0.0.1", 1), "udp")
    assert (await r.serve(q)).rcode() == 0
