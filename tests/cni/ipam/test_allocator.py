from __future__ import annotations

import ipaddress
import itertools

from kdns.cni.ipam.allocator import candidates
from kdns.cni.ipam.config import RangeSet, parse_range


def rs(*specs: dict[str, str]) -> RangeSet:
    return tuple(parse_range(s) for s in specs)


def walk(range_set: RangeSet, last: str | None) -> list[str]:
    addr = ipaddress.ip_address(last) if last else None
    return [str(a.ip) for a, _ in candidates(range_set, addr)]


def test_fresh_walk_skips_the_gateway_and_covers_every_address_once() -> None:
    assert walk(rs({"subnet": "10.0.0.0/29"}), None) == [f"10.0.0.{i}" for i in range(2, 7)]


def test_round_robin_starts_after_the_last_reserved_and_wraps() -> None:
    out = walk(rs({"subnet": "10.0.0.0/29"}), "10.0.0.4")
    assert out == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_walk_crosses_ranges_in_a_set() -> None:
    set_ = rs({"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"})
    assert walk(set_, "10.0.0.2") == ["10.0.1.2", "10.0.0.2"]
    assert walk(set_, None) == ["10.0.0.2", "10.0.1.2"]


def test_a_last_reserved_outside_the_set_restarts_at_the_beginning() -> None:
    assert walk(rs({"subnet": "10.0.0.0/30"}), "192.168.0.1") == ["10.0.0.2"]


def test_gateway_inside_a_custom_range_is_skipped_and_prefix_is_the_subnets() -> None:
    set_ = rs({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.12",
               "gateway": "10.0.0.11"})
    got = list(candidates(set_, None))
    assert [str(a) for a, _ in got] == ["10.0.0.10/24", "10.0.0.12/24"]
    assert {str(g) for _, g in got} == {"10.0.0.11"}


def test_ipv6_walk_is_lazy() -> None:
    first = list(itertools.islice(candidates(rs({"subnet": "fd00::/64"}), None), 3))
    assert [str(a) for a, _ in first] == ["fd00::2/64", "fd00::3/64", "fd00::4/64"]
