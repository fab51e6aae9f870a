"""kdns.godur: Go's Duration.String() for log lines."""

from __future__ import annotations

import pytest

from kdns.godur import format_go_duration


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (5, "5s"), (1.5, "1.5s"), (60, "1m0s"), (90, "1m30s"), (300, "5m0s"),
    (3600, "1h0m0s"), (3661.5, "1h1m1.5s"), (0.5, "500ms"), (0.001, "1ms"),
    (0.0015, "1.5ms"), (0.000076, "76µs"), (1e-9, "1ns"), (0.1234567, "123.4567ms"),
    (-2, "-2s"),
])
def test_format_go_duration(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text
