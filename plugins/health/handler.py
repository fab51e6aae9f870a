"""health: ``/health`` answers 200 OK to any method while the process is up.

A background task requests the endpoint every second (3 s timeout) and records the latency,
CoreDNS's overload signal. On SIGTERM ``on_shutdown`` sleeps ``lameduck`` while DNS is still
served, so load balancers drain before the listeners close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp

from kdns.godur import format_go_duration
from kdns.hostport import split_host_port
from kdns.log import plugin_log
from kdns.plugin import Handler, HttpResponse, HttpRoute, Plugin
from kdns.tasks import cancel_and_wait

from .metrics import REQUEST_DURATION, REQUEST_FAILURES
from .parse import HealthConfig

log = plugin_log("health")
PATH = "/health"
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 3.0
SLOW_PROBE = 1.0
_OK = HttpResponse(200, b"OK")

# Lameduck is process-wide: several health directives share one window from the first SIGTERM.
_lameduck_started: float | None = None


def probe_url(address: str) -> str:
    """Where the self-probe connects: a wildcard bind is reached through loopback."""
    host, port = split_host_port(address)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{PATH}"


class Health(Plugin):
    name = "health"

    def __init__(self, next: Handler, cfg: HealthConfig) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.url = probe_url(cfg.address)
        self._task: asyncio.Task[None] | None = None

    def http_routes(self) -> Sequence[HttpRoute]:
        return (HttpRoute(self.cfg.address, PATH, self._handle, owner=self.name),)

    async def _handle(self) -> HttpResponse:
        return _OK

    async def start(self) -> None:
        self._task = asyncio.create_task(self._probe_loop(), name="health-probe")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def on_shutdown(self) -> None:
        global _lameduck_started
        if self.cfg.lameduck <= 0:
            return
        now = time.monotonic()
        if _lameduck_started is None:
            _lameduck_started = now
        log.info("Going into lameduck mode for %s", format_go_duration(self.cfg.lameduck))
        await asyncio.sleep(max(0.0, _lameduck_started + self.cfg.lameduck - now))

    async def _probe_loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            while True:
                await asyncio.sleep(PROBE_INTERVAL)
                await self.probe(session)

    async def probe(self, session: aiohttp.ClientSession) -> None:
        start = time.monotonic()
        try:
            async with session.get(self.url) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            REQUEST_DURATION.observe(time.monotonic() - start)
            REQUEST_FAILURES.inc()
            log.warning('Local health request to "%s" failed: %s', self.url, e or type(e).__name__)
            return
        elapsed = time.monotonic() - start
        REQUEST_DURATION.observe(elapsed)
        if elapsed > SLOW_PROBE:
            log.warning('Local health request to "%s" took more than 1s: %s', self.url,
                        format_go_duration(elapsed))
