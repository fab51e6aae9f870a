"""errors Corefile syntax: snippet -> ErrorsConfig, or the exact error with file:line."""

from __future__ import annotations

import logging

import pytest

from kdns.errors import CorefileError
from kdns.plugins.errors.handler import Errors
from kdns.plugins.errors.parse import ErrorsConfig
from tests.chainbuild import built_plugin


def config(body: str) -> ErrorsConfig:
    return built_plugin(body, Errors).cfg


def summary(cfg: ErrorsConfig) -> list[tuple[float, str, int, bool]]:
    return [(p.period, p.pattern.pattern, p.level, p.show_first) for p in cfg.consolidate]


@pytest.mark.parametrize("body,stacktrace,patterns", [
    ("errors", False, []),
    ("errors stdout", False, []),
    ("errors {\n stacktrace\n}", True, []),
    ("errors {\n consolidate 1m ^exact$\n}", False, [(60.0, "^exact$", logging.ERROR, False)]),
    ('errors {\n consolidate 1m "format error"\n}', False,
     [(60.0, "format error", logging.ERROR, False)]),
    ("errors {\n consolidate 1m error1\n consolidate 5s error2\n}", False,
     [(60.0, "error1", logging.ERROR, False), (5.0, "error2", logging.ERROR, False)]),
    ("errors {\n consolidate 30s .* warning\n}", False, [(30.0, ".*", logging.WARNING, False)]),
    ("errors {\n consolidate 30s .* warn\n}", False, [(30.0, ".*", logging.WARNING, False)]),
    ("errors {\n consolidate 30s .* info show_first\n}", False,
     [(30.0, ".*", logging.INFO, True)]),
    ("errors {\n consolidate 2s .* show_first\n stacktrace\n}", True,
     [(2.0, ".*", logging.ERROR, True)]),
    ("errors {\n consolidate 1m .* debug\n}", False, [(60.0, ".*", logging.DEBUG, False)]),
])
def test_valid(body: str, stacktrace: bool, patterns: list[tuple[float, str, int, bool]]) -> None:
    cfg = config(body)
    assert cfg.stacktrace is stacktrace
    assert summary(cfg) == patterns


P = "plugin/errors: Corefile:"
WRONG = "Error during parsing: Wrong argument count or unexpected line ending after"


@pytest.mark.parametrize("body,err", [
    ("errors errors.txt", f"{P}2 - Error during parsing: invalid log file: errors.txt"),
    ("errors a b", f"{P}2 - {WRONG} 'b'"),
    ("errors\nerrors", f"{P}3 - Error during parsing: this plugin can only be used once per "
                       "Server Block"),
    ("errors {\n log visible\n}", f"{P}3 - Error during parsing: unknown property 'log'"),
    ("errors {\n consolidate\n}", f"{P}3 - {WRONG} 'consolidate'"),
    ("errors {\n consolidate 1m\n}", f"{P}3 - {WRONG} '1m'"),
    ("errors {\n consolidate 1m .* error show_first extra\n}", f"{P}3 - {WRONG} 'extra'"),
    ("errors {\n consolidate 1m .* extra\n}",
     f"{P}3 - Error during parsing: unknown log level argument in consolidate: extra"),
    ("errors {\n consolidate 1m .* show_first error\n}",
     f"{P}3 - Error during parsing: unknown log level argument in consolidate: show_first"),
    ("errors {\n consolidate abc .*\n}",
     f"{P}3 - Error during parsing: invalid consolidate duration: 'abc'"),
    ("errors {\n consolidate 0s .*\n}",
     f"{P}3 - Error during parsing: consolidate duration must be positive: '0s'"),
    ("errors {\n consolidate 1m ())\n}",
     f"{P}3 - Error during parsing: error parsing regexp '())': unbalanced parenthesis"),
    ("errors {\n consolidate 1m " + "a" * 10_001 + "\n}",
     f"{P}3 - Error during parsing: consolidate regexp is longer than 10000 characters"),
    ("errors {\n stacktrace now\n}", f"{P}3 - {WRONG} 'now'"),
])
def test_invalid(body: str, err: str) -> None:
    with pytest.raises(CorefileError) as e:
        config(body)
    assert err in str(e.value)
