"""ready Corefile syntax: snippet -> ReadyConfig, or the exact error with file:line."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.ready.handler import Ready
from kdns.plugins.ready.parse import ReadyConfig
from tests.chainbuild import built_plugin


def config(body: str) -> ReadyConfig:
    return built_plugin(body, Ready).cfg


@pytest.mark.parametrize("body,expected", [
    ("ready", ReadyConfig(":8181", "until-ready")),
    ("ready localhost:1234", ReadyConfig("localhost:1234", "until-ready")),
    ("ready {\n monitor continuously\n}", ReadyConfig(":8181", "continuously")),
    ("ready :9 {\n monitor until-ready\n}", ReadyConfig(":9", "until-ready")),
])
def test_valid(body: str, expected: ReadyConfig) -> None:
    assert config(body) == expected


P = "plugin/ready: Corefile:"


@pytest.mark.parametrize("body,err", [
    ("ready bla", f"{P}2 - Error during parsing: address bla: missing port in address"),
    ("ready 1.2.3.4:70000", f"{P}2 - Error during parsing: address 1.2.3.4:70000: invalid port "
                            "'70000'"),
    ("ready a:1 b:2", f"{P}2 - Error during parsing: Wrong argument count or unexpected line "
                      "ending after 'b:2'"),
    ("ready\nready", f"{P}3 - Error during parsing: this plugin can only be used once per "
                     "Server Block"),
    ("ready {\n monitor sometimes\n}", f"{P}3 - Error during parsing: monitor must be one of "
                                       "until-ready, continuously: 'sometimes'"),
    ("ready {\n monitor\n}", f"{P}3 - Error during parsing: Wrong argument count or unexpected "
                             "line ending after 'monitor'"),
    ("ready {\n interval 1s\n}", f"{P}3 - Error during parsing: unknown property 'interval'"),
])
def test_invalid(body: str, err: str) -> None:
    with pytest.raises(CorefileError) as e:
        config(body)
    assert err in str(e.value)
