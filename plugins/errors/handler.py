"""errors handler: one ``[ERROR] plugin/errors: <rcode> <qname> <qtype>: <error>`` line per
failed query, or a periodic summary per ``consolidate`` pattern (CoreDNS's errors.go)."""

from __future__ import annotations

import asyncio
import traceback

import dns.message
import dns.rcode
import dns.rdatatype

from kdns.errors import KdnsError, PluginError
from kdns.godur import format_go_duration
from kdns.log import plugin_log
from kdns.plugin import Handler, Plugin, Request

from .parse import Consolidate, ErrorsConfig

log = plugin_log("errors")


class Errors(Plugin):
    name = "errors"

    def __init__(self, next: Handler, cfg: ErrorsConfig) -> None:
        super().__init__(next)
        self.cfg = cfg
        n = len(cfg.consolidate)
        self._counts = [0] * n
        self._timers: list[asyncio.TimerHandle | None] = [None] * n
        self._stopped = False

    async def serve(self, req: Request) -> dns.message.Message:
        try:
            return await self.next.serve(req)
        except KdnsError as e:
            rcode = e.rcode if isinstance(e, PluginError) else dns.rcode.SERVFAIL
            self.report(req, rcode, str(e))
            raise
        except Exception as e:
            # The server answers SERVFAIL and counts the panic; stacktrace adds the full stack.
            if self.cfg.stacktrace:
                log.error("Recovered from panic in %s %s: %r\n%s", req.qname,
                          _type_text(req.qtype), e, traceback.format_exc().rstrip())
            raise

    def report(self, req: Request, rcode: int, text: str) -> None:
        """Log one error, unless a consolidate pattern takes it (the first match wins)."""
        for i, p in enumerate(self.cfg.consolidate):
            if p.pattern.search(text):
                if self._count(i, p):
                    if p.show_first and self._counts[i] == 1:
                        log.log(p.level, "%d %s %s: %s", rcode, req.qname,
                                _type_text(req.qtype), text)
                    return
                break
        log.error("%d %s %s: %s", rcode, req.qname, _type_text(req.qtype), text)

    def _count(self, i: int, p: Consolidate) -> bool:
        if self._stopped:
            return False
        self._counts[i] += 1
        if self._counts[i] == 1:
            loop = asyncio.get_running_loop()
            self._timers[i] = loop.call_later(p.period, self._summary, i)
        return True

    def _summary(self, i: int) -> None:
        p = self.cfg.consolidate[i]
        count, self._counts[i] = self._counts[i], 0
        self._timers[i] = None
        if count > (1 if p.show_first else 0):
            log.log(p.level, "%d errors like '%s' occurred in last %s", count,
                    p.pattern.pattern, format_go_duration(p.period))

    async def stop(self) -> None:
        """Flush pending summaries now (CoreDNS does this at shutdown and on reload)."""
        self._stopped = True
        for i, timer in enumerate(self._timers):
            if timer is not None:
                timer.cancel()
                self._summary(i)


def _type_text(qtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType(qtype))
