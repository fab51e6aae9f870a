"""hosts - serves A, AAAA and PTR records from a hosts file and inline entries (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Hosts
from .parse import parse

NAME = "hosts"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Hosts(next, cfg)
