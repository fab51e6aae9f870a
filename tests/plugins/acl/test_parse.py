"""acl Corefile syntax (CoreDNS plugin/acl/setup_test.go cases plus kdns's error texts)."""

from __future__ import annotations

import ipaddress

import pytest

from kdns.errors import CorefileError
from kdns.plugins.acl.handler import Acl
from kdns.plugins.acl.parse import ALL_NETWORKS, Action, Network, Policy
from tests.chainbuild import plugins_of


def _rules(body: str, keys: str = ".") -> list[Acl]:
    return plugins_of(f"{keys} {{\n{body}\nwhoami\n}}\n", Acl)


def _policies(body: str) -> tuple[Policy, ...]:
    (acl,) = _rules(body)
    return acl.rule.policies


def _net(*texts: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


@pytest.mark.parametrize("body,expected", [
    ("acl {\n block type A net 192.168.0.0/16\n}",
     [Policy(Action.BLOCK, frozenset({1}), _net("192.168.0.0/16"))]),
    ("acl {\n block type * net 192.168.0.0/16\n}",
     [Policy(Action.BLOCK, None, _net("192.168.0.0/16"))]),
    ("acl {\n block type A net *\n}", [Policy(Action.BLOCK, frozenset({1}), ALL_NETWORKS)]),
    ("acl {\n allow type * net 192.168.1.0/24\n block type * net 192.168.0.0/16\n}",
     [Policy(Action.ALLOW, None, _net("192.168.1.0/24")),
      Policy(Action.BLOCK, None, _net("192.168.0.0/16"))]),
    ("acl {\n allow net 192.168.0.0/16\n block\n}",
     [Policy(Action.ALLOW, None, _net("192.168.0.0/16")),
      Policy(Action.BLOCK, None, ALL_NETWORKS)]),
    ("acl {\n filter type A AAAA\n drop net 10.0.0.1 2001:db8::1\n}",
     [Policy(Action.FILTER, frozenset({1, 28}), ALL_NETWORKS),
      Policy(Action.DROP, None, _net("10.0.0.1/32", "2001:db8::1/128"))]),
    # Sections in any order, repeated, and case-insensitive keywords (as CoreDNS).
    ("acl {\n BLOCK net 10.0.0.0/8 TYPE MX net 10.1.2.3/8\n}",
     [Policy(Action.BLOCK, frozenset({15}), _net("10.0.0.0/8"))]),
    ("acl {\n block net 192.168.1.5/24\n}",  # host bits allowed, as net.ParseCIDR does
     [Policy(Action.BLOCK, None, _net("192.168.1.0/24"))]),
    ("acl {\n block net * 10.0.0.0/8\n}", [Policy(Action.BLOCK, None, ALL_NETWORKS)]),
    ("acl\n", []),
])
def test_policies(body: str, expected: list[Policy]) -> None:
    assert list(_policies(body)) == expected


def test_zones_default_to_the_block_and_repeat() -> None:
    acls = _rules("acl a.example.org {\n block net 192.168.1.0/24\n}\n"
                  "acl B.example.ORG. {\n block net 192.168.2.0/24\n}\nacl", "example.org")
    assert [a.rule.zones for a in acls] == [("a.example.org.",), ("b.example.org.",),
                                            ("example.org.",)]
    assert [a.rule.by_source for a in acls] == [True, True, False]


def test_by_source_only_when_some_policy_restricts_the_source() -> None:
    (a,) = _rules("acl {\n block type A\n filter net *\n}")
    assert not a.rule.by_source
    (a,) = _rules("acl {\n block type A net 0.0.0.0/0\n}")  # IPv6 clients are not matched
    assert a.rule.by_source


E = "plugin/acl: Corefile:{line} - Error during parsing: "


@pytest.mark.parametrize("body,line,msg", [
    ("acl {\n block A net 192.168.0.0/16\n}", 3, "unexpected token 'A'; expect 'type | net'"),
    ("acl {\n block type net 192.168.0.0/16\n}", 3, "no token specified in 'type' section"),
    ("acl {\n block net\n}", 3, "no token specified in 'net' section"),
    ("acl {\n block type ABC net 192.168.0.0/16\n}", 3,
     "unexpected token 'ABC'; expect legal QTYPE"),
    ("acl {\n block type a\n}", 3, "unexpected token 'a'; expect legal QTYPE"),
    ("acl {\n block type TYPE65\n}", 3, "unexpected token 'TYPE65'; expect legal QTYPE"),
    ("acl {\n blck type A net 192.168.0.0/16\n}", 3,
     "unexpected token 'blck'; expect 'allow', 'block', 'filter' or 'drop'"),
    ("acl {\n block type A net 192.168.0/16\n}", 3, "illegal CIDR notation '192.168.0/16'"),
    ("acl {\n block type A net 192.168.0.0/33\n}", 3,
     "illegal CIDR notation '192.168.0.0/33'"),
    ("acl {\n allow\n block net 2001:db8::/129\n}", 4,
     "illegal CIDR notation '2001:db8::/129'"),
    ("acl {\n block net example.org\n}", 3, "illegal CIDR notation 'example.org/32'"),
    ("acl {\n block file /tmp/x\n}", 3, "unexpected token 'file'; expect 'type | net'"),
    ("acl bad..zone {\n block\n}", 2, "invalid zone 'bad..zone'"),
])
def test_parse_errors(body: str, line: int, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        _rules(body)
    assert str(e.value) == E.format(line=line) + msg
