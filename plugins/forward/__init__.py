"""forward - proxies queries to upstream resolvers (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Forward
from .parse import parse

NAME = "forward"
REPEATABLE = True


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c.d)
    return lambda next: Forward(next, cfg)
