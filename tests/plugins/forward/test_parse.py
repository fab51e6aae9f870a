"""forward's Corefile syntax: accepted forms -> config, rejected forms -> exact error text."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdns.plugins.forward.parse import (
    ForwardConfig,
    Upstream,
    host_port,
    parse,
    resolv_conf_nameservers,
)
from tests.upstream.corefiles import build_error, build_text, dispenser


def cfg(body: str) -> ForwardConfig:
    return parse(dispenser(f".:53 {{\n{body}\n}}\n", "forward"))


@pytest.mark.parametrize("body,expect", [
    ("forward . 10.0.0.1", {"from_zone": ".", "upstreams": (Upstream("10.0.0.1", 53),)}),
    ("forward Example.ORG 10.0.0.1:5353 [::1]:53 ::2 dns://10.0.0.3",
     {"from_zone": "example.org.", "upstreams": (
         Upstream("10.0.0.1", 5353), Upstream("::1", 53), Upstream("::2", 53),
         Upstream("10.0.0.3", 53))}),
    ("forward . 1.1.1.1 {\n except Foo.org bar.com\n}",
     {"except_zones": ("foo.org.", "bar.com.")}),
    ("forward . 1.1.1.1 {\n force_tcp\n prefer_udp\n}", {"force_tcp": True, "prefer_udp": False}),
    ("forward . 1.1.1.1 {\n prefer_udp\n}", {"prefer_udp": True}),
    ("forward . 1.1.1.1 {\n expire 1m30s\n max_fails 0\n}", {"expire": 90.0, "max_fails": 0}),
    ("forward . 1.1.1.1 {\n health_check 2s no_rec domain Example.com\n}",
     {"hc_interval": 2.0, "hc_recursion": False, "hc_domain": "example.com."}),
    ("forward . 1.1.1.1 {\n policy round_robin\n}", {"policy": "round_robin"}),
    ("forward . 1.1.1.1 {\n policy sequential\n max_concurrent 1000\n}",
     {"policy": "sequential", "max_concurrent": 1000}),
    ("forward . 1.1.1.1 {\n next NXDOMAIN servfail\n}", {"next_rcodes": frozenset({3, 2})}),
    ("forward . 1.1.1.1 {\n failover REFUSED\n}", {"failover_rcodes": frozenset({5})}),
    ("forward . 1.1.1.1 {\n failfast_all_unhealthy_upstreams\n max_connect_attempts 4\n}",
     {"failfast_all_unhealthy": True, "max_connect_attempts": 4}),
    ("forward 10.0.0.0/8 1.1.1.1", {"from_zone": "10.in-addr.arpa."}),
    ("forward . 1.1.1.1 {\n read_timeout 500ms\n max_idle_conns 8\n max_age 30s\n"
     " source_address 127.0.0.2\n}", {"read_timeout": 0.5, "max_idle_conns": 8,
                                       "max_age": 30.0, "source_address": "127.0.0.2"}),
])
def test_accepted(body: str, expect: dict[str, object]) -> None:
    c = cfg(body)
    for k, v in expect.items():
        assert getattr(c, k) == v, k


def test_defaults_are_coredns_defaults() -> None:
    c = cfg("forward . 1.1.1.1")
    assert (c.expire, c.max_fails, c.hc_interval, c.hc_domain, c.hc_recursion, c.policy,
            c.max_concurrent, c.force_tcp, c.prefer_udp, c.read_timeout, c.max_age) == (
        10.0, 2, 0.5, ".", True, "random", 0, False, False, 2.0, 0.0)


def test_resolv_conf_file_is_read_once_at_parse(tmp_path: Path) -> None:
    rc = tmp_path / "resolv.conf"
    rc.write_text("search default.svc cluster.local\noptions ndots:5\n"
                  "nameserver 10.0.0.53\n# nameserver 9.9.9.9\nnameserver fd00::53\n"
                  "nameserver bogus\n")
    c = cfg(f"forward . {rc} 10.1.1.1")
    assert c.upstreams == (Upstream("10.0.0.53", 53), Upstream("fd00::53", 53),
                           Upstream("10.1.1.1", 53))


def test_resolv_conf_parser() -> None:
    assert resolv_conf_nameservers("nameserver 1.2.3.4 ; x\nnameserver\t5.6.7.8\n") == [
        Upstream("1.2.3.4"), Upstream("5.6.7.8")]
    assert host_port("1.2.3.4:99") == Upstream("1.2.3.4", 99)
    assert host_port("[fe80::1]:5300") == Upstream("fe80::1", 5300)
    assert host_port("example.com") is None
    assert host_port("1.2.3.4:0") is None


def test_label_formats_like_coredns() -> None:
    assert Upstream("10.0.0.2", 53).label == "10.0.0.2:53"
    assert Upstream("::1", 53).label == "[::1]:53"


P = "plugin/forward: Corefile:2 - Error during parsing: "


@pytest.mark.parametrize("body,err", [
    ("forward", P + "Wrong argument count or unexpected line ending after 'forward'"),
    ("forward .", P + "Wrong argument count or unexpected line ending after '.'"),
    ("forward . " + " ".join(f"10.0.0.{i}" for i in range(16)),
     P + "more than 15 TOs configured"),
    ("forward . /nonexistent/resolv.conf",
     P + "not an IP address or file '/nonexistent/resolv.conf': No such file or directory"),
    ("forward . tls://1.1.1.1", P + "'tls://' upstreams are not supported by kdns: tls://1.1.1.1"),
    ("forward . 1.1.1.1 {\n bogus\n}",
     "plugin/forward: Corefile:3 - Error during parsing: unknown property 'bogus'"),
    ("forward . 1.1.1.1 {\n policy fastest\n}",
     "plugin/forward: Corefile:3 - Error during parsing: unknown policy 'fastest'"),
    ("forward . 1.1.1.1 {\n max_fails -1\n}",
     "plugin/forward: Corefile:3 - Error during parsing: max_fails out of range: -1"),
    ("forward . 1.1.1.1 {\n max_fails x\n}",
     "plugin/forward: Corefile:3 - Error during parsing: max_fails must be an integer: 'x'"),
    ("forward . 1.1.1.1 {\n expire 10\n expire\n}",
     "plugin/forward: Corefile:4 - Error during parsing: Wrong argument count or unexpected line "
     "ending after 'expire'"),
    ("forward . 1.1.1.1 {\n expire forever\n}",
     "plugin/forward: Corefile:3 - Error during parsing: invalid expire duration: 'forever'"),
    ("forward . 1.1.1.1 {\n health_check 1s maybe\n}",
     "plugin/forward: Corefile:3 - Error during parsing: health_check: unknown option maybe"),
    ("forward . 1.1.1.1 {\n health_check 1s domain\n}",
     "plugin/forward: Corefile:3 - Error during parsing: health_check: 'domain' needs a name"),
    ("forward . 1.1.1.1 {\n next BOGUS\n}",
     "plugin/forward: Corefile:3 - Error during parsing: BOGUS is not a valid rcode"),
    ("forward . 1.1.1.1 {\n tls\n}",
     "plugin/forward: Corefile:3 - Error during parsing: 'tls' is not supported by kdns: "
     "DNS-over-TLS upstreams are not implemented"),
    ("forward . 1.1.1.1 {\n read_timeout 0s\n}",
     "plugin/forward: Corefile:3 - Error during parsing: read_timeout must be positive: 0s"),
    ("forward . 1.1.1.1 {\n source_address here\n}",
     "plugin/forward: Corefile:3 - Error during parsing: source_address is not an IP address: "
     "'here'"),
    ("forward . 1.1.1.1 {\n max_idle_conns -2\n}",
     "plugin/forward: Corefile:3 - Error during parsing: max_idle_conns out of range: -2"),
    ("forward . 1.1.1.1 {\n force_tcp yes\n}",
     "plugin/forward: Corefile:3 - Error during parsing: Wrong argument count or unexpected line "
     "ending after 'yes'"),
])
def test_errors(body: str, err: str) -> None:
    assert build_error(f".:53 {{\n{body}\n}}\n") == err


def test_empty_resolv_conf(tmp_path: Path) -> None:
    rc = tmp_path / "empty.conf"
    rc.write_text("search x\n")
    assert build_error(f".:53 {{\nforward . {rc}\n}}\n") == \
        P + f"no nameservers found in '{rc}'"


def test_forward_may_repeat_in_a_block() -> None:
    listeners = build_text(".:53 {\nforward example.org 1.1.1.1\nforward . 2.2.2.2\n}\n")
    assert listeners[0].zones["."].names == ["forward", "forward"]
