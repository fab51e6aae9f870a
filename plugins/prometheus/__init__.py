"""prometheus - exports every kdns metric on ``/metrics`` (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Prometheus
from .parse import parse

NAME = "prometheus"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Prometheus(next, cfg)
