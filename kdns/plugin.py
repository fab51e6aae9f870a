"""The plugin protocol: Request in, response message out (CoreDNS's Handler, sans-IO).

A plugin is built by ``setup(c: Controller) -> PluginFactory`` and wraps the next handler, exactly
like CoreDNS's ``type Plugin func(Handler) Handler``. Handlers return a response; nothing is
written to a socket until the whole chain has returned. Optional hooks (start/stop, on_shutdown,
ready, http_routes) are owned and called by the server.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kdns.wire.fastpath import Tally, Version
from kdns.wire.message import opt_rrset

if TYPE_CHECKING:
    from kdns.corefile.dispenser import Dispenser

# Our advertised EDNS payload and the cap on UDP answers (DNS flag day 2020).
DEFAULT_EDNS_PAYLOAD = 1232


class Request:
    """One query as the chain sees it: the parsed message plus where it came from."""

    __slots__ = (
        "answered_by", "cd", "client", "do", "dropped", "edns", "local", "memo_countdown",
        "memo_deps",
        "memo_rotate", "memo_tallies", "memo_until", "msg", "no_memo", "on_reply", "proto",
        "qclass", "qname", "qtype", "server", "size", "udp_size", "zone",
    )

    def __init__(
        self,
        msg: dns.message.Message,
        client: tuple[str, int],
        proto: str,
        *,
        local: tuple[str, int] = ("", 0),
        server: str = "",
        size: int = 0,
        udp_size: int = DEFAULT_EDNS_PAYLOAD,
    ) -> None:
        self.msg = msg
        q = msg.question[0]
        self.qname: str = q.name.to_text().lower()  # cached lower-cased qname, as CoreDNS's
        self.qtype: dns.rdatatype.RdataType = q.rdtype
        self.qclass: dns.rdataclass.RdataClass = q.rdclass
        self.client = client
        self.local = local
        self.proto = proto
        self.server = server
        self.zone = "."
        self.size = size
        self.edns = msg.edns >= 0
        self.do = bool(msg.ednsflags & dns.flags.DO)
        self.cd = bool(msg.flags & dns.flags.CD)
        self.udp_size = udp_size
        self.answered_by = ""
        # Called by the server with the final reply and its wire bytes, after rendering (so
        # after truncation and for error replies too), e.g. for query logging. One consumer.
        self.on_reply: Callable[[dns.message.Message, bytes], None] | None = None
        # Reuse of this answer by the fast path (kdns/wire/fastpath.py): plugins opt in with
        # reusable(); any plugin that must see every query (or varies its answer) opts out.
        self.memo_deps: list[tuple[Version, int]] | None = None
        self.memo_until = math.inf
        self.memo_rotate = False
        self.memo_countdown: tuple[float, int] | None = None
        self.memo_tallies: tuple[Tally, ...] = ()
        self.no_memo = False
        self.dropped = False

    def reusable(self, *versions: Version, until: float = math.inf) -> None:
        """Declare that this answer may be replayed while ``versions`` are unchanged and the
        monotonic clock is before ``until`` (cache TTLs count down)."""
        deps = self.memo_deps if self.memo_deps is not None else []
        deps += [(v, v.n) for v in versions]
        self.memo_deps = deps
        self.memo_until = min(self.memo_until, until)

    def ttl_counts_down(self, since: float, ttl: int) -> None:
        """Every TTL in this answer is ``ttl - floor(now - since)`` at monotonic time ``now``
        (a cache hit): replay patches the TTLs instead of serving them frozen."""
        self.memo_countdown = (since, ttl)

    def count_replays(self, *tallies: Tally) -> None:
        """Each replay of this answer adds 1 to ``tallies`` (the plugin's metrics for a query it
        did not see, e.g. cache hits; the plugin adds them in at scrape time)."""
        self.memo_tallies += tallies

    def reuse_mark(self) -> tuple[object, ...]:
        """What has been declared about reuse so far (see ``reuse_reset``)."""
        return (self.memo_deps, self.memo_until, self.memo_rotate, self.memo_countdown,
                self.memo_tallies, self.no_memo)

    def reuse_reset(self, mark: tuple[object, ...]) -> None:
        """Forget what later plugins declared after ``reuse_mark``: for a plugin that answers
        the next identical query itself (cache), so their opt-ins and opt-outs no longer
        apply; what the plugins before it declared is kept."""
        deps, until, rotate, countdown, tallies, no_memo = mark
        self.memo_deps = list(deps) if isinstance(deps, list) else None
        self.memo_until = float(until)  # type: ignore[arg-type]
        self.memo_rotate = bool(rotate)
        self.memo_countdown = countdown  # type: ignore[assignment]
        self.memo_tallies = tallies  # type: ignore[assignment]
        self.no_memo = bool(no_memo)

    def not_reusable(self) -> None:
        """This answer (or this query's side effects, e.g. a log line) must not be replayed."""
        self.no_memo = True

    def drop(self) -> None:
        """Send the client nothing at all (acl's ``drop``, CoreDNS's "no client write"): the
        server discards whatever the chain returns, and the silence is never replayed."""
        self.dropped = True
        self.no_memo = True

    def rotating(self) -> None:
        """The answer's records rotate on every query (loadbalance); replay must rotate too."""
        self.memo_rotate = True

    @property
    def name(self) -> dns.name.Name:
        """The query name exactly as the client spelled it (0x20 case kept)."""
        name: dns.name.Name = self.msg.question[0].name
        return name

    @property
    def max_size(self) -> int:
        """The largest answer the client can take over this transport."""
        return 65535 if self.proto == "tcp" else self.udp_size

    def reply(self, rcode: int = dns.rcode.NOERROR, *, aa: bool = False,
              by: str = "") -> dns.message.Message:
        """A response to this query: ID, question (as sent), RD and CD copied, EDNS mirrored."""
        q = self.msg
        r = dns.message.Message(id=q.id)
        r.flags = dns.flags.QR | (q.flags & (dns.flags.RD | dns.flags.CD))
        if aa:
            r.flags |= dns.flags.AA
        r.question = [dns.rrset.RRset(q.question[0].name, self.qclass, self.qtype)]
        if self.edns:
            r.opt = opt_rrset(dns.flags.DO if self.do else 0, DEFAULT_EDNS_PAYLOAD)
        r.set_rcode(dns.rcode.Rcode(rcode))
        if by:
            self.answered_by = by
        return r


class Handler(Protocol):
    """What every link of the chain is: a name and ``serve``."""

    @property
    def name(self) -> str: ...

    async def serve(self, req: Request) -> dns.message.Message: ...


PluginFactory = Callable[[Handler], Handler]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """An HTTP endpoint a plugin asks the server to expose (plugins never bind sockets)."""

    address: str  # "host:port", host may be empty for all addresses
    path: str
    handle: Callable[[], Awaitable[HttpResponse]]
    owner: str = ""


class App(Protocol):
    """Process-wide services the server offers to plugins."""

    corefile_path: str | None

    @property
    def shutting_down(self) -> bool: ...

    def request_reload(self) -> None: ...

    def not_ready(self) -> list[str]: ...

    def config_digest(self) -> str: ...


@dataclass(slots=True)
class Controller:
    """What ``setup`` gets: the directive's tokens and the context of its server block."""

    d: Dispenser
    zones: tuple[str, ...]  # the block's zones, lower-case and fully qualified
    server: str  # metrics label, e.g. "dns://:53"
    app: App
    port: int = 53


class Plugin:
    """Convenience base: pass-through ``serve`` and no-op lifecycle hooks."""

    name: ClassVar[str] = ""

    def __init__(self, next: Handler) -> None:
        self.next = next

    async def serve(self, req: Request) -> dns.message.Message:
        return await self.next.serve(req)

    async def start(self) -> None:
        """Start background work (watches, health checks); called once the chain is built."""

    async def stop(self) -> None:
        """Stop background work; called after the listeners stop or on reload."""

    async def on_shutdown(self) -> None:
        """Called on SIGTERM while DNS is still served (health's lameduck sleeps here)."""

    def ready(self) -> bool | None:
        """True/False when the plugin reports readiness; None when it does not."""
        return None

    def http_routes(self) -> Sequence[HttpRoute]:
        return ()


def in_zones(qname: str, zones: Sequence[str]) -> str | None:
    """The longest of ``zones`` that ``qname`` (lower-case, fqdn) falls in, or None."""
    best: str | None = None
    for z in zones:
        if (z == "." or qname == z or qname.endswith("." + z)) and (
            best is None or len(z) > len(best)
        ):
            best = z
    return best
