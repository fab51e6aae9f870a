"""forward handler: coalescing, max_concurrent, upstream selection, health and deadlines.

Rules:
1. One upstream query in flight per (qname, qtype, qclass, DO, CD, RD); identical queries wait on
   it (RFC 5452 birthday defence). ``max_concurrent`` bounds these flights; beyond it REFUSED.
2. A flight tries upstreams in policy order, each for at most ``try_timeout`` (2 s), all within
   ``deadline`` (5 s, CoreDNS's defaultTimeout); the client never waits longer. At most
   ``max_connect_attempts`` tries (default 2 x upstreams, CoreDNS 1.14.7), so upstreams that
   fail fast (ICMP unreachable, RST) are never hammered in a loop (coredns#7723).
3. An upstream is down when its consecutive failures (failed exchanges and failed probes) exceed
   ``max_fails``; a probe (``. IN NS``) runs every ``health_check`` interval until one succeeds.
4. When every upstream is down: ``failfast_all_unhealthy_upstreams`` answers SERVFAIL at once;
   otherwise one random upstream is tried (CoreDNS's escape hatch for broken health checks), but
   only by one query at a time — the others get SERVFAIL at once instead of waiting 2 s.
5. A UDP reply with TC=1 is retried over TCP to the same upstream.
6. The ``loop`` plugin may mark upstreams as looping; they are never used again (SERVFAIL fast).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode

from kdns.errors import PluginError, UpstreamError, UpstreamTimeout
from kdns.log import plugin_log
from kdns.metrics import rcode_label
from kdns.plugin import Handler, Plugin, Request, in_zones

from .metrics import (
    HEALTHCHECK_BROKEN,
    HEALTHCHECK_FAILURES,
    MAX_CONCURRENT_REJECTS,
    REQUEST_DURATION,
)
from .parse import ForwardConfig, Upstream
from .policy import Policy
from .transport import NetTransport, Transport
from .wire import build_query, with_random_id

DEADLINE = 5.0
PROBE_TIMEOUT = 1.0
STOP_WAIT = 4.0  # below the server's 5 s grace for stop()

log = plugin_log("forward")
FlightKey = tuple[str, int, int, bool, bool, bool]


@dataclass(slots=True, eq=False)
class UpstreamState:
    upstream: Upstream
    fails: int = 0
    looped: bool = False
    probe: asyncio.Task[None] | None = None

    def down(self, max_fails: int) -> bool:
        return max_fails > 0 and self.fails > max_fails


@dataclass(slots=True, eq=False)
class Flight:
    qname: str
    future: asyncio.Future[dns.message.Message]
    sent_to: set[int] = field(default_factory=set)


class Forward(Plugin):
    name = "forward"

    def __init__(self, next: Handler, cfg: ForwardConfig, transport: Transport | None = None,
                 *, deadline: float = DEADLINE, try_timeout: float | None = None,
                 probe_timeout: float = PROBE_TIMEOUT, policy: Policy | None = None) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.transport: Transport = transport or NetTransport(
            cfg.expire, max_idle=cfg.max_idle_conns, max_age=cfg.max_age,
            source=cfg.source_address)
        self.deadline = deadline
        self.try_timeout = cfg.read_timeout if try_timeout is None else try_timeout
        self.probe_timeout = probe_timeout
        self.states = [UpstreamState(u) for u in cfg.upstreams]
        self.policy = policy or Policy(cfg.policy, len(self.states))
        self.flights: dict[FlightKey, Flight] = {}
        self.halted = ""  # set by loop detection: the SERVFAIL message
        self._canary_busy = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._probe_query = build_query(dns.name.from_text(cfg.hc_domain), 2, 1,
                                        rd=cfg.hc_recursion)
        self._check_health = cfg.max_fails > 0 and cfg.hc_interval > 0
        # Without probes nothing could bring a down upstream back: then nothing is ever down.
        self._max_fails = cfg.max_fails if self._check_health else 0

    # --- chain --------------------------------------------------------------------------
    def match(self, qname: str) -> bool:
        """CoreDNS's match + isAllowedDomain: inside FROM and not excepted (FROM itself always)."""
        if in_zones(qname, (self.cfg.from_zone,)) is None:
            return False
        if qname == self.cfg.from_zone:
            return True
        return in_zones(qname, self.cfg.except_zones) is None

    async def serve(self, req: Request) -> dns.message.Message:
        if not self.match(req.qname):
            return await self.next.serve(req)
        if self.halted:
            raise PluginError(self.halted)
        rd = bool(req.msg.flags & dns.flags.RD)
        key: FlightKey = (req.qname, req.qtype, req.qclass, req.do, req.cd, rd)
        flight = self.flights.get(key)
        if flight is None:
            limit = self.cfg.max_concurrent
            if limit and len(self.flights) >= limit:
                MAX_CONCURRENT_REJECTS.inc()
                raise PluginError(f"concurrent queries exceeded maximum {limit}",
                                  dns.rcode.REFUSED)
            flight = self._start_flight(key, req, rd)
        try:
            reply = await asyncio.shield(flight.future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our own client's task is being cancelled
            raise PluginError("forwarding stopped (reload or shutdown)") from None
        if reply.rcode() in self.cfg.next_rcodes:
            return await self.next.serve(req)
        return client_reply(req, reply, self.name)

    def _start_flight(self, key: FlightKey, req: Request, rd: bool) -> Flight:
        loop = asyncio.get_running_loop()
        flight = Flight(req.qname, loop.create_future())
        query = build_query(req.name, req.qtype, req.qclass, rd=rd, cd=req.cd, do=req.do)
        proto = "tcp" if self.cfg.force_tcp else "udp" if self.cfg.prefer_udp else req.proto
        self.flights[key] = flight
        task = loop.create_task(self._resolve(query, proto, flight))

        def finish(t: asyncio.Task[dns.message.Message]) -> None:
            if self.flights.get(key) is flight:
                del self.flights[key]
            if t.cancelled():
                flight.future.cancel()
            elif (exc := t.exception()) is not None:
                flight.future.set_exception(exc)
                flight.future.exception()  # mark retrieved: waiters may all be gone
            else:
                flight.future.set_result(t.result())

        task.add_done_callback(finish)
        self._own(task)
        return flight

    # --- the attempt loop ---------------------------------------------------------------
    async def _resolve(self, query: bytes, proto: str, flight: Flight) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        order = self.policy.order()
        n = len(order)
        i = fails = attempts = 0
        last_err: PluginError | None = None
        while (now := loop.time()) < deadline:
            if i >= n:
                i = fails = 0
            idx = order[i]
            i += 1
            st = self.states[idx]
            canary = False
            if st.looped or st.down(self._max_fails):
                fails += 1
                if fails < n:
                    continue
                idx = self._all_down()
                st, canary = self.states[idx], True
            cap = self.cfg.max_connect_attempts or 2 * n  # CoreDNS 1.14.7's default
            if attempts >= cap:
                break
            attempts += 1
            flight.sent_to.add(idx)
            timeout = min(self.try_timeout, deadline - now)
            try:
                if canary:
                    self._canary_busy = True
                msg = await self._exchange(st, query, proto, timeout)
            except UpstreamError as e:
                last_err = e
                if not isinstance(e, UpstreamTimeout) or timeout >= self.try_timeout:
                    self._failed(st)
                if fails < n:
                    continue
                break
            finally:
                if canary:
                    self._canary_busy = False
            st.fails = 0
            if msg.rcode() in self.cfg.failover_rcodes and i < n:
                continue
            return msg
        if last_err is not None:
            raise last_err
        raise UpstreamTimeout("no upstream answered before the deadline")

    def _all_down(self) -> int:
        """Every upstream is down or looping: the index to try anyway, or raise SERVFAIL."""
        HEALTHCHECK_BROKEN.inc()
        usable = [i for i, s in enumerate(self.states) if not s.looped]
        if not usable:
            raise PluginError(self.halted or "all upstreams loop back to this server")
        if self.cfg.failfast_all_unhealthy or self._canary_busy:
            raise PluginError("no healthy proxies")
        return self.policy.pick(usable)

    async def _exchange(self, st: UpstreamState, query: bytes, proto: str,
                        timeout: float) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        start = loop.time()
        msg = await self.transport.exchange(st.upstream, with_random_id(query), proto, timeout)
        if msg.flags & dns.flags.TC and proto == "udp":
            remaining = max(timeout - (loop.time() - start), 0.001)
            msg = await self.transport.exchange(st.upstream, with_random_id(query), "tcp",
                                                remaining)
        REQUEST_DURATION.labels("forward", st.upstream.label,
                                rcode_label(msg.rcode())).observe(loop.time() - start)
        return msg

    # --- health -------------------------------------------------------------------------
    def _failed(self, st: UpstreamState) -> None:
        st.fails += 1
        if self._check_health and st.probe is None:
            st.probe = asyncio.get_running_loop().create_task(self._probe(st))
            self._own(st.probe)

    async def _probe(self, st: UpstreamState) -> None:
        proto = "tcp" if self.cfg.force_tcp else "udp"
        try:
            while True:
                try:
                    await self.transport.exchange(st.upstream, with_random_id(self._probe_query),
                                                  proto, self.probe_timeout)
                except UpstreamError:
                    st.fails += 1
                    HEALTHCHECK_FAILURES.labels("forward", st.upstream.label).inc()
                else:
                    st.fails = 0  # any reply, whatever its rcode, means the upstream is alive
                    return
                await asyncio.sleep(self.cfg.hc_interval)
        finally:
            st.probe = None

    # --- loop plugin hook ---------------------------------------------------------------
    def loop_detected(self, qname: str) -> list[str]:
        """Stop using the upstreams that carried ``qname`` (all if unknown); their labels."""
        sent: set[int] = set()
        for flight in self.flights.values():
            if flight.qname == qname:
                sent |= flight.sent_to
        targets = sent or set(range(len(self.states)))
        for i in targets:
            self.states[i].looped = True
        labels = [self.states[i].upstream.label for i in sorted(targets)]
        if all(s.looped for s in self.states):
            self.halted = (f"forwarding disabled: loop detected via {', '.join(labels)} "
                           "(see plugin/loop)")
        return labels

    # --- lifecycle ----------------------------------------------------------------------
    def _own(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Let queries in flight finish (bounded: the server waits GRACE for us), then close."""
        for st in self.states:
            if st.probe is not None:
                st.probe.cancel()
        flights = [f.future for f in self.flights.values()]
        if flights:
            await asyncio.wait(flights, timeout=min(self.deadline, STOP_WAIT))
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        await self.transport.close()


def client_reply(req: Request, up: dns.message.Message, by: str) -> dns.message.Message:
    """The client's answer: its ID, question and EDNS; the upstream's rcode, flags and records.

    The upstream message may be shared by coalesced clients, so its RRsets are referenced,
    never modified.
    """
    rcode = up.rcode()
    if rcode > 15 and not req.edns:
        rcode = dns.rcode.SERVFAIL
    r = req.reply(rcode, by=by)
    r.flags |= up.flags & (dns.flags.AA | dns.flags.RA)
    if req.do or req.msg.flags & dns.flags.AD:
        r.flags |= up.flags & dns.flags.AD
    r.answer = up.answer
    r.authority = up.authority
    r.additional = up.additional
    return r
