"""whoami - answers with the client's address and port (see README.md)."""

from __future__ import annotations

from kdns.plugin import Controller, PluginFactory

from .handler import Whoami

NAME = "whoami"


def setup(c: Controller) -> PluginFactory:
    c.d.args(max=0)
    if c.d.has_block():
        raise c.d.arg_err()
    return lambda next: Whoami(next)
