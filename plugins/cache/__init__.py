"""cache - caches responses, success and denial separately (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Cache
from .parse import parse

NAME = "cache"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c.d, c.zones)
    server = c.server
    return lambda next: Cache(next, cfg, server)
