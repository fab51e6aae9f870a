"""hosts handler in-process: answers, fallthrough, re-reading the file, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import dns.message
import dns.rcode
import pytest
from prometheus_client import REGISTRY

from kdns.plugin import Request
from kdns.plugins.hosts.handler import Hosts
from kdns.plugins.hosts.parse import HostsConfig
from kdns.plugins.hosts.table import parse_hosts


class _Next:
    """The next plugin: answers REFUSED so a pass-on is visible, and counts calls."""

    name = "next"

    def __init__(self) -> None:
        self.calls = 0

    async def serve(self, req: Request) -> dns.message.Message:
        self.calls += 1
        return req.reply(dns.rcode.REFUSED)


def _req(name: str, rdtype: str = "A") -> Request:
    return Request(dns.message.make_query(name, rdtype), ("127.0.0.1", 5353), "udp")


def _hosts(path: Path, inline: str = "", **kw: object) -> tuple[Hosts, _Next]:
    lines, bad = parse_hosts(inline)
    assert not bad
    cfg = HostsConfig(str(path), ("example.org.",), inline=tuple(lines), **kw)  # type: ignore[arg-type]
    nxt = _Next()
    return Hosts(nxt, cfg), nxt


def _answer(r: dns.message.Message) -> list[str]:
    return sorted(f"{rr.name} {rd}" for rr in r.answer for rd in rr)


async def test_answers_from_file_and_inline(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\n::1 a.example.org\n")
    h, nxt = _hosts(f, "10.0.0.9 in.example.org", fall=("sub.example.org.",))
    await h.start()
    try:
        r = await h.serve(_req("A.Example.ORG", "A"))
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert _answer(r) == ["a.example.org. 10.0.0.1"]
        assert _answer(await h.serve(_req("a.example.org", "AAAA"))) == ["a.example.org. ::1"]
        assert _answer(await h.serve(_req("in.example.org", "A"))) == ["in.example.org. 10.0.0.9"]
        nodata = await h.serve(_req("a.example.org", "MX"))
        assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
        assert nodata.flags & dns.flags.AA
        nx = await h.serve(_req("nope.example.org", "A"))
        assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA
        assert nxt.calls == 0
        # fallthrough zone, names outside the zones, unknown PTRs: passed on
        for name, t in [("x.sub.example.org", "A"), ("example.net", "A"),
                        ("9.9.9.9.in-addr.arpa", "PTR")]:
            assert (await h.serve(_req(name, t))).rcode() == dns.rcode.REFUSED
        assert nxt.calls == 3
        ptr = await h.serve(_req("1.0.0.10.in-addr.arpa", "PTR"))
        assert _answer(ptr) == ["1.0.0.10.in-addr.arpa. a.example.org."]
    finally:
        await h.stop()


async def test_fallthrough_unsupported_passes_other_qtypes_on(tmp_path: Path) -> None:
    h, nxt = _hosts(tmp_path / "missing", "10.0.0.1 a.example.org", fall=(".",),
                    fall_unsupported=True, reload=0.0)
    await h.start()
    assert (await h.serve(_req("a.example.org", "TXT"))).rcode() == dns.rcode.REFUSED
    assert (await h.serve(_req("a.example.org", "AAAA"))).rcode() == dns.rcode.NOERROR
    assert nxt.calls == 1


async def test_wildcard_answer_is_owned_by_the_qname(tmp_path: Path) -> None:
    h, _ = _hosts(tmp_path / "missing", "10.0.0.5 *.w.example.org", reload=0.0)
    await h.start()
    r = await h.serve(_req("Host.W.example.org", "A"))
    assert [rr.name.to_text() for rr in r.answer] == ["Host.W.example.org."]
    assert (await h.serve(_req("w.example.org", "A"))).rcode() == dns.rcode.NXDOMAIN


async def test_reload_only_on_change_and_deletion_keeps_inline(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\n")
    h, _ = _hosts(f, "10.0.0.9 in.example.org", reload=0.0)
    await h.start()
    gen = h.table.generation
    assert await h.load() is False  # unchanged mtime and size: no re-read
    assert h.table.generation == gen
    f.write_text("10.0.0.2 a.example.org\n10.0.0.3 b.example.org\n")
    assert await h.load() is True
    assert h.table.generation > gen
    assert _answer(await h.serve(_req("b.example.org"))) == ["b.example.org. 10.0.0.3"]
    f.unlink()
    with caplog.at_level(logging.WARNING, logger="kdns.plugin.hosts"):
        assert await h.load() is True
        assert await h.load() is False
    assert sum("does not exist" in r.getMessage() for r in caplog.records) == 1
    assert (await h.serve(_req("a.example.org"))).rcode() == dns.rcode.NXDOMAIN
    assert _answer(await h.serve(_req("in.example.org"))) == ["in.example.org. 10.0.0.9"]
    f.write_text("10.0.0.4 a.example.org\n")  # restored: used again
    assert await h.load() is True
    assert _answer(await h.serve(_req("a.example.org"))) == ["a.example.org. 10.0.0.4"]
    await h.stop()


async def test_malformed_lines_logged_once_per_reload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\nbroken\nnot-ip x.example.org\n")
    h, _ = _hosts(f, reload=0.0)
    with caplog.at_level(logging.WARNING, logger="kdns.plugin.hosts"):
        await h.start()
        await h.load()  # unchanged: not parsed again, not logged again
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [f"{f}: skipped 2 malformed lines: line 2 'broken': an address needs at "
                    "least one name (and 1 more)"]
    assert _answer(await h.serve(_req("a.example.org"))) == ["a.example.org. 10.0.0.1"]


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
async def test_paths_that_are_not_regular_files_are_never_read(
        tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    path = {"directory": tmp_path, "fifo": tmp_path / "fifo", "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
    h, _ = _hosts(path, "10.0.0.9 in.example.org", reload=0.0)
    with caplog.at_level(logging.WARNING, logger="kdns.plugin.hosts"):
        await asyncio.wait_for(h.start(), 5)
    assert _answer(await h.serve(_req("in.example.org"))) == ["in.example.org. 10.0.0.9"]
    assert [r.getMessage() for r in caplog.records] == [
        f"File does not exist or cannot be read: {path}: not a regular file"]


async def test_unreadable_file_serves_inline(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\n")
    f.chmod(0)
    h, _ = _hosts(f, "10.0.0.9 in.example.org", reload=0.0)
    await h.start()
    assert _answer(await h.serve(_req("in.example.org"))) == ["in.example.org. 10.0.0.9"]
    if os.geteuid() != 0:  # root reads it anyway
        assert (await h.serve(_req("a.example.org"))).rcode() == dns.rcode.NXDOMAIN


async def test_background_reload_task_picks_up_changes(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\n")
    h, _ = _hosts(f, reload=0.05)
    await h.start()
    try:
        f.write_text("10.0.0.7 a.example.org\n")
        for _ in range(100):
            if _answer(await h.serve(_req("a.example.org"))) == ["a.example.org. 10.0.0.7"]:
                break
            await asyncio.sleep(0.02)
        assert _answer(await h.serve(_req("a.example.org"))) == ["a.example.org. 10.0.0.7"]
    finally:
        await h.stop()
    assert h._task is None


async def test_metrics(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org b.example.org\n")
    os.utime(f, (1_700_000_000, 1_700_000_000))
    h, _ = _hosts(f, "10.0.0.9 in.example.org", reload=0.0)
    await h.start()
    labels = {"hostsfile": str(f)}
    # forward: a, b, in = 3; reverse: 10.0.0.1 -> a, b and 10.0.0.9 -> in = 3
    assert REGISTRY.get_sample_value("coredns_hosts_entries", labels) == 6
    assert REGISTRY.get_sample_value("coredns_hosts_reload_timestamp_seconds",
                                     labels) == 1_700_000_000


async def test_answers_are_reusable_until_the_table_changes(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\n")
    h, _ = _hosts(f, reload=0.0, fall=("sub.example.org.",))
    await h.start()
    for name, qtype in [("a.example.org", "A"), ("a.example.org", "TXT"),
                        ("nope.example.org", "A"), ("1.0.0.10.in-addr.arpa", "PTR")]:
        req = _req(name, qtype)
        await h.serve(req)
        assert req.memo_deps == [(h.version, h.version.n)], name
    n = h.version.n
    f.write_text("10.0.0.2 a.example.org\n")
    await h.load()
    assert h.version.n == n + 1


async def test_pass_on_adds_a_dependency_only_when_the_next_answer_is_reusable(
        tmp_path: Path) -> None:
    h, nxt = _hosts(tmp_path / "missing", "10.0.0.1 a.example.org",
                    fall=("sub.example.org.",), reload=0.0)
    await h.start()
    req = _req("x.sub.example.org")
    await h.serve(req)
    assert req.memo_deps is None  # the next plugin did not opt in: nothing to replay

    async def reusable_next(r: Request) -> dns.message.Message:
        r.reusable()
        return r.reply()

    nxt.serve = reusable_next  # type: ignore[method-assign]
    req = _req("x.sub.example.org")
    await h.serve(req)
    assert req.memo_deps == [(h.version, h.version.n)]
    req = _req("out.example.net")  # outside the zones: our data can never matter
    await h.serve(req)
    assert req.memo_deps == []


async def test_inline_entries_outside_the_zones_are_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h, _ = _hosts(tmp_path / "missing", "10.0.0.1 a.example.org other.example.net\n"
                  "10.0.0.2 x.example.com", reload=0.0)
    with caplog.at_level(logging.WARNING, logger="kdns.plugin.hosts"):
        await h.start()
    assert ("inline entries outside the zones example.org. are ignored: other.example.net. "
            "x.example.com.") in [r.getMessage() for r in caplog.records]
    assert _answer(await h.serve(_req("a.example.org"))) == ["a.example.org. 10.0.0.1"]


async def test_queries_before_the_first_read_wait_for_it(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.example.org\n")
    h, _ = _hosts(f, reload=0.0)
    early = asyncio.ensure_future(h.serve(_req("a.example.org")))  # before start() is called
    await asyncio.sleep(0.05)
    assert not early.done()
    start = asyncio.ensure_future(h.start())
    await asyncio.sleep(0)  # start() is now reading the file in a thread
    during = asyncio.ensure_future(h.serve(_req("a.example.org")))
    await start
    for fut in (early, during):
        assert _answer(await asyncio.wait_for(fut, 5)) == ["a.example.org. 10.0.0.1"]
