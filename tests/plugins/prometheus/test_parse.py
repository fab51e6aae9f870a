"""prometheus Corefile syntax: snippet -> PrometheusConfig, or the exact error with file:line."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.prometheus.handler import Prometheus
from kdns.plugins.prometheus.parse import PrometheusConfig
from tests.chainbuild import built_plugin


def config(body: str) -> PrometheusConfig:
    return built_plugin(body, Prometheus).cfg


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
