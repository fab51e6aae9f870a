"""Netlink edge of kdns-cni (pyroute2): bridge, veth, addresses, routes, sysctls.

Every IPRoute bound to a namespace is opened with flags=0: pyroute2's default (O_CREAT)
would silently create a missing namespace, and DEL after the pod is gone would then quietly
wire an empty new one.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError

from kdns.cni.errors import (
    CONTAINER_UNKNOWN,
    INTERFACE_EXISTS,
    IO_FAILURE,
    PLUGIN_FAILURE,
    CniError,
)
from kdns.cni.result import IPAddress, IPConfig, IPInterface, IPNetwork, Route

IFA_F_NODAD: Final = 0x02  # pod addresses are allocated by IPAM; DAD would only delay them
MAIN_TABLE: Final = 254


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    kind: str
    mac: str
    mtu: int
    master: int


def _fail(what: str, err: Exception) -> CniError:
    return CniError(PLUGIN_FAILURE, what, str(err))


@contextmanager
def opened(netns: str | None) -> Iterator[Any]:
    """IPRoute in `netns` (a path or a name under /run/netns), or in our own namespace."""
    try:
        ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
    except FileNotFoundError as e:
        raise CniError(CONTAINER_UNKNOWN, f"network namespace {netns} does not exist") from e
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot open network namespace {netns}", str(e)) from e
    try:
        yield ipr
    finally:
        ipr.close()


def netns_exists(netns: str) -> bool:
    path = netns if "/" in netns else os.path.join("/var/run/netns", netns)
    return bool(netns) and os.path.exists(path)


def get_link(ipr: Any, name: str) -> Link | None:
    try:
        msgs = ipr.link("get", ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise _fail(f"cannot look up link {name}", e) from e
    m = msgs[0]
    info = m.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    return Link(index=m["index"], name=name, kind=kind or "",
                mac=m.get_attr("IFLA_ADDRESS") or "", mtu=m.get_attr("IFLA_MTU") or 0,
                master=m.get_attr("IFLA_MASTER") or 0)


def ensure_bridge(ipr: Any, name: str, mac: str, mtu: int, promisc: bool) -> Link:
    """Creates the bridge with `mac` set explicitly, which pins it; a bridge that already
    exists keeps the MAC it has (an operator may have chosen it)."""
    link = get_link(ipr, name)
    if link is None:
        try:
            ipr.link("add", ifname=name, kind="bridge", address=mac, mtu=mtu)
        except NetlinkError as e:
            if e.code != errno.EEXIST:  # a concurrent ADD created it first
                raise _fail(f"cannot create bridge {name}", e) from e
        link = get_link(ipr, name)
    if link is None or link.kind != "bridge":
        raise CniError(PLUGIN_FAILURE, f"{name!r} already exists but is not a bridge")
    try:
        ipr.link("set", index=link.index, state="up")
        if promisc:
            ipr.link("set", index=link.index, flags=0x100, change=0x100)  # IFF_PROMISC
    except NetlinkError as e:
        raise _fail(f"cannot configure bridge {name}", e) from e
    return get_link(ipr, name) or link


def addresses(ipr: Any, index: int) -> list[IPInterface]:
    out: list[IPInterface] = []
    for m in ipr.addr("dump", index=index):
        addr = m.get_attr("IFA_ADDRESS")
        if addr:
            out.append(ipaddress.ip_interface(f"{addr}/{m['prefixlen']}"))
    return out


def _add_addr(ipr: Any, index: int, addr: IPInterface) -> None:
    kwargs: dict[str, Any] = {"index": index, "address": str(addr.ip),
                              "prefixlen": addr.network.prefixlen}
    if addr.version == 6:
        kwargs["flags"] = IFA_F_NODAD
    try:
        ipr.addr("add", **kwargs)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise _fail(f"cannot add address {addr}", e) from e


def ensure_gateway_address(ipr: Any, bridge: Link, gw: IPInterface, force: bool) -> None:
    """The reference bridge's ensureAddr: one IPv4 address, non-overlapping IPv6 ones."""
    for have in addresses(ipr, bridge.index):
        if have.version != gw.version or (have.version == 6 and have.ip.is_link_local):
            continue
        if have == gw:
            return
        clash = gw.version == 4 or have.network.overlaps(gw.network)  # type: ignore[arg-type]
        if not clash:
            continue
        if not force:
            raise CniError(PLUGIN_FAILURE, f"{bridge.name!r} already has an IP address "
                           f"different from {gw}", str(have))
        ipr.addr("del", index=bridge.index, address=str(have.ip),
                 prefixlen=have.network.prefixlen)
    _add_addr(ipr, bridge.index, gw)


def delete_link(ipr: Any, name: str) -> bool:
    """True when a link was deleted; a missing link is not an error (DEL is idempotent)."""
    try:
        ipr.link("del", ifname=name)
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ENOENT):
            return False
        raise _fail(f"cannot delete link {name}", e) from e
    return True


