"""ready: 200 ``OK`` when nothing is pending, else 503 with the sorted, comma-separated names.

The server knows which plugins report readiness (``App.not_ready()``); in ``until-ready`` mode a
plugin that was ready once is never asked again (CoreDNS's list.go). From SIGTERM on the answer
is 503 ``Shutting down`` so that traffic drains during health's lameduck.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from kdns.log import plugin_log
from kdns.plugin import App, Handler, HttpResponse, HttpRoute, Plugin

from .parse import ReadyConfig

log = plugin_log("ready")
PATH = "/ready"


class Ready(Plugin):
    name = "ready"

    def __init__(self, next: Handler, cfg: ReadyConfig, app: App) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.app = app
        self._pending: set[str] | None = None  # until-ready: names not yet seen ready

    def http_routes(self) -> Sequence[HttpRoute]:
        return (HttpRoute(self.cfg.address, PATH, self._handle, owner=self.name),)

    def not_ready(self) -> list[str]:
        current = set(self.app.not_ready())
        if self.cfg.monitor == "continuously":
            return sorted(current)
        self._pending = current if self._pending is None else self._pending & current
        return sorted(self._pending)

    async def _handle(self) -> HttpResponse:
        if self.app.shutting_down:
            return HttpResponse(503, b"Shutting down")
        names = self.not_ready()
        if not names:
            return HttpResponse(200, b"OK")
        text = ",".join(names)
        log.info("Plugins not ready: %s", json.dumps(text))
        return HttpResponse(503, text.encode())
