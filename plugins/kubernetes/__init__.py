"""kubernetes - cluster DNS records from a watched Kubernetes API (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Kubernetes
from .parse import parse

NAME = "kubernetes"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Kubernetes(next, cfg)
