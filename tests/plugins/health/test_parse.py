"""health Corefile syntax: snippet -> HealthConfig, or the exact error with file:line."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.health.handler import Health, probe_url
from kdns.plugins.health.parse import HealthConfig
from tests.chainbuild import built_plugin


def config(body: str) -> HealthConfig:
    return built_plugin(body, Health).cfg


@pytest.mark.parametrize("body,expected", [
    ("health", HealthConfig(":8080", 0.0)),
    ("health localhost:1234", HealthConfig("localhost:1234", 0.0)),
    ("health localhost:1234 {\n lameduck 4s\n}", HealthConfig("localhost:1234", 4.0)),
    ("health {\n lameduck 1m30s\n}", HealthConfig(":8080", 90.0)),
    ("health [::1]:8091", HealthConfig("[::1]:8091", 0.0)),
])
def test_valid(body: str, expected: HealthConfig) -> None:
    assert config(body) == expected


P = "plugin/health: Corefile:"


@pytest.mark.parametrize("body,err", [
    ("health bla", f"{P}2 - Error during parsing: address bla: missing port in address"),
    ("health bla:a", f"{P}2 - Error during parsing: address bla:a: invalid port 'a'"),
    ("health bla bla", f"{P}2 - Error during parsing: Wrong argument count or unexpected line "
                       "ending after 'bla'"),
    ("health localhost:1234 {\n lameduck a\n}",
     f"{P}3 - Error during parsing: invalid lameduck duration: 'a'"),
    ("health {\n lameduck\n}", f"{P}3 - Error during parsing: Wrong argument count or "
                               "unexpected line ending after 'lameduck'"),
    ("health {\n lameduck -1s\n}",
     f"{P}3 - Error during parsing: unable to parse lameduck duration value: '-1s'"),
    ("health localhost:1234 {\n lamedudk 4\n}",
     f"{P}3 - Error during parsing: unknown property 'lamedudk'"),
])
def test_invalid(body: str, err: str) -> None:
    with pytest.raises(CorefileError) as e:
        config(body)
    assert err in str(e.value)


@pytest.mark.parametrize("address,url", [
    (":8080", "http://127.0.0.1:8080/health"),
    ("0.0.0.0:80", "http://127.0.0.1:80/health"),
    ("[::]:8080", "http://[::1]:8080/health"),
    ("[fd00::1]:8080", "http://[fd00::1]:8080/health"),
    ("localhost:9", "http://localhost:9/health"),
])
def test_probe_url(address: str, url: str) -> None:
    assert probe_url(address) == url
