"""any Corefile syntax: it takes no arguments and no block."""

from __future__ import annotations

import pytest

from kdns.chain import build
from kdns.corefile import parse_text
from kdns.errors import CorefileError
from kdns.plugins.any.handler import Any


class _App:
    corefile_path = None
    shutting_down = False

    def request_reload(self) -> None: ...
    def not_ready(self) -> list[str]: return []
    def config_digest(self) -> str: return ""


def _build(body: str) -> list[str]:
    listeners = build(parse_text(f". {{\n{body}\n}}\n", "Corefile"), 53, _App())
    return [p.name for lst in listeners for c in lst.zones.values() for p in c.plugins
            if isinstance(p, Any)]


def test_parse_ok() -> None:
    assert _build("any") == ["any"]
    assert _build("whoami\nany") == ["any"]


E = "plugin/any: Corefile:{line} - Error during parsing: "


@pytest.mark.parametrize("body,line,msg", [
    ("any extra", 2, "Wrong argument count or unexpected line ending after 'extra'"),
    ("any {\n}", 2, "the any plugin takes no options"),
    ("any {\n x\n}", 2, "the any plugin takes no options"),
    ("any\nany", 3, "this plugin can only be used once per Server Block"),
])
def test_parse_errors(body: str, line: int, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        _build(body)
    assert str(e.value) == E.format(line=line) + msg
