"""any Corefile syntax: it takes no arguments and no block."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.any.handler import Any
from tests.chainbuild import plugins_of


def _build(body: str) -> list[str]:
    return [p.name for p in plugins_of(f". {{\n{body}\n}}\n", Any)]


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
