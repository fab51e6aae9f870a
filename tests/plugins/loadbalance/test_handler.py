"""loadbalance handler in-process: which replies are reordered, and what the fast path is told."""

from __future__ import annotations

import ipaddress

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


@pytest.mark.parametrize("rcode,qtype", [(dns.rcode.NXDOMAIN, "A"), (dns.rcode.NOERROR, "AXFR")])
async def test_errors_and_transfers_pass_untouched(rcode: int, qtype: str) -> None:
    nxt = _Next(rcode)
    req = _req(qtype)
    out = await LoadBalance(nxt, LoadBalanceConfig()).serve(req)
    assert out is nxt.last
    assert not req.memo_rotate and not req.no_memo
