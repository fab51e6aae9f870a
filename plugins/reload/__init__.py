"""reload - reloads the server when the parsed Corefile changes (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Reload
from .parse import parse

NAME = "reload"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Reload(next, cfg, c.app)
