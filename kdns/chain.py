"""Server blocks -> listeners with a zone table of plugin chains (CoreDNS's dnsserver).

Each block's plugins are instantiated in plugin.cfg order (repeats keep Corefile order inside their
slot) and linked back to front, the earliest name outermost. Blocks sharing ``scheme://:port``
share one listener; a query goes to the longest matching zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.message
import dns.rcode

from kdns.corefile.address import ZoneAddress, parse_key
from kdns.corefile.dispenser import Dispenser
from kdns.corefile.lexer import Token
from kdns.corefile.parser import Directive, ServerBlock
from kdns.errors import CorefileError, PluginError
from kdns.plugin import App, Controller, Handler, Request
from kdns.registry import Registry


class EndOfChain:
    """What the last plugin calls when it passes a query on: SERVFAIL, as CoreDNS does."""

    name = "end"

    def __init__(self, last: str) -> None:
        self.last = last

    async def serve(self, req: Request) -> dns.message.Message:
        raise PluginError(f"plugin/{self.last}: no next plugin found", dns.rcode.SERVFAIL)


@dataclass(slots=True)
class Chain:
    """One server block's chain, shared by all its zones."""

    zones: tuple[str, ...]
    handler: Handler | None  # None: the block has no plugins (answers REFUSED)
    plugins: list[Handler] = field(default_factory=list)  # outermost first
    names: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Listener:
    scheme: str
    port: int
    host: str = ""
    zones: dict[str, Chain] = field(default_factory=dict)

    @property
    def server_label(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def route(self, qname: str) -> tuple[str, Chain] | None:
        """Longest matching zone for a lower-case fqdn; '.' is the catch-all."""
        zones = self.zones
        name = qname
        while True:
            chain = zones.get(name)
            if chain is not None:
                return name, chain
            if name == ".":
                return None
            name = name.split(".", 1)[1] or "."


def build(blocks: list[ServerBlock], default_port: int, app: App,
          registry: Registry | None = None) -> list[Listener]:
    """Validate every directive and build every chain; raises CorefileError with file:line."""
    registry = registry or Registry()
    listeners: dict[tuple[str, int], Listener] = {}
    for block in blocks:
        if not block.keys:
            continue
        addrs: list[ZoneAddress] = []
        for key in block.keys:
            addrs += parse_key(key, default_port)
        chain = _build_chain(block, addrs, app, registry)
        for addr, key in zip(addrs, _key_tokens(block, addrs, default_port), strict=True):
            lst = listeners.setdefault((addr.scheme, addr.port), Listener(addr.scheme, addr.port))
            if addr.zone in lst.zones:
                raise CorefileError(
                    f"{key.file}:{key.line} - cannot serve {addr} - it is already defined"
                )
            lst.zones[addr.zone] = chain
    return list(listeners.values())


def _key_tokens(block: ServerBlock, addrs: list[ZoneAddress], port: int) -> list[Token]:
    toks: list[Token] = []
    for key in block.keys:
        toks += [key] * len(parse_key(key, port))
    return toks


def _build_chain(block: ServerBlock, addrs: list[ZoneAddress], app: App,
                 registry: Registry) -> Chain:
    zones = tuple(dict.fromkeys(a.zone for a in addrs))
    first = addrs[0]
    server = f"{first.scheme}://:{first.port}"
    for d in block.directives:
        t = d.token
        if not registry.known(d.name):
            raise CorefileError(f"{t.file}:{t.line} - Error during parsing: "
                                f"Unknown directive '{d.name}'")
        if not registry.implemented(d.name):
            raise CorefileError(f"plugin/{d.name}: {t.file}:{t.line} - Error during parsing: "
                                f"plugin '{d.name}' is not implemented in kdns")
    ordered = sorted(block.directives, key=lambda d: registry.rank(d.name))
    factories = []
    seen: dict[str, Directive] = {}
    for d in ordered:
        spec = registry.spec(d.name)
        if d.name in seen and not spec.repeatable:
            t = d.token
            raise CorefileError(f"plugin/{d.name}: {t.file}:{t.line} - Error during parsing: "
                                "this plugin can only be used once per Server Block")
        seen[d.name] = d
        c = Controller(Dispenser(d), zones, server, app, first.port)
        factories.append((d.name, spec.setup(c)))
    if not factories:
        return Chain(zones, None)
    handler: Handler = EndOfChain(factories[-1][0])
    plugins: list[Handler] = []
    for _, factory in reversed(factories):
        handler = factory(handler)
        plugins.append(handler)
    plugins.reverse()
    return Chain(zones, handler, plugins, [n for n, _ in factories])
