"""acl handler: the first matching policy of the first rule that decides wins (CoreDNS acl.go).

Repeated ``acl`` directives of one server block are, in CoreDNS, one handler with several rules:
an ``allow`` ends the evaluation. kdns builds one Acl per directive, so the first Acl of a run
evaluates the rules of the Acls right after it and passes an allowed query past all of them.

A decision that depends on the client's address must never be replayed by the fast path (whose
key is the query alone), so a rule restricting by source marks every query it evaluates
``not_reusable``; cache comes after acl, so a blocked client never reaches a cached answer.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Final

import dns.edns
import dns.message
import dns.rcode

from kdns import metrics as server_metrics
from kdns.plugin import Handler, Plugin, Request, in_zones
from kdns.wire.fastpath import Tally

from .metrics import ALLOWED, BLOCKED, DROPPED, FILTERED
from .parse import Action, Rule

log = logging.getLogger("kdns.plugin.acl")

# RFC 8914 codes CoreDNS attaches (acl.go): Blocked for block, Filtered for filter.
EDE_BLOCK: Final = dns.edns.EDECode.BLOCKED
EDE_FILTER: Final = dns.edns.EDECode.FILTERED

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def client_ip(host: str) -> Address | None:
    """The client's address (an IPv6 zone suffix dropped); None when it does not parse."""
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


class Acl(Plugin):
    name = "acl"

    def __init__(self, next: Handler, rule: Rule, server: str) -> None:
        super().__init__(next)
        self.rule = rule
        self.server = server
        self.allowed = ALLOWED.labels(server, "")
        # Allowed queries whose answer the fast path replays (rules that ignore the source).
        self.replays = Tally()
        self._replays_counted = 0

    async def serve(self, req: Request) -> dns.message.Message:
        h: Handler = self
        while isinstance(h, Acl):
            verdict = h.verdict(req)
            if verdict is None:
                h = h.next
                continue
            action, zone = verdict
            if action is not Action.ALLOW:
                return self.deny(req, action, zone)
            while isinstance(h, Acl):
                h = h.next
        self.allowed.inc()
        req.count_replays(self.replays)
        return await h.serve(req)

    def verdict(self, req: Request) -> tuple[Action, str] | None:
        """This rule's decision and the zone it matched, or None when it has none."""
        zone = in_zones(req.qname, self.rule.zones)
        if zone is None:
            return None
        if self.rule.by_source:
            req.not_reusable()
        ip = client_ip(req.client[0])
        if ip is None:
            log.error("Blocking request. Unable to parse source address: %r", req.client[0])
            return Action.BLOCK, zone
        for p in self.rule.policies:
            if p.qtypes is not None and req.qtype not in p.qtypes:
                continue
            if any(ip in net for net in p.nets):
                return p.action, zone
        return None

    def deny(self, req: Request, action: Action, zone: str) -> dns.message.Message:
        if action is Action.DROP:
            DROPPED.labels(self.server, zone, "").inc()
            req.drop()
            return req.reply(by=self.name)
        if action is Action.BLOCK:
            BLOCKED.labels(self.server, zone, "").inc()
            r = req.reply(dns.rcode.REFUSED, by=self.name)
            code = EDE_BLOCK
        else:
            FILTERED.labels(self.server, zone, "").inc()
            r = req.reply(by=self.name)
            code = EDE_FILTER
        if req.edns:  # CoreDNS adds an OPT even when the query had none; RFC 6891 forbids it
            r.use_edns(0, r.ednsflags, r.payload, options=[dns.edns.EDEOption(code)])
        return r

    def count_replays(self) -> None:
        """Add the fast path's replays of allowed answers to the counter (before a scrape)."""
        new = self.replays.n - self._replays_counted
        if new:
            self._replays_counted = self.replays.n
            self.allowed.inc(new)

    async def start(self) -> None:
        server_metrics.on_scrape(self.count_replays)

    async def stop(self) -> None:
        self.count_replays()
        server_metrics.remove_scrape_hook(self.count_replays)