def create_veth(ipr: Any, host_name: str, netns: str, ifname: str, mtu: int) -> None:
    """Creates the pair with the container end born inside the pod namespace."""
    path = netns if "/" in netns else os.path.join("/var/run/netns", netns)
    fd = os.open(path, os.O_RDONLY)
    try:
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu,
                 peer={"ifname": ifname, "net_ns_fd": fd, "mtu": mtu})
    except NetlinkError as e:
        code = INTERFACE_EXISTS if e.code == errno.EEXIST else PLUGIN_FAILURE
        raise CniError(code, f"cannot create veth {host_name} <-> {ifname}", str(e)) from e
    finally:
        os.close(fd)


def attach_host_end(ipr: Any, host_name: str, bridge: Link, hairpin: bool) -> Link:
    link = get_link(ipr, host_name)
    if link is None:
        raise CniError(PLUGIN_FAILURE, f"host veth {host_name} vanished")
    try:
        ipr.link("set", index=link.index, master=bridge.index, state="up")
        if hairpin:
            ipr.brport("set", index=link.index, mode=1)
    except NetlinkError as e:
        raise _fail(f"cannot attach {host_name} to {bridge.name}", e) from e
    return get_link(ipr, host_name) or link


def hairpin_enabled(ipr: Any, index: int) -> bool:
    for m in ipr.link("dump", family=socket.AF_BRIDGE):
        if m["index"] == index:
            info = m.get_attr("IFLA_PROTINFO")
            return bool(info is not None and info.get_attr("IFLA_BRPORT_MODE"))
    return False


def _route_kwargs(route: Route, gw: IPAddress | None, oif: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dst": str(route.dst), "oif": oif}
    if gw is not None:
        kwargs["gateway"] = str(gw)
    if route.priority:
        kwargs["priority"] = route.priority
    if route.table is not None:
        kwargs["table"] = route.table
    if route.scope is not None:
        kwargs["scope"] = route.scope
    metrics = [(k, v) for k, v in (("RTAX_MTU", route.mtu), ("RTAX_ADVMSS", route.advmss)) if v]
    if metrics:
        kwargs["metrics"] = {"attrs": metrics}
    return kwargs


def route_gateway(route: Route, ips: list[IPConfig]) -> IPAddress | None:
    """As libcni's ConfigureIface: a route without gw goes via the family's IPAM gateway."""
    if route.gw is not None:
        return route.gw
    for ipc in ips:
        if ipc.address.version == route.dst.version and ipc.gateway is not None:
            return ipc.gateway
    return None


def setup_container(ipr: Any, ifname: str, mac: str, ips: list[IPConfig],
                    routes: list[Route]) -> Link:
    link = get_link(ipr, ifname)
    if link is None:
        raise CniError(PLUGIN_FAILURE, f"container interface {ifname} vanished")
    try:
        lo = get_link(ipr, "lo")
        if lo is not None:
            ipr.link("set", index=lo.index, state="up")
        if mac:
            ipr.link("set", index=link.index, address=mac)
        ipr.link("set", index=link.index, state="up")
        for ipc in ips:
            _add_addr(ipr, link.index, ipc.address)
        for route in routes:
            _add_route(ipr, route, route_gateway(route, ips), link.index)
    except NetlinkError as e:
        raise _fail(f"cannot configure {ifname} in the container", e) from e
    return get_link(ipr, ifname) or link


def _add_route(ipr: Any, route: Route, gw: IPAddress | None, oif: int) -> None:
    try:
        ipr.route("add", **_route_kwargs(route, gw, oif))
    except NetlinkError as e:
        if e.code == errno.EEXIST:
            raise CniError(PLUGIN_FAILURE, f"route {route.dst} already exists in the container "
                           "(another interface owns it)") from e
        raise


def route_present(ipr: Any, route: Route, gw: IPAddress | None) -> bool:
    family = socket.AF_INET if route.dst.version == 4 else socket.AF_INET6
    table = route.table if route.table is not None else MAIN_TABLE
    for m in ipr.route("dump", family=family, table=table):
        dst = m.get_attr("RTA_DST")
        have: IPNetwork = ipaddress.ip_network(
            f"{dst or ('0.0.0.0' if route.dst.version == 4 else '::')}/{m['dst_len']}")
        if have != route.dst:
            continue
        have_gw = m.get_attr("RTA_GATEWAY")
        if gw is None or (have_gw and ipaddress.ip_address(have_gw) == gw):
            return True
    return False


def write_sysctl(name: str, value: str) -> None:
    """In our own namespace: /proc/sys/net is per network namespace."""
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot set {name}={value}", str(e)) from e


def read_sysctl(name: str) -> str:
    with open("/proc/sys/" + name.replace(".", "/"), encoding="ascii") as f:
        return f.read().strip()


def enable_ipv6_in(netns: str, ifname: str) -> None:
    """Pods created with IPv6 disabled would refuse the IPAM's IPv6 addresses (the reference
    bridge plugin re-enables it the same way). /proc/sys/net belongs to the namespace of the
    process that opens it, so a forked child joins the pod namespace (flags=0: never create
    one) and writes there."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    pid = os.fork()
    if pid == 0:  # child: no Python-level cleanup, just the write
        code = 1
        try:
            pyroute2_netns.setns(netns, flags=0)
            with open(path, "w", encoding="ascii") as f:
                f.write("0")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise CniError(IO_FAILURE, f"cannot enable IPv6 on {ifname} in {netns}")
