"""Build a server block's chain in-process (no sockets), for plugin parse tests."""

from __future__ import annotations

from typing import TypeVar

from kdns.chain import build
from kdns.corefile import parse_text

P = TypeVar("P")


class StubApp:
    """The App services a chain needs at build time, inert."""

    corefile_path = None
    shutting_down = False

    def request_reload(self) -> None: ...
    def not_ready(self) -> list[str]: return []
    def config_digest(self) -> str: return ""


def built_plugin(body: str, cls: type[P]) -> P:
    """The ``cls`` instance of a root block holding ``body`` (plus whoami to end the chain)."""
    for lst in build(parse_text(f". {{\n{body}\nwhoami\n}}\n", "Corefile"), 53, StubApp()):
        for p in lst.zones["."].plugins:
            if isinstance(p, cls):
                return p
    raise AssertionError(f"no {cls.__name__} plugin built")
