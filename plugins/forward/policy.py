"""Upstream selection order per query: random (default), round_robin, sequential (policy.go)."""

from __future__ import annotations

import itertools
import random


class Policy:
    """Returns the order in which a query tries the upstreams (indexes into the config list)."""

    def __init__(self, kind: str, n: int, rng: random.Random | None = None) -> None:
        self.kind = kind
        self.n = n
        self._rng = rng or random.Random()
        self._counter = itertools.count()

    def order(self) -> list[int]:
        idx = list(range(self.n))
        if self.kind == "random":
            self._rng.shuffle(idx)
        elif self.kind == "round_robin":
            start = next(self._counter) % self.n if self.n else 0
            idx = idx[start:] + idx[:start]
        return idx

    def pick(self, candidates: list[int]) -> int:
        """A random choice, used when every upstream is down."""
        return self._rng.choice(candidates)
