"""The CNI result model, parsed from and rendered to each spec version's JSON (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from kdns.cni import version
from kdns.cni.errors import DECODE_FAILURE, CniError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    mac: str = ""
    mtu: int = 0  # rendered from spec 1.1 on
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""


@dataclass(frozen=True, slots=True)
class IPConfig:
    address: IPInterface
    gateway: IPAddress | None = None
    interface: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    dst: IPNetwork
    gw: IPAddress | None = None
    # Spec 1.1 route attributes; 0/None means "not set".
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None


@dataclass(frozen=True, slots=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Result:
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)


def _bad(what: str, value: object) -> CniError:
    return CniError(DECODE_FAILURE, f"failed to decode result: invalid {what}", repr(value))


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise _bad(key, value)
    return value


def _int(obj: dict[str, Any], key: str, default: int | None) -> int | None:
    value = obj.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, value)
    return value


def _strs(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(key, value)
    return tuple(value)


def _objects(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(key, value)
    return value


def parse_address(value: object) -> IPAddress:
    if not isinstance(value, str):  # ip_address() would take 5 as 0.0.0.5
        raise _bad("IP address", value)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise _bad("IP address", value) from None


def parse_network(value: object) -> IPNetwork:
    # Go's net.ParseCIDR accepts host bits and masks them away; do the same.
    if not isinstance(value, str) or "/" not in value:
        raise _bad("CIDR", value)
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise _bad("CIDR", value) from None


def _parse_ip(obj: dict[str, Any]) -> IPConfig:
    raw = obj.get("address")
    if not isinstance(raw, str) or "/" not in raw:
        raise _bad("address", raw)
    try:
        address = ipaddress.ip_interface(raw)
    except ValueError:
        raise _bad("address", raw) from None
    gateway = parse_address(obj["gateway"]) if obj.get("gateway") else None
    return IPConfig(address=address, gateway=gateway, interface=_int(obj, "interface", None))


def parse_route(obj: dict[str, Any]) -> Route:
    return Route(
        dst=parse_network(obj.get("dst")),
        gw=parse_address(obj["gw"]) if obj.get("gw") else None,
        mtu=_int(obj, "mtu", 0) or 0,
        advmss=_int(obj, "advmss", 0) or 0,
        priority=_int(obj, "priority", 0) or 0,
        table=_int(obj, "table", None),
        scope=_int(obj, "scope", None),
    )


def parse_result(raw: object) -> Result:
    """Accepts a result of any supported version (0.3.x ips carry a 'version' key; ignored)."""
    if not isinstance(raw, dict):
        raise _bad("result", raw)
    interfaces = tuple(
        Interface(
            name=_str(o, "name"),
            mac=_str(o, "mac"),
            mtu=_int(o, "mtu", 0) or 0,
            sandbox=_str(o, "sandbox"),
            socket_path=_str(o, "socketPath"),
            pci_id=_str(o, "pciID"),
        )
        for o in _objects(raw, "interfaces")
    )
    dns_raw = raw.get("dns")
    dns_raw = {} if dns_raw is None else dns_raw
    if not isinstance(dns_raw, dict):
        raise _bad("dns", dns_raw)
    return Result(
        interfaces=interfaces,
        ips=tuple(_parse_ip(o) for o in _objects(raw, "ips")),
        routes=tuple(parse_route(o) for o in _objects(raw, "routes")),
        dns=parse_dns(dns_raw),
    )


def parse_dns(obj: dict[str, Any]) -> DNS:
    return DNS(
        nameservers=_strs(obj, "nameservers"),
        domain=_str(obj, "domain"),
        search=_strs(obj, "search"),
        options=_strs(obj, "options"),
    )


def render_dns(dns: DNS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


def _render_interface(iface: Interface, v11: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if v11 and iface.mtu:
        out["mtu"] = iface.mtu
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    if v11 and iface.socket_path:
        out["socketPath"] = iface.socket_path
    if v11 and iface.pci_id:
        out["pciID"] = iface.pci_id
    return out


def _render_ip(ip: IPConfig, pre_1: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pre_1:  # 0.3.x/0.4.0 name the family in every entry
        out["version"] = str(ip.address.version)
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    return out


def render_route(route: Route, v11: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        out["gw"] = str(route.gw)
    if v11:
        for key, value in (("mtu", route.mtu), ("advmss", route.advmss),
                           ("priority", route.priority)):
            if value:
                out[key] = value
        if route.table is not None:
            out["table"] = route.table
        if route.scope is not None:
            out["scope"] = route.scope
    return out


def render_result(result: Result, cni_version: str) -> dict[str, Any]:
    pre_1 = not version.at_least(cni_version, "1.0.0")
    v11 = version.at_least(cni_version, "1.1.0")
    out: dict[str, Any] = {"cniVersion": cni_version}
    if result.interfaces:
        out["interfaces"] = [_render_interface(i, v11) for i in result.interfaces]
    if result.ips:
        out["ips"] = [_render_ip(ip, pre_1) for ip in result.ips]
    if result.routes:
        out["routes"] = [render_route(r, v11) for r in result.routes]
    out["dns"] = render_dns(result.dns)
    return out
