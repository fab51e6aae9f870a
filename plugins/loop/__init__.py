"""loop - detects forwarding loops and disables the looping upstreams (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Loop

NAME = "loop"


def setup(c: Controller) -> PluginFactory:
    c.d.args(max=0)
    if c.d.has_block():
        raise c.d.arg_err()
    zone, port, server = c.zones[0], c.port, c.server
    return lambda next: Loop(next, zone=zone, port=port, server=server)
