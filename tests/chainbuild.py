"""Build a server block's chain in-process (no sockets), for plugin parse tests."""

from __future__ import annotations

from typing import TypeVar

from kdns.chain import Listener, build
from kdns.corefile import parse_text

P = TypeVar("P")


class StubApp:
    """The App services a chain needs at build time, inert."""

    shutting_down = False

    def __init__(self, corefile_path: str | None = None) -> None:
        self.corefile_path = corefile_path

    def request_reload(self) -> None: ...
    def not_ready(self) -> list[str]: return []
    def config_digest(self) -> str: return ""


def build_text(text: str, corefile_path: str | None = None) -> list[Listener]:
    """Build every chain of a Corefile (raises CorefileError with CoreDNS's text)."""
    return build(parse_text(text, "Corefile"), 53, StubApp(corefile_path))


def build_error(text: str) -> str:
    """The text of the error building ``text`` raises."""
    try:
        build_text(text)
    except Exception as e:  # the test compares the text
        return str(e)
    raise AssertionError("Corefile was accepted")


def plugins_of(text: str, cls: type[P], corefile_path: str | None = None) -> list[P]:
    """Every ``cls`` instance built from Corefile ``text``, per listener and zone."""
    return [p for lst in build_text(text, corefile_path) for chain in lst.zones.values()
            for p in chain.plugins if isinstance(p, cls)]


def first_plugin(text: str, cls: type[P], corefile_path: str | None = None) -> P:
    """The first ``cls`` instance built from Corefile ``text``."""
    for p in plugins_of(text, cls, corefile_path):
        return p
    raise AssertionError(f"no {cls.__name__} plugin built")


def built_plugin(body: str, cls: type[P]) -> P:
    """The ``cls`` instance of a root block holding ``body`` (plus whoami to end the chain)."""
    return first_plugin(f". {{\n{body}\nwhoami\n}}\n", cls)
