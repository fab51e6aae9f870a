"""/healthz (and /livez) and /metrics over aiohttp, like kube-proxy's two endpoints.

/healthz answers 200 while no change has waited longer than the health timeout to be applied,
503 otherwise, with kube-proxy's JSON body (lastUpdated, currentTime, nodeHealthy).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import prometheus_client
from aiohttp import web

from kdns.errors import KdnsError
from kdns.proxy.syncer import Syncer


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def health_app(syncer: Syncer, *, with_metrics: bool = False) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        healthy = syncer.healthy()
        last = syncer.last_success
        wall_last = None if last is None else time.time() - (time.monotonic() - last)
        body = {"lastUpdated": _iso(wall_last), "currentTime": _iso(time.time()),
                "nodeHealthy": healthy}
        return web.Response(status=200 if healthy else 503, text=json.dumps(body),
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    if with_metrics:
        app.router.add_get("/metrics", metrics_handler)
    return app


async def metrics_handler(_: web.Request) -> web.Response:
    body = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


def metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    return app


class ListenError(KdnsError):
    """Cannot listen on the requested address."""


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serves ``app``; returns the runner (to clean up) and the bound port (port 0 works)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise ListenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
