"""``reload [INTERVAL] [JITTER]``: defaults 30s/15s, minimum 2s/1s, JITTER capped at INTERVAL/2."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from kdns.plugin import Controller

DEFAULT_INTERVAL: Final = 30.0
DEFAULT_JITTER: Final = 15.0
MIN_INTERVAL: Final = 2.0
MIN_JITTER: Final = 1.0


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    interval: float = DEFAULT_INTERVAL
    jitter: float = DEFAULT_JITTER

    def period(self, rng: random.Random | None = None) -> float:
        """INTERVAL + uniform[-JITTER/2, JITTER/2): drawn once per load (CoreDNS's setup.go)."""
        if self.jitter <= 0:
            return self.interval
        return self.interval + (rng or random).uniform(-self.jitter / 2, self.jitter / 2)


def parse(c: Controller) -> ReloadConfig:
    d = c.d
    args = d.args(max=2)
    if d.has_block():
        raise d.err("reload takes no block")
    interval = DEFAULT_INTERVAL
    if args:
        interval = d.to_duration(args[0], "interval")
    if interval < MIN_INTERVAL:
        raise d.err("interval value must be greater or equal to 2s")
    jitter = DEFAULT_JITTER
    if len(args) > 1:
        jitter = d.to_duration(args[1], "jitter")
        # CoreDNS's README: "0s" disables jitter; anything else must be at least 1s.
        if jitter != 0 and jitter < MIN_JITTER:
            raise d.err("jitter value must be greater or equal to 1s")
    return ReloadConfig(interval, min(jitter, interval / 2))
