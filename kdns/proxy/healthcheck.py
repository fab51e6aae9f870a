"""healthCheckNodePort servers: load balancers ask each node whether it has local endpoints
for an externalTrafficPolicy Local service (kube-proxy's pkg/proxy/healthcheck).

Each port answers any path with 200 while this node has ready local endpoints for the service
(and the proxy is healthy), 503 otherwise, with kube-proxy's JSON body and headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from kdns.errors import KdnsError
from kdns.proxy import http
from kdns.proxy.model import ServicePort

log = logging.getLogger("kdns.proxy")


@dataclass(frozen=True, slots=True)
class LocalHealth:
    namespace: str
    name: str
    local_endpoints: int


def local_health(ports: Sequence[ServicePort], node: str) -> dict[int, LocalHealth]:
    """healthCheckNodePort -> the service and its count of ready endpoints on ``node``."""
    out: dict[int, LocalHealth] = {}
    for sp in ports:
        if not sp.health_check_node_port:
            continue
        local = {e.ip for e in sp.endpoints if e.node == node and e.ready}
        seen = out.get(sp.health_check_node_port)
        count = max(len(local), seen.local_endpoints if seen else 0)  # ports share one service
        out[sp.health_check_node_port] = LocalHealth(sp.namespace, sp.name, count)
    return out


class ServiceHealthServers:
    def __init__(self, proxy_healthy: Callable[[], bool], host: str = "0.0.0.0") -> None:
        self._proxy_healthy = proxy_healthy
        self._host = host
        self._state: dict[int, LocalHealth] = {}
        self._runners: dict[int, web.AppRunner] = {}

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self._runners)

    def _app(self, port: int) -> web.Application:
        async def answer(_: web.Request) -> web.Response:
            state = self._state.get(port)
            if state is None:
                return web.Response(status=404)
            healthy = self._proxy_healthy()
            body = {"service": {"namespace": state.namespace, "name": state.name},
                    "localEndpoints": state.local_endpoints, "serviceProxyHealthy": healthy}
            ok = state.local_endpoints > 0 and healthy
            return web.Response(
                status=200 if ok else 503, text=json.dumps(body), content_type="application/json",
                headers={"X-Content-Type-Options": "nosniff",
                         "X-Load-Balancing-Endpoint-Weight": str(state.local_endpoints)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app

    async def update(self, ports: Sequence[ServicePort], node: str) -> None:
        """Serves exactly the health check ports the services ask for now."""
        self._state = local_health(ports, node)
        for port in sorted(self._runners.keys() - self._state.keys()):
            await self._runners.pop(port).cleanup()
        for port in sorted(self._state.keys() - self._runners.keys()):
            try:
                runner, _ = await http.start(self._app(port), self._host, port)
            except KdnsError as e:  # another process holds the port: keep the others going
                log.error("healthCheckNodePort of %s/%s: %s", self._state[port].namespace,
                          self._state[port].name, e)
                continue
            self._runners[port] = runner

    async def close(self) -> None:
        for runner in self._runners.values():
            await runner.cleanup()
        self._runners.clear()
