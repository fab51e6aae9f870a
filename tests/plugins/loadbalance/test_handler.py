"""loadbalance handler in-process: which replies are reordered, and what the fast path is told."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from kdns.plugin import Request
from kdns.plugins.loadbalance.handler import LoadBalance
from kdns.plugins.loadbalance.parse import LoadBalanceConfig


class _Next:
    name = "next"

    def __init__(self, rcode: int = dns.rcode.NOERROR) -> None:
        self.rcode = rcode
        self.last: dns.message.Message | None = None

    async def serve(self, req: Request) -> dns.message.Message:
        r = req.reply(self.rcode, aa=True)
        r.answer = [dns.rrset.from_text(req.name, 5, "IN", "A", "10.0.0.1", "10.0.0.2",
                                        "10.0.0.3")]
        req.reusable()
        self.last = r
        return r


def _req(qtype: str = "A") -> Request:
    return Request(dns.message.make_query("a.example.", qtype), ("127.0.0.1", 1), "udp")


async def test_round_robin_copies_and_asks_for_rotation() -> None:
    nxt = _Next()
    lb = LoadBalance(nxt, LoadBalanceConfig())
    req = _req()
    out = await lb.serve(req)
    assert out is not nxt.last and nxt.last is not None
    assert [rd.to_text() for rd in nxt.last.answer[0]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert req.memo_rotate and not req.no_memo


@pytest.mark.parametrize("cfg", [
    LoadBalanceConfig(prefer=(ipaddress.ip_network("10.0.0.3/32"),)),
    LoadBalanceConfig("weighted", "/nonexistent"),
])
async def test_prefer_and_weighted_opt_out_of_replay(cfg: LoadBalanceConfig) -> None:
    req = _req()
    out = await LoadBalance(_Next(), cfg).serve(req)
    assert req.no_memo
    if cfg.prefer:
        assert out.answer[0][0].to_text() == "10.0.0.3"


@pytest.mark.parametrize("net", ["192.168.0.0/16", "10.0.0.0/8"])  # matches none / all
async def test_prefer_that_changes_nothing_stays_replayable(net: str) -> None:
    req = _req()
    await LoadBalance(_Next(), LoadBalanceConfig(prefer=(ipaddress.ip_network(net),))).serve(req)
    assert req.memo_rotate and not req.no_memo


@pytest.mark.parametrize("rcode,qtype", [(dns.rcode.NXDOMAIN, "A"), (dns.rcode.NOERROR, "AXFR")])
async def test_errors_and_transfers_pass_untouched(rcode: int, qtype: str) -> None:
    nxt = _Next(rcode)
    req = _req(qtype)
    out = await LoadBalance(nxt, LoadBalanceConfig()).serve(req)
    assert out is nxt.last
    assert not req.memo_rotate and not req.no_memo


async def test_fast_path_replay_keeps_cnames_first() -> None:
    """A replayed round_robin answer rotates, but a CNAME must stay in front even when its
    record happens to be as long as an A record (target 'x' + pointer: 4 bytes of rdata)."""
    from kdns.chain import Chain, Listener
    from kdns.metrics import ServerStats
    from kdns.query import QueryProcessor

    class CnameNext:
        name = "next"

        async def serve(self, req: Request) -> dns.message.Message:
            r = req.reply(aa=True)
            r.answer = [dns.rrset.from_text(req.name, 5, "IN", "CNAME", "x.example."),
                        dns.rrset.from_text("x.example.", 5, "IN", "A", "10.0.0.1")]
            req.reusable()
            return r

    lb = LoadBalance(CnameNext(), LoadBalanceConfig())
    lst = Listener("dns", 53)
    lst.zones["example."] = Chain(("example.",), lb, [lb], ["loadbalance"])
    p = QueryProcessor(lst, stats=ServerStats())
    wire = dns.message.make_query("a.example.", "A").to_wire()
    first = await p.process(wire, ("127.0.0.1", 1), "udp")
    assert first is not None
    replies = [first] + [p.fast(wire, ("127.0.0.1", 1), "udp") or
                         await p.process(wire, ("127.0.0.1", 1), "udp") for _ in range(3)]
    for reply in replies:
        assert reply is not None
        types = [dns.rdatatype.to_text(rr.rdtype) for rr in dns.message.from_wire(reply).answer]
        assert types == ["CNAME", "A"]


async def test_single_record_answers_stay_replayable_unrotated() -> None:
    class One(_Next):
        async def serve(self, req: Request) -> dns.message.Message:
            r = req.reply(aa=True)
            r.answer = [dns.rrset.from_text(req.name, 5, "IN", "A", "10.0.0.1"),
                        dns.rrset.from_text(req.name, 5, "IN", "TXT", '"a"', '"b"')]
            req.reusable()
            return r

    for cfg in (LoadBalanceConfig(), LoadBalanceConfig(prefer=(ipaddress.ip_network("::/0"),))):
        req = _req()
        await LoadBalance(One(), cfg).serve(req)
        assert req.memo_deps == [] and not req.memo_rotate and not req.no_memo


async def test_weight_file_reload_keeps_old_weights_on_a_bad_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    f = tmp_path / "w"
    f.write_text("a.example\n10.0.0.1 5\n")
    lb = LoadBalance(_Next(), LoadBalanceConfig("weighted", str(f), reload=0.05))
    await lb.start()
    try:
        assert lb.weights == {"a.example.": {ipaddress.ip_address("10.0.0.1"): 5}}
        f.write_text("a.example\n10.0.0.1 7\n10.0.0.2 9\n")
        for _ in range(100):
            if len(lb.weights.get("a.example.", {})) == 2:
                break
            await asyncio.sleep(0.02)
        assert lb.weights["a.example."][ipaddress.ip_address("10.0.0.2")] == 9
        with caplog.at_level(logging.ERROR, logger="kdns.plugin.loadbalance"):
            f.write_text("a.example\n10.0.0.1 0\n")
            for _ in range(100):
                if caplog.records:
                    break
                await asyncio.sleep(0.02)
        assert 'wrong weight value:"0"' in caplog.records[0].getMessage()
        assert lb.weights["a.example."][ipaddress.ip_address("10.0.0.2")] == 9
    finally:
        await lb.stop()
    assert lb._task is None


async def test_missing_weight_file_with_reload_warns_and_retries(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    f = tmp_path / "later"
    lb = LoadBalance(_Next(), LoadBalanceConfig("weighted", str(f), reload=0.05))
    with caplog.at_level(logging.WARNING, logger="kdns.plugin.loadbalance"):
        await lb.start()
    try:
        assert "Failed to open weight file" in caplog.records[0].getMessage()
        f.write_text("a.example\n10.0.0.3 2\n")
        for _ in range(100):
            if lb.weights:
                break
            await asyncio.sleep(0.02)
        assert lb.weights == {"a.example.": {ipaddress.ip_address("10.0.0.3"): 2}}
    finally:
        await lb.stop()
