from __future__ import annotations

from typing import Any

import pytest

from kdns.cni.errors import CniError
from kdns.cni.netconf import bridge_mac, host_veth_name, node_identity, parse_bridge_config

BASE: dict[str, Any] = {"cniVersion": "1.0.0", "name": "net", "type": "kdns-cni",
                        "ipam": {"type": "host-local"}}


def test_defaults_follow_the_reference_bridge() -> None:
    cfg = parse_bridge_config(BASE)
    assert (cfg.bridge, cfg.mtu, cfg.is_gateway, cfg.ip_masq) == ("cni0", 1500, False, False)
    assert cfg.state_dir == "/var/lib/cni/kdns-cni"


def test_is_default_gateway_implies_is_gateway_and_runtime_mac_is_read() -> None:
    cfg = parse_bridge_config({**BASE, "isDefaultGateway": True, "mtu": 1450,
                               "runtimeConfig": {"mac": "0A:58:0A:F4:01:02"}})
    assert cfg.is_gateway and cfg.is_default_gateway and cfg.mtu == 1450
    assert cfg.mac == "0a:58:0a:f4:01:02"


@pytest.mark.parametrize("override,code,needle", [
    ({"name": ""}, 7, "network name"), ({"name": ".."}, 7, "network name"),
    ({"bridge": "x" * 16}, 7, "bridge"),
    ({"mtu": 20}, 7, "mtu"), ({"mtu": "1500"}, 7, "mtu"), ({"ipMasq": "yes"}, 7, "ipMasq"),
    ({"ipam": {}}, 7, "ipam.type"), ({"ipam": {"type": "../x"}}, 7, "ipam.type"),
    ({"runtimeConfig": {"mac": "01:00:00:00:00:01"}}, 7, "unicast"),
    ({"runtimeConfig": {"mac": "zz"}}, 7, "MAC"), ({"vlan": 100}, 2, "vlan"),
    ({"stateDir": "relative"}, 7, "stateDir"), ({"dns": {"nameservers": "x"}}, 7, "dns")])
def test_bad_configs_are_rejected_with_the_right_code(override: dict[str, Any], code: int,
                                                      needle: str) -> None:
    with pytest.raises(CniError) as e:
        parse_bridge_config({**BASE, **override})
    assert e.value.code == code and needle in str(e.value)


def test_names_and_macs_are_deterministic() -> None:
    assert host_veth_name("c1", "eth0") == host_veth_name("c1", "eth0")
    assert host_veth_name("c1", "eth0") != host_veth_name("c1", "eth1")
    assert host_veth_name("c1e", "th0") != host_veth_name("c1", "eth0")
    assert len(host_veth_name("x" * 64, "eth0")) <= 15
    mac = bridge_mac("cni0", "node-a")
    assert mac == bridge_mac("cni0", "node-a") and mac != bridge_mac("cni1", "node-a")
    assert mac != bridge_mac("cni0", "node-b")
    assert node_identity()
    first = int(mac.split(":")[0], 16)
    assert first & 2 and not first & 1  # locally administered unicast
