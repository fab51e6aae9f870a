"""loadbalance Corefile syntax: snippet -> LoadBalanceConfig, or the exact error with file:line."""

from __future__ import annotations

import ipaddress

import pytest

from kdns.errors import CorefileError
from kdns.plugins.loadbalance.handler import LoadBalance
from kdns.plugins.loadbalance.parse import LoadBalanceConfig
from tests.chainbuild import first_plugin


def _config(body: str) -> LoadBalanceConfig:
    return first_plugin(f". {{\n{body}\n}}\n", LoadBalance, "/etc/kdns/Corefile").cfg


def _net(s: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(s)


OK_CASES = [
    ("loadbalance", LoadBalanceConfig()),
    ("loadbalance round_robin", LoadBalanceConfig()),
    ("loadbalance {\n prefer 10.0.0.0/8 fd00::/8\n prefer 192.168.1.7/24\n}",
     LoadBalanceConfig(prefer=(_net("10.0.0.0/8"), _net("fd00::/8"), _net("192.168.1.0/24")))),
    ("loadbalance round_robin {\n prefer 10.1.0.0/16\n}",
     LoadBalanceConfig(prefer=(_net("10.1.0.0/16"),))),
    ("loadbalance weighted w.txt", LoadBalanceConfig("weighted", "/etc/kdns/w.txt")),
    ("loadbalance weighted /srv/w {\n reload 10s\n}",
     LoadBalanceConfig("weighted", "/srv/w", reload=10.0)),
    ("loadbalance weighted /srv/w {\n reload 0\n prefer 10.0.0.0/8\n}",
     LoadBalanceConfig("weighted", "/srv/w", reload=0.0, prefer=(_net("10.0.0.0/8"),))),
]


@pytest.mark.parametrize("body,want", OK_CASES, ids=[c[0] for c in OK_CASES])
def test_parse_ok(body: str, want: LoadBalanceConfig) -> None:
    assert _config(body) == want


E = "plugin/loadbalance: Corefile:{line} - Error during parsing: "

ERR_CASES = [
    ("loadbalance round_robin x", 2, "unknown property for round_robin"),
    ("loadbalance random", 2, "unknown policy: random"),
    ("loadbalance weighted", 2, "missing weight file argument"),
    ("loadbalance weighted a b", 2, "unexpected argument(s)"),
    ("loadbalance {\n prefer\n}", 3, "Wrong argument count or unexpected line ending after "
     "'prefer'"),
    ("loadbalance {\n prefer 10.0.0.0\n}", 3, 'invalid CIDR "10.0.0.0": missing prefix length'),
    ("loadbalance {\n prefer 10.0.0.0/33\n}", 3,
     "invalid CIDR \"10.0.0.0/33\": '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network"),
    ("loadbalance {\n prefer nope/8\n}", 3,
     "invalid CIDR \"nope/8\": 'nope/8' does not appear to be an IPv4 or IPv6 network"),
    ("loadbalance {\n reload 5s\n}", 3, "unknown property 'reload'"),
    ("loadbalance {\n limit_answers 2\n}", 3, "unknown property 'limit_answers'"),
    ("loadbalance weighted w {\n reload\n}", 3, "reload duration value is missing"),
    ("loadbalance weighted w {\n reload 1s 2s\n}", 3, "unexpected argument"),
    ("loadbalance weighted w {\n reload soon\n}", 3, "invalid reload duration: 'soon'"),
    ("loadbalance weighted w {\n reload -1s\n}", 3, "invalid reload duration '-1s'"),
    ("loadbalance\nloadbalance", 3, "this plugin can only be used once per Server Block"),
]


@pytest.mark.parametrize("body,line,msg", ERR_CASES, ids=[c[0] for c in ERR_CASES])
def test_parse_errors(body: str, line: int, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        _config(body)
    assert str(e.value) == E.format(line=line) + msg
