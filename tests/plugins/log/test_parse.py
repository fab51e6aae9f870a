"""log Corefile syntax: snippet -> rules (one per NAME), or the exact error with file:line."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.log.handler import Log
from kdns.plugins.log.parse import COMBINED_FORMAT, COMMON_FORMAT, Rule
from tests.chainbuild import build_text


def rules(body: str) -> tuple[Rule, ...]:
    for lst in build_text(f". {{\n{body}\nwhoami\n}}\n"):
        chain = lst.zones["."]
        assert chain.handler is not None
        assert isinstance(chain.handler, Log), "log must be the outermost handler here"
        assert not isinstance(chain.handler.next, Log), "repeated log lines must be merged"
        return chain.handler.rules
    raise AssertionError("no chain built")


@pytest.mark.parametrize("body,expected", [
    ("log", [Rule(".")]),
    ("log example.org", [Rule("example.org.")]),
    ("log Example.ORG.", [Rule("example.org.")]),
    ("log . {common}", [Rule(".", COMMON_FORMAT)]),
    ("log . {combined}", [Rule(".", COMBINED_FORMAT)]),
    ("log {combined}", [Rule(".", COMBINED_FORMAT)]),
    ('log . "{proto} Request: {name} {type} {>id}"',
     [Rule(".", "{proto} Request: {name} {type} {>id}")]),
    ("log a.test b.test {combined}", [Rule("a.test.", COMBINED_FORMAT),
                                      Rule("b.test.", COMBINED_FORMAT)]),
    ("log a.test b.test", [Rule("a.test."), Rule("b.test.")]),
    ("log example.org {\n class denial\n}", [Rule("example.org.", classes=frozenset({"denial"}))]),
    ("log . {combined} {\n class denial error\n}",
     [Rule(".", COMBINED_FORMAT, frozenset({"denial", "error"}))]),
    ("log . {\n class denial\n class success\n}",
     [Rule(".", classes=frozenset({"denial", "success"}))]),
    ("log . {\n class all success\n}", [Rule(".", classes=frozenset({"all", "success"}))]),
    ("log . {\n minDuration\n}", [Rule(".", min_duration=0.1)]),
    ("log . {\n class error\n minDuration 250ms\n}",
     [Rule(".", classes=frozenset({"error"}), min_duration=0.25)]),
    # Several log lines: one handler, rules in Corefile order, each line with its own classes.
    ("log a.test\nlog . {\n class error\n}",
     [Rule("a.test."), Rule(".", classes=frozenset({"error"}))]),
])
def test_valid(body: str, expected: list[Rule]) -> None:
    assert list(rules(body)) == expected


P = "plugin/log: Corefile:"


@pytest.mark.parametrize("body,err", [
    ("log . {\n class\n}", f"{P}3 - Error during parsing: Wrong argument count or unexpected "
                           "line ending after 'class'"),
    ("log . {\n class sucess\n}", f"{P}3 - Error during parsing: invalid Class: sucess"),
    ("log . {\n level info\n}", f"{P}3 - Error during parsing: unknown property 'level'"),
    ("log . {\n minDuration 1s 2s\n}", f"{P}3 - Error during parsing: Wrong argument count or "
                                       "unexpected line ending after '2s'"),
    ("log . {\n minDuration fast\n}", f"{P}3 - Error during parsing: invalid minDuration: "
                                      "'fast'"),
    ("log . {\n minDuration -1s\n}", f"{P}3 - Error during parsing: Illegal duration found: "
                                     "'-1s'"),
])
def test_invalid(body: str, err: str) -> None:
    with pytest.raises(CorefileError) as e:
        rules(body)
    assert err in str(e.value)
