"""errors handler against fake next plugins: line format, consolidation, show_first, stacktrace."""

from __future__ import annotations

import asyncio
import logging
import re

import dns.message
import dns.rcode
import pytest

from kdns.errors import PluginError, UpstreamTimeout
from kdns.plugin import Request
from kdns.plugins.errors.handler import Errors
from kdns.plugins.errors.parse import Consolidate, ErrorsConfig


class Failing:
    name = "fake"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def serve(self, req: Request) -> dns.message.Message:
        raise self.exc


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def request(name: str = "Example.COM.", rdtype: str = "AAAA") -> Request:
    return Request(dns.message.make_query(name, rdtype), ("127.0.0.1", 5353), "udp")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith("errors")]


async def test_logs_rcode_lowercase_name_type_and_text(caplog: pytest.LogCaptureFixture) -> None:
    h = Errors(Failing(UpstreamTimeout("read udp 10.0.0.1:53: i/o timeout")), ErrorsConfig())
    with pytest.raises(UpstreamTimeout):
        await h.serve(request())
    h2 = Errors(Failing(PluginError("refused by policy", dns.rcode.REFUSED)), ErrorsConfig())
    with pytest.raises(PluginError):
        await h2.serve(request("a.b.", "TXT"))
    assert lines(caplog) == [("ERROR", "2 example.com. AAAA: read udp 10.0.0.1:53: i/o timeout"),
                             ("ERROR", "5 a.b. TXT: refused by policy")]


async def test_success_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Ok:
        name = "ok"

        async def serve(self, req: Request) -> dns.message.Message:
            return req.reply()

    r = await Errors(Ok(), ErrorsConfig()).serve(request())
    assert r.rcode() == 0 and lines(caplog) == []


def cfg(*patterns: Consolidate, stacktrace: bool = False) -> ErrorsConfig:
    return ErrorsConfig(stacktrace, patterns)


async def test_consolidate_counts_then_summarises(caplog: pytest.LogCaptureFixture) -> None:
    h = Errors(Failing(PluginError("i/o timeout")),
               cfg(Consolidate(0.05, re.compile("timeout$"), logging.WARNING)))
    for _ in range(3):
        with pytest.raises(PluginError):
            await h.serve(request())
    assert lines(caplog) == []
    await asyncio.sleep(0.1)
    assert lines(caplog) == [("WARNING", "3 errors like 'timeout$' occurred in last 50ms")]
    with pytest.raises(PluginError):  # a new period starts with the next error
        await h.serve(request())
    await h.stop()  # flushed at stop, not lost
    assert lines(caplog)[-1] == ("WARNING", "1 errors like 'timeout$' occurred in last 50ms")


async def test_first_matching_pattern_wins_and_others_log(caplog: pytest.LogCaptureFixture) -> None:
    h = Errors(Failing(PluginError("boom timeout")),
               cfg(Consolidate(60, re.compile("^nomatch")), Consolidate(60, re.compile("boom")),
                   Consolidate(60, re.compile("timeout"), logging.INFO)))
    with pytest.raises(PluginError):
        await h.serve(request())
    await h.stop()
    assert lines(caplog) == [("ERROR", "1 errors like 'boom' occurred in last 1m0s")]


async def test_show_first_logs_first_and_summary_only_when_more(
        caplog: pytest.LogCaptureFixture) -> None:
    h = Errors(Failing(PluginError("no route")),
               cfg(Consolidate(0.05, re.compile("route"), logging.INFO, show_first=True)))
    with pytest.raises(PluginError):
        await h.serve(request())
    await asyncio.sleep(0.1)
    assert lines(caplog) == [("INFO", "2 example.com. AAAA: no route")]
    for _ in range(2):
        with pytest.raises(PluginError):
            await h.serve(request())
    await asyncio.sleep(0.1)
    assert lines(caplog)[1:] == [("INFO", "2 example.com. AAAA: no route"),
                                 ("INFO", "2 errors like 'route' occurred in last 50ms")]


async def test_stacktrace_logs_the_stack_of_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    h = Errors(Failing(ZeroDivisionError("division by zero")), cfg(stacktrace=True))
    with pytest.raises(ZeroDivisionError):
        await h.serve(request())
    (level, msg), = lines(caplog)
    assert level == "ERROR"
    assert msg.startswith("Recovered from panic in example.com. AAAA: ZeroDivisionError(")
    assert "Traceback (most recent call last)" in msg and "raise self.exc" in msg


async def test_crash_without_stacktrace_is_left_to_the_server(
        caplog: pytest.LogCaptureFixture) -> None:
    h = Errors(Failing(KeyError("x")), cfg())
    with pytest.raises(KeyError):
        await h.serve(request())
    assert lines(caplog) == []
