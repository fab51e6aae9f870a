"""``errors [stdout] { stacktrace; consolidate DURATION REGEXP [LEVEL] [show_first] }``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final

from kdns.plugin import Controller

MAX_REGEXP_LEN: Final = 10_000
# CoreDNS accepts "warning" (setup.go) and its README once said "warn"; both mean WARNING.
LEVELS: Final = {
    "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
    "info": logging.INFO, "debug": logging.DEBUG,
}


@dataclass(frozen=True, slots=True)
class Consolidate:
    period: float  # seconds
    pattern: re.Pattern[str]
    level: int = logging.ERROR
    show_first: bool = False


@dataclass(frozen=True, slots=True)
class ErrorsConfig:
    stacktrace: bool = False
    consolidate: tuple[Consolidate, ...] = ()


def parse(c: Controller) -> ErrorsConfig:
    d = c.d
    args = d.args(max=1)
    if args and args[0] != "stdout":
        raise d.err(f"invalid log file: {args[0]}")
    stacktrace = False
    patterns: list[Consolidate] = []
    for key in d.block():
        if key == "stacktrace":
            d.args(max=0)
            stacktrace = True
        elif key == "consolidate":
            patterns.append(_consolidate(c))
        else:
            raise d.unknown_property()
    return ErrorsConfig(stacktrace, tuple(patterns))


def _consolidate(c: Controller) -> Consolidate:
    d = c.d
    args = d.args(min=2, max=4)
    period = d.to_duration(args[0], "consolidate duration")
    if period <= 0:
        raise d.err(f"consolidate duration must be positive: {args[0]!r}")
    if len(args[1]) > MAX_REGEXP_LEN:
        raise d.err(f"consolidate regexp is longer than {MAX_REGEXP_LEN} characters")
    try:
        pattern = re.compile(args[1])
    except re.error as e:
        raise d.err(f"error parsing regexp {args[1]!r}: {e}") from None
    level, show_first = logging.ERROR, False
    for i, extra in enumerate(args[2:], start=2):
        if extra == "show_first" and i == len(args) - 1:
            show_first = True
        elif extra in LEVELS and i == 2:
            level = LEVELS[extra]
        else:
            raise d.err(f"unknown log level argument in consolidate: {extra}")
    return Consolidate(period, pattern, level, show_first)
