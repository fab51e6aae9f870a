"""acl - allows, blocks, filters or drops queries by source address and type (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Acl
from .parse import parse

NAME = "acl"
REPEATABLE = True  # as in CoreDNS: each directive is one rule, evaluated in Corefile order


def setup(c: Controller) -> PluginFactory:
    rule = parse(c)
    server = c.server
    return lambda next: Acl(next, rule, server)
