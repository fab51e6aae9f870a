"""ready - ``/ready`` answers 200 once every plugin that reports readiness is ready (README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Ready
from .parse import parse

NAME = "ready"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Ready(next, cfg, c.app)
