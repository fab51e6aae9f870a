"""log - query logging to standard output in CoreDNS's formats (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Log
from .parse import parse

NAME = "log"
REPEATABLE = True


def setup(c: Controller) -> PluginFactory:
    rules = parse(c)
    return lambda next: Log.link(next, rules)
