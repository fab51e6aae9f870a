"""prometheus Corefile syntax: snippet -> PrometheusConfig, or the exact error with file:line."""

from __future__ import annotations

import pytest

from kdns.chain import build
from kdns.corefile import parse_text
from kdns.errors import CorefileError
from kdns.plugins.prometheus.handler import Prometheus
from kdns.plugins.prometheus.parse import PrometheusConfig


class _App:
    corefile_path = None
    shutting_down = False

    def request_reload(self) -> None: ...
    def not_ready(self) -> list[str]: return []
    def config_digest(self) -> str: return ""


def config(body: str) -> PrometheusConfig:
    for lst in build(parse_text(f". {{\n{body}\nwhoami\n}}\n", "Corefile"), 53, _App()):
        for p in lst.zones["."].plugins:
            if isinstance(p, Prometheus):
                return p.cfg
    raise AssertionError("no prometheus plugin built")


@pytest.mark.parametrize("body,expected", [
    ("prometheus", PrometheusConfig("localhost:9153")),
    ("prometheus :9153", PrometheusConfig(":9153")),
    ("prometheus 0.0.0.0:9153", PrometheusConfig("0.0.0.0:9153")),
    ("prometheus [::]:9153 {\n runtime_metrics\n}", PrometheusConfig("[::]:9153")),
])
def test_valid(body: str, expected: PrometheusConfig) -> None:
    assert config(body) == expected


P = "plugin/prometheus: Corefile:"


@pytest.mark.parametrize("body,err", [
    ("prometheus localhost", f"{P}2 - Error during parsing: address localhost: missing port in "
                             "address"),
    ("prometheus a:1 b:2", f"{P}2 - Error during parsing: Wrong argument count or unexpected "
                           "line ending after 'b:2'"),
    ("prometheus\nprometheus :9", f"{P}3 - Error during parsing: this plugin can only be used "
                                  "once per Server Block"),
    ("prometheus {\n tls /etc/tls.conf\n}", f"{P}3 - Error during parsing: tls is not "
                                            "implemented in kdns"),
    ("prometheus {\n runtime_metrics on\n}", f"{P}3 - Error during parsing: Wrong argument "
                                             "count or unexpected line ending after 'on'"),
    ("prometheus {\n path /m\n}", f"{P}3 - Error during parsing: unknown property 'path'"),
])
def test_invalid(body: str, err: str) -> None:
    with pytest.raises(CorefileError) as e:
        config(body)
    assert err in str(e.value)
