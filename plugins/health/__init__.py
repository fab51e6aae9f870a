"""health - process liveness on ``/health``, self-probe metrics and lameduck (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Health
from .parse import parse

NAME = "health"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Health(next, cfg)
