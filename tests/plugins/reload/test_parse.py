"""reload Corefile syntax: snippet -> ReloadConfig (and its jittered period), or the exact error."""

from __future__ import annotations

import random

import pytest

from kdns.errors import CorefileError
from kdns.plugins.reload.handler import Reload
from kdns.plugins.reload.parse import ReloadConfig
from tests.chainbuild import built_plugin


def config(body: str) -> ReloadConfig:
    p = built_plugin(body, Reload)
    assert p.cfg.interval - p.cfg.jitter / 2 <= p.period
    assert p.period <= p.cfg.interval + p.cfg.jitter / 2
    return p.cfg


@pytest.mark.parametrize("body,expected", [
    ("reload", ReloadConfig(30.0, 15.0)),
    ("reload 10s", ReloadConfig(10.0, 5.0)),  # default jitter cut to half the interval
    ("reload 2s 1s", ReloadConfig(2.0, 1.0)),
    ("reload 1m 10s", ReloadConfig(60.0, 10.0)),
    ("reload 1m 0s", ReloadConfig(60.0, 0.0)),
    ("reload 5s 4s", ReloadConfig(5.0, 2.5)),
])
def test_valid(body: str, expected: ReloadConfig) -> None:
    assert config(body) == expected


P = "plugin/reload: Corefile:"


@pytest.mark.parametrize("body,err", [
    ("reload 1s", f"{P}2 - Error during parsing: interval value must be greater or equal to 2s"),
    ("reload 5s 500ms", f"{P}2 - Error during parsing: jitter value must be greater or equal "
                        "to 1s"),
    ("reload abc", f"{P}2 - Error during parsing: invalid interval: 'abc'"),
    ("reload 30s xyz", f"{P}2 - Error during parsing: invalid jitter: 'xyz'"),
    ("reload 30s 15s 1s", f"{P}2 - Error during parsing: Wrong argument count or unexpected "
                          "line ending after '1s'"),
    ("reload\nreload", f"{P}3 - Error during parsing: this plugin can only be used once per "
                       "Server Block"),
    ("reload {\n interval 1s\n}", f"{P}2 - Error during parsing: reload takes no block"),
])
def test_invalid(body: str, err: str) -> None:
    with pytest.raises(CorefileError) as e:
        config(body)
    assert err in str(e.value)


def test_period_is_interval_plus_half_jitter_either_way() -> None:
    cfg = ReloadConfig(30.0, 15.0)
    periods = [cfg.period(random.Random(seed)) for seed in range(2000)]
    assert 22.5 <= min(periods) < 23.0 and 37.0 < max(periods) <= 37.5
    assert ReloadConfig(30.0, 0.0).period() == 30.0
