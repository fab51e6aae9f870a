from __future__ import annotations

import pytest

from kdns.cni.errors import CniError
from kdns.cni.result import parse_result, render_result

RESULT = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "br0", "mac": "02:00:00:00:00:01"},
                   {"name": "eth0", "mac": "02:00:00:00:00:02", "mtu": 1400,
                    "sandbox": "/run/netns/p"}],
    "ips": [{"interface": 1, "address": "10.0.0.5/24", "gateway": "10.0.0.1"},
            {"interface": 1, "address": "fd00::5/64"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.1.0.0/16", "gw": "10.0.0.9", "mtu": 1300,
                                      "priority": 5, "table": 100, "scope": 0}],
    "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
}


def test_round_trip_at_1_1_0_is_lossless() -> None:
    assert render_result(parse_result(RESULT), "1.1.0") == RESULT


def test_1_0_0_drops_the_1_1_fields() -> None:
    out = render_result(parse_result(RESULT), "1.0.0")
    assert out["interfaces"][1] == {"name": "eth0", "mac": "02:00:00:00:00:02",
                                    "sandbox": "/run/netns/p"}
    assert out["routes"][1] == {"dst": "10.1.0.0/16", "gw": "10.0.0.9"}
    assert "version" not in out["ips"][0]


def test_0_4_0_names_the_family_of_every_ip() -> None:
    out = render_result(parse_result(RESULT), "0.4.0")
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert list(out["ips"][0]) == ["version", "interface", "address", "gateway"]


def test_an_ipam_result_has_no_interfaces_and_empty_dns_is_kept() -> None:
    out = render_result(parse_result({"ips": [{"address": "10.0.0.5/24"}]}), "1.0.0")
    assert out == {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24"}], "dns": {}}


def test_0_3_1_input_with_version_keys_is_accepted() -> None:
    res = parse_result({"cniVersion": "0.3.1",
                        "ips": [{"version": "4", "address": "10.0.0.5/24"}]})
    assert str(res.ips[0].address) == "10.0.0.5/24"


@pytest.mark.parametrize("bad", [
    [], {"ips": [{"address": "10.0.0.5"}]}, {"ips": [{"address": "nope/24"}]},
    {"routes": [{"dst": "10.0.0.0"}]}, {"interfaces": [{"name": 3}]}, {"dns": []},
    {"ips": "x"}, {"routes": [{"dst": "0.0.0.0/0", "mtu": "big"}]}])
def test_malformed_results_are_decode_errors(bad: object) -> None:
    with pytest.raises(CniError) as e:
        parse_result(bad)
    assert e.value.code == 6
