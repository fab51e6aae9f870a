"""whoami Corefile syntax: it takes no arguments and no block."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.whoami.handler import Whoami
from tests.chainbuild import build_text


def _whoamis(corefile: str) -> list[tuple[str, ...]]:
    """The zones of every chain that has a whoami, per listener."""
    return [chain.zones for lst in build_text(corefile) for chain in lst.zones.values()
            if any(isinstance(p, Whoami) for p in chain.plugins)]


@pytest.mark.parametrize("corefile,zones", [
    (". {\n    whoami\n}\n", [(".",)]),
    ("example.org example.net:53 {\n    whoami\n}\n",
     [("example.org.", "example.net."), ("example.org.", "example.net.")]),
    (". {\n    log\n    whoami\n}\n", [(".",)]),
])
def test_parse_ok(corefile: str, zones: list[tuple[str, ...]]) -> None:
    assert _whoamis(corefile) == zones


E = "plugin/whoami: Corefile:{line} - Error during parsing: "


@pytest.mark.parametrize("corefile,line,msg", [
    (". {\n    whoami extra\n}\n", 2,
     "Wrong argument count or unexpected line ending after 'extra'"),
    (". {\n    whoami a b\n}\n", 2, "Wrong argument count or unexpected line ending after 'b'"),
    (". {\n    whoami {\n    }\n}\n", 2,
     "Wrong argument count or unexpected line ending after 'whoami'"),
    (". {\n    whoami\n    whoami\n}\n", 3, "this plugin can only be used once per Server Block"),
])
def test_parse_errors(corefile: str, line: int, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        _whoamis(corefile)
    assert str(e.value) == E.format(line=line) + msg
