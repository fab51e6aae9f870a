"""HTTP side servers (health, ready, metrics): plugins declare routes, this binds them.

Routes sharing an address share one listener (CoreDNS's uniq): /health, /ready and /metrics on
different ports by default, or one port when an operator points them at the same address.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from kdns.errors import KdnsError
from kdns.plugin import HttpResponse, HttpRoute

log = logging.getLogger("kdns.core")


def split_address(address: str) -> tuple[str | None, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    return (host or None), int(port)


def _wrap(handle: Callable[[], Awaitable[HttpResponse]]) -> Callable[[web.Request],
                                                                       Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        r = await handle()
        return web.Response(status=r.status, body=r.body, headers={"Content-Type":
                                                                   r.content_type})
    return handler


class HttpSideServers:
    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []

    async def start(self, routes: Sequence[HttpRoute]) -> None:
        by_addr: dict[str, dict[str, HttpRoute]] = {}
        for r in routes:
            by_addr.setdefault(r.address, {}).setdefault(r.path, r)
        try:
            for address, paths in by_addr.items():
                app = web.Application()
                for path, route in paths.items():
                    app.router.add_route("*", path, _wrap(route.handle))
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                self._runners.append(runner)
                host, port = split_address(address)
                site = web.TCPSite(runner, host, port, reuse_address=True)
                try:
                    await site.start()
                except OSError as e:
                    raise KdnsError(f"Listen: listen tcp {address}: bind: "
                                    f"{e.strerror or e}") from None
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            try:
                await runner.cleanup()
            except Exception as e:  # pragma: no cover - best effort at shutdown
                log.warning("HTTP listener cleanup failed: %s", e)
