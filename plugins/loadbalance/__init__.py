"""loadbalance - shuffles or weights A, AAAA and MX records, and prefers subnets (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import LoadBalance
from .parse import parse

NAME = "loadbalance"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: LoadBalance(next, cfg)
