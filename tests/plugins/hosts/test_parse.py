"""hosts Corefile syntax: snippet -> HostsConfig, or the exact error with file:line."""

from __future__ import annotations

import ipaddress

import pytest

from kdns.errors import CorefileError
from kdns.plugins.hosts.handler import Hosts
from kdns.plugins.hosts.parse import HostsConfig
from kdns.plugins.hosts.table import HostLine
from tests.chainbuild import first_plugin

COREFILE_PATH = "/etc/kdns/Corefile"



def _config(body: str, keys: str = "example.org") -> HostsConfig:
    return first_plugin(f"{keys} {{\n{body}\n}}\n", Hosts, COREFILE_PATH).cfg


def _line(addr: str, *names: str) -> HostLine:
    return HostLine(ipaddress.ip_address(addr), names)


ORG = ("example.org.",)

OK_CASES = [
    ("hosts", HostsConfig("/etc/hosts", ORG)),
    ("hosts my.hosts", HostsConfig("/etc/kdns/my.hosts", ORG)),
    ("hosts ../x/h", HostsConfig("/etc/x/h", ORG)),
    ("hosts /srv/h A.org b.ORG.", HostsConfig("/srv/h", ("a.org.", "b.org."))),
    ("hosts /srv/h 10.0.0.0/8", HostsConfig("/srv/h", ("10.in-addr.arpa.",))),
    ("hosts {\n ttl 60\n no_reverse\n reload 0\n}",
     HostsConfig("/etc/hosts", ORG, ttl=60, reverse=False, reload=0.0)),
    ("hosts {\n reload 1m30s\n}", HostsConfig("/etc/hosts", ORG, reload=90.0)),
    ("hosts {\n reload 300ms\n}", HostsConfig("/etc/hosts", ORG, reload=0.3)),
    ("hosts {\n ttl 65535\n}", HostsConfig("/etc/hosts", ORG, ttl=65535)),
    ("hosts {\n fallthrough\n}", HostsConfig("/etc/hosts", ORG, fall=(".",))),
    ("hosts {\n fallthrough a.org 10.0.0.0/8\n}",
     HostsConfig("/etc/hosts", ORG, fall=("a.org.", "10.in-addr.arpa."))),
    ("hosts {\n fallthrough\n fallthrough_unsupported\n}",
     HostsConfig("/etc/hosts", ORG, fall=(".",), fall_unsupported=True)),
    ("hosts {\n 10.0.0.1 a.example.org B.example.org.\n ::1 a.example.org\n fallthrough\n}",
     HostsConfig("/etc/hosts", ORG, fall=(".",), inline=(
         _line("10.0.0.1", "a.example.org.", "b.example.org."),
         _line("::1", "a.example.org."),
     ))),
    ("hosts {\n ::ffff:10.0.0.2 m.example.org\n fe80::1%eth0 z.example.org\n}",
     HostsConfig("/etc/hosts", ORG, inline=(
         _line("10.0.0.2", "m.example.org."), _line("fe80::1", "z.example.org."),
     ))),
    ("hosts {\n 10.0.0.1 *.w.example.org\n}",
     HostsConfig("/etc/hosts", ORG, inline=(_line("10.0.0.1", "*.w.example.org."),))),
]


@pytest.mark.parametrize("body,want", OK_CASES, ids=[c[0] for c in OK_CASES])
def test_parse_ok(body: str, want: HostsConfig) -> None:
    assert _config(body) == want


def test_default_zones_are_the_block_keys() -> None:
    assert _config("hosts", "a.org b.org:53 10.1.0.0/16").origins == (
        "a.org.", "b.org.", "1.10.in-addr.arpa.")


E = "plugin/hosts: Corefile:{line} - Error during parsing: "

ERR_CASES = [
    ("hosts {\n ttl\n}", 3, "ttl needs a time in second"),
    ("hosts {\n ttl abc\n}", 3, "ttl needs a number of second"),
    ("hosts {\n ttl 0\n}", 3, "ttl provided is invalid"),
    ("hosts {\n ttl 65536\n}", 3, "ttl provided is invalid"),
    ("hosts {\n ttl 5 6\n}", 3, "Wrong argument count or unexpected line ending after '6'"),
    ("hosts {\n reload\n}", 3, "reload needs a duration (zero seconds to disable)"),
    ("hosts {\n reload 5x\n}", 3, "invalid duration for reload: '5x'"),
    ("hosts {\n reload -5s\n}", 3, "invalid negative duration for reload '-5s'"),
    ("hosts {\n no_reverse yes\n}", 3,
     "Wrong argument count or unexpected line ending after 'yes'"),
    ("hosts {\n fallthruogh\n}", 3, "unknown property 'fallthruogh'"),
    ("hosts {\n fallthrough\n 10.0.0.1 late.example.org\n}", 4, "unknown property '10.0.0.1'"),
    ("hosts {\n 10.0.0.1\n}", 3,
     "invalid hosts entry '10.0.0.1': an address needs at least one name"),
    ("hosts {\n 10.0.0.1 bad..name\n}", 3,
     "invalid hosts entry '10.0.0.1 bad..name': 'bad..name' is not a valid host name"),
    ("hosts {\n fallthrough_unsupported\n}", 3,
     "fallthrough_unsupported requires fallthrough"),
    ("hosts {\n fallthrough bad..zone\n}", 3, "invalid zone 'bad..zone'"),
    ("hosts h bad..zone", 2, "invalid zone 'bad..zone'"),
    ('hosts ""', 2, "hosts file path is empty"),
    ("hosts\nhosts", 3, "this plugin can only be used once per Server Block"),
]


@pytest.mark.parametrize("body,line,msg", ERR_CASES, ids=[c[0] for c in ERR_CASES])
def test_parse_errors(body: str, line: int, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        _config(body)
    assert str(e.value) == E.format(line=line) + msg
