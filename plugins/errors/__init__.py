"""errors - logs every error a later plugin returns, optionally consolidated (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Errors
from .parse import parse

NAME = "errors"


def setup(c: Controller) -> PluginFactory:
    cfg = parse(c)
    return lambda next: Errors(next, cfg)
