"""loop's Corefile syntax: no arguments, no block, once per server block."""

from __future__ import annotations

import pytest

from tests.upstream.corefiles import build_error, build_text


def test_accepted() -> None:
    listeners = build_text(".:53 {\n    loop\n    forward . 10.0.0.1\n}\n")
    assert listeners[0].zones["."].names == ["loop", "forward"]  # plugin.cfg order


@pytest.mark.parametrize("corefile,err", [
    (".:53 {\n loop now\n}\n", "plugin/loop: Corefile:2 - Error during parsing: Wrong argument "
     "count or unexpected line ending after 'now'"),
    (".:53 {\n loop {\n  x\n }\n}\n", "plugin/loop: Corefile:2 - Error during parsing: Wrong "
     "argument count or unexpected line ending after 'loop'"),
    (".:53 {\n loop\n loop\n}\n", "plugin/loop: Corefile:3 - Error during parsing: this plugin "
     "can only be used once per Server Block"),
])
def test_errors(corefile: str, err: str) -> None:
    assert build_error(corefile) == err
