from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kdns.cni.errors import CniError
from kdns.cni.ipam.config import parse_ipam_config


def conf(**ipam: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "net", "ipam": {"type": "kdns-ipam", **ipam}}


def test_range_defaults_match_host_local() -> None:
    cfg = parse_ipam_config(conf(ranges=[[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]))
    v4, v6 = cfg.range_sets[0][0], cfg.range_sets[1][0]
    assert (str(v4.range_start), str(v4.range_end), str(v4.gateway)) == (
        "10.0.0.1", "10.0.0.254", "10.0.0.1")
    assert str(v6.range_end) == "fd00::ffff:ffff:ffff:ffff"  # no broadcast in IPv6
    assert cfg.data_dir == "/var/lib/cni/networks"


def test_legacy_top_level_subnet_and_routes() -> None:
    cfg = parse_ipam_config(conf(subnet="10.1.0.0/16", rangeStart="10.1.2.0",
                                 rangeEnd="10.1.2.255", gateway="10.1.0.254",
                                 routes=[{"dst": "0.0.0.0/0", "gw": "10.1.0.254"}]))
    r = cfg.range_sets[0][0]
    assert str(r) == "10.1.2.0-10.1.2.255" and str(r.gateway) == "10.1.0.254"
    assert str(cfg.routes[0].gw) == "10.1.0.254"


def test_requested_ips_from_all_three_sources() -> None:
    c = conf(subnet="10.0.0.0/24")
    c["args"] = {"cni": {"ips": ["10.0.0.7"]}}
    c["runtimeConfig"] = {"ips": ["10.0.0.8/24"]}
    cfg = parse_ipam_config(c, (("IP", "10.0.0.5,10.0.0.6"),))
    assert [str(ip) for ip in cfg.requested_ips] == [
        "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"]


@pytest.mark.parametrize("ipam,needle", [
    ({}, "no IP ranges"), ({"subnet": "10.0.0.0"}, "CIDR"), ({"subnet": "bogus/8"}, "CIDR"),
    ({"subnet": "10.0.0.1/24"}, "host bits"), ({"subnet": "10.0.0.0/31"}, "too small"),
    ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}, "not in network"),
    ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.8"}, "after"),
    ({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.128/25"}]]}, "overlap"),
    ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}, "overlaps"),
    ({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}, "mixed"),
    ({"ranges": "x"}, "ranges"), ({"subnet": "10.0.0.0/24", "routes": [{"dst": "x"}]}, "route"),
    ({"subnet": "10.0.0.0/24", "gateway": "fd00::1"}, "family")])
def test_invalid_ipam_configs(ipam: dict[str, Any], needle: str) -> None:
    with pytest.raises(CniError) as e:
        parse_ipam_config(conf(**ipam))
    assert e.value.code == 7 and needle in str(e.value)


def test_network_name_must_be_a_safe_directory_name() -> None:
    with pytest.raises(CniError):
        parse_ipam_config({**conf(subnet="10.0.0.0/24"), "name": "../etc"})
    assert ipaddress.ip_address("10.0.0.1")  # keep the import honest
