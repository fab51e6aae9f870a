"""Helpers for parse tests: get one directive's Dispenser, or a plugin README's Corefiles.

build_text and build_error live in tests/chainbuild.py; they are re-exported here for the
cache, forward and loop tests that import them from this module.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdns.corefile import Dispenser, parse_text
from tests.chainbuild import build_error, build_text

__all__ = ["README_SECTIONS", "build_error", "build_text", "dispenser", "readme_corefiles"]


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
