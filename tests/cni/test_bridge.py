"""The pure parts of the bridge plugin: default routes and chaining after another plugin."""

from __future__ import annotations

import ipaddress

import pytest

from kdns.cni.bridge import chain_result, with_default_routes
from kdns.cni.errors import CniError
from kdns.cni.result import DNS, Interface, IPConfig, Result, Route


def ipc(addr: str, gw: str | None, interface: int | None = 2) -> IPConfig:
    return IPConfig(ipaddress.ip_interface(addr), ipaddress.ip_address(gw) if gw else None,
                    interface)


def test_default_routes_per_family_and_conflict_with_ipam() -> None:
    ips = [ipc("10.0.0.5/24", "10.0.0.1"), ipc("fd00::5/64", "fd00::1"), ipc("10.1.0.5/24", None)]
    routes = with_default_routes(ips, [])
    assert [(str(r.dst), str(r.gw)) for r in routes] == [("0.0.0.0/0", "10.0.0.1"),
                                                          ("::/0", "fd00::1")]
    with pytest.raises(CniError) as e:
        with_default_routes(ips, [Route(ipaddress.ip_network("0.0.0.0/0"))])
    assert "isDefaultGateway ineffective" in e.value.msg


def test_chain_result_appends_and_rebases_interface_indexes() -> None:
    prev = Result(interfaces=(Interface("lo0"),), ips=(ipc("192.168.0.2/24", None, 0),),
                  dns=DNS(nameservers=("1.1.1.1",)))
    own = Result(interfaces=(Interface("br"), Interface("veth"), Interface("eth0", sandbox="/x")),
                 ips=(ipc("10.0.0.5/24", "10.0.0.1"),))
    out = chain_result(prev, own)
    assert [i.name for i in out.interfaces] == ["lo0", "br", "veth", "eth0"]
    assert [i.interface for i in out.ips] == [0, 3]
    assert out.dns.nameservers == ("1.1.1.1",)
    assert chain_result(None, own) is own
