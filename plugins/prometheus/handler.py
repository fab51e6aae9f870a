"""prometheus: serves the process-wide default registry as text exposition format 0.0.4
(what CoreDNS serves and every Prometheus accepts).

The server counts coredns_dns_* itself (kdns/metrics.py) for every query that enters a chain, so
the handler only passes queries on; it stays in the chain so that ``coredns_plugin_enabled``
lists it, as CoreDNS does. Every address exposes every metric (one global registry).
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from kdns.metrics import exposition, register_server_stats
from kdns.plugin import Handler, HttpResponse, HttpRoute, Plugin

from .parse import PrometheusConfig

PATH = "/metrics"


class Prometheus(Plugin):
    name = "prometheus"

    def __init__(self, next: Handler, cfg: PrometheusConfig) -> None:
        super().__init__(next)
        self.cfg = cfg

    def http_routes(self) -> Sequence[HttpRoute]:
        return (HttpRoute(self.cfg.address, PATH, self._handle, owner=self.name),)

    async def start(self) -> None:
        register_server_stats()  # idempotent; the server registers it too

    async def _handle(self) -> HttpResponse:
        body = exposition()  # with -workers: the sum over every process
        return HttpResponse(200, body, CONTENT_TYPE_PLAIN_0_0_4)
