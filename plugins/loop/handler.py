"""loop handler: CoreDNS's self-probe, but a detected loop disables forwarding instead of exiting.

At start a task sends ``HINFO <rand63>.<rand63>.<zone>`` (both labels from ``secrets``) to this
server's own listener on 127.0.0.1, retrying once a second for up to 30 s until a reply arrives.
Every sighting of that exact query is counted; as the probe's own arrivals are known (we sent
them), one arrival more than we sent means the query came back through an upstream: a loop.
Then the forward plugins after this one are told (``loop_detected``), which stop using the
upstreams that carried the probe; the looped copy gets SERVFAIL at once; the error is logged once
and ``kdns_loop_detected`` is set. The process keeps running and serving every other name.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import dns.message
import dns.name
import dns.rdatatype

from kdns.errors import PluginError, UpstreamError
from kdns.log import plugin_log
from kdns.plugin import Handler, Plugin, Request

from ..forward.parse import Upstream
from ..forward.transport import NetTransport
from ..forward.wire import build_query, with_random_id
from .metrics import LOOP_DETECTED

PROBE_WINDOW = 30.0  # CoreDNS: probe for up to 30 s
PROBE_TIMEOUT = 1.0
DISARM_AFTER_REPLY = 2.0  # CoreDNS: stop watching 2 s after the probe got any reply

log = plugin_log("loop")


def probe_name(zone: str) -> str:
    """``<rand63>.<rand63>.<zone>``: 126 bits from the OS CSPRNG, unguessable by a client."""
    labels = f"{secrets.randbits(63)}.{secrets.randbits(63)}"
    return f"{labels}." if zone == "." else f"{labels}.{zone}"


class Loop(Plugin):
    name = "loop"

    def __init__(self, next: Handler, *, zone: str, port: int, server: str,
                 host: str = "127.0.0.1") -> None:
        super().__init__(next)
        self.zone = zone
        self.port = port
        self.server = server
        self.host = host
        self.qname = probe_name(zone)
        self.sent = 0
        self.seen = 0
        self.armed = True
        self.detected = False
        self._task: asyncio.Task[None] | None = None

    async def serve(self, req: Request) -> dns.message.Message:
        if req.qname == self.qname and req.qtype == dns.rdatatype.HINFO:
            if self.armed:
                self.seen += 1
                if self.seen > self.sent:
                    self._loop_found(req)
            if self.detected:
                raise PluginError(f'loop detected for zone "{self.zone}": '
                                  "not forwarding the probe again")
        return await self.next.serve(req)

    def _loop_found(self, req: Request) -> None:
        if self.detected:
            return
        self.detected = True
        disabled: list[str] = []
        handler: object = self.next
        while handler is not None:
            hook = getattr(handler, "loop_detected", None)
            if hook is not None:
                disabled += hook(self.qname)
            handler = getattr(handler, "next", None)
        LOOP_DETECTED.labels(self.server, self.zone).set(1)
        client = f"{req.client[0]}:{req.client[1]}"
        what = f"forwarding to {', '.join(disabled)} disabled" if disabled else \
            "no forward plugin to disable"
        log.error('Loop (%s -> :%d) detected for zone "%s", see '
                  "https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO %s\"; %s; "
                  "other names are still served", client, self.port, self.zone, self.qname, what)

    async def start(self) -> None:
        LOOP_DETECTED.labels(self.server, self.zone).set(0)
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        transport = NetTransport(metrics=False)  # the probe is not forwarding traffic
        target = Upstream(self.host, self.port)
        query = build_query(dns.name.from_text(self.qname), dns.rdatatype.HINFO, 1)
        give_up = time.monotonic() + PROBE_WINDOW
        try:
            while time.monotonic() < give_up and not self.detected:
                self.sent += 1
                started = time.monotonic()
                try:
                    await transport.exchange(target, with_random_id(query), "udp", PROBE_TIMEOUT)
                    break
                except UpstreamError:
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            await asyncio.sleep(DISARM_AFTER_REPLY)
        finally:
            self.armed = False
            await transport.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
