"""any - answers qtype ANY with a single HINFO record, per RFC 8482 (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Any

NAME = "any"


def setup(c: Controller) -> PluginFactory:
    c.d.args(max=0)
    if c.d.has_block():
        raise c.d.err("the any plugin takes no options")
    return lambda next: Any(next)
