"""Helpers for parse tests: build chains from Corefile text, or get one directive's Dispenser."""

from __future__ import annotations

import re
from pathlib import Path

from kdns.chain import Listener, build
from kdns.corefile import Dispenser, parse_text


class StubApp:
    """The process services a plugin's setup may look at (none of them do I/O here)."""

    corefile_path = None
    shutting_down = False

    def request_reload(self) -> None: ...

    def not_ready(self) -> list[str]:
        return []

    def config_digest(self) -> str:
        return ""


def build_text(text: str) -> list[Listener]:
    """Build every chain of a Corefile (raises CorefileError with CoreDNS's text)."""
    return build(parse_text(text, "Corefile"), 53, StubApp())


def build_error(text: str) -> str:
    try:
        build_text(text)
    except Exception as e:  # the test compares the text
        return str(e)
    raise AssertionError("Corefile was accepted")


def dispenser(text: str, name: str) -> Dispenser:
    """The Dispenser of the first ``name`` directive of the first block."""
    block = parse_text(text, "Corefile")[0]
    for d in block.directives:
        if d.name == name:
            return Dispenser(d)
    raise AssertionError(f"no {name} directive")


def readme_corefiles(plugin: str) -> list[str]:
    """The ```corefile blocks of plugins/<plugin>/README.md."""
    text = (Path(__file__).resolve().parents[2] / "plugins" / plugin / "README.md").read_text()
    return re.findall(r"```corefile\n(.*?)```", text, flags=re.S)


README_SECTIONS = ("## Name", "## Description", "## Syntax", "## Examples", "## Metrics")
