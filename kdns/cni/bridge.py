"""kdns-cni commands: ADD, DEL, CHECK, GC and STATUS for the bridge plugin.

The orchestration only: configuration comes from netconf, addresses from the delegated IPAM,
links from netlink, masquerading from masq, and per-attachment state from state.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from kdns.cni import delegate, masq, netlink, state
from kdns.cni.errors import (
    CHECK_FAILED,
    CONTAINER_UNKNOWN,
    INTERFACE_EXISTS,
    INVALID_CONFIG,
    NOT_AVAILABLE,
    PLUGIN_FAILURE,
    CniError,
)
from kdns.cni.ipam.plugin import Attachment
from kdns.cni.netconf import (
    BridgeConfig,
    bridge_mac,
    host_veth_name,
    node_identity,
    parse_bridge_config,
)
from kdns.cni.result import DNS, Interface, IPConfig, Result, Route
from kdns.cni.skel import Request

_DEFAULT_ROUTE = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


def with_default_routes(ips: list[IPConfig], routes: list[Route]) -> list[Route]:
    """isDefaultGateway: a default route per family via that family's gateway (pure)."""
    out = list(routes)
    for family in (4, 6):
        gw = next((i.gateway for i in ips if i.address.version == family and i.gateway), None)
        if gw is None:
            continue
        if any(r.dst == _DEFAULT_ROUTE[family] for r in routes):
            raise CniError(INVALID_CONFIG, "isDefaultGateway ineffective because IPAM sets "
                           "default route via " + str(gw))
        out.append(Route(dst=_DEFAULT_ROUTE[family], gw=gw))
    return out


def chain_result(prev: Result | None, own: Result) -> Result:
    """Appends this plugin's result to prevResult, re-basing interface indexes (pure)."""
    if prev is None:
        return own
    shift = len(prev.interfaces)
    ips = tuple(IPConfig(i.address, i.gateway, None if i.interface is None else i.interface + shift)
                for i in own.ips)
    dns = own.dns if own.dns != DNS() else prev.dns
    return Result(interfaces=prev.interfaces + own.interfaces, ips=prev.ips + ips,
                  routes=prev.routes + own.routes, dns=dns)


class BridgePlugin:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def _ipam(self, cfg: BridgeConfig, command: str, req: Request) -> Result | None:
        return delegate.call(cfg.ipam_type, command, self.environ, req.stdin)

    # ADD -----------------------------------------------------------------------------------
    def add(self, req: Request) -> Result:
        cfg, env = parse_bridge_config(req.conf), req.env
        if not netlink.netns_exists(env.netns):
            raise CniError(CONTAINER_UNKNOWN, f"network namespace {env.netns} does not exist")
        host_name = host_veth_name(env.container_id, env.ifname)
        with netlink.opened(None) as host, netlink.opened(env.netns) as pod:
            if netlink.get_link(pod, env.ifname) is not None:
                raise CniError(INTERFACE_EXISTS,
                               f"container veth name provided ({env.ifname}) already exists")
            mac = bridge_mac(cfg.bridge, node_identity())
            bridge = netlink.ensure_bridge(host, cfg.bridge, mac, cfg.mtu, cfg.promisc_mode)
            netlink.delete_link(host, host_name)  # left over from an attachment never DELeted
            netlink.create_veth(host, host_name, env.netns, env.ifname, cfg.mtu)
            try:
                host_link = netlink.attach_host_end(host, host_name, bridge, cfg.hairpin_mode)
                own = self._add_with_ipam(cfg, req, host, pod, bridge, host_link)
            except BaseException:
                netlink.delete_link(host, host_name)
                raise
        return chain_result(req.prev_result, own)

    def _add_with_ipam(self, cfg: BridgeConfig, req: Request, host: Any, pod: Any,
                       bridge: netlink.Link, host_link: netlink.Link) -> Result:
        ipam_result = self._ipam(cfg, "ADD", req)
        try:
            if ipam_result is None or not ipam_result.ips:
                raise CniError(PLUGIN_FAILURE, "IPAM plugin returned missing IP config")
            return self._configure(cfg, req, host, pod, bridge, host_link, ipam_result)
        except BaseException:
            # The spec: when ADD fails after IPAM succeeded, DEL the delegate before failing.
            self._ipam_quietly(cfg, "DEL", req)
            if cfg.ip_masq:
                self._unmasquerade_quietly(cfg, req)
            raise

    def _configure(self, cfg: BridgeConfig, req: Request, host: Any, pod: Any,
                   bridge: netlink.Link, host_link: netlink.Link, ipam_result: Result) -> Result:
        env = req.env
        ips = [IPConfig(i.address, i.gateway, interface=2) for i in ipam_result.ips]
        routes = list(ipam_result.routes)
        if cfg.is_default_gateway:
            routes = with_default_routes(ips, routes)
        if any(i.address.version == 6 for i in ips):
            netlink.enable_ipv6_in(env.netns, env.ifname)
        container = netlink.setup_container(pod, env.ifname, cfg.mac, ips, routes)
        if cfg.is_gateway:
            for ipc in ips:
                if ipc.gateway is not None:
                    gw = ipaddress.ip_interface(f"{ipc.gateway}/{ipc.address.network.prefixlen}")
                    netlink.ensure_gateway_address(host, bridge, gw, cfg.force_address)
            _enable_forwarding({i.address.version for i in ips})
        if cfg.ip_masq:
            masq.apply(masq.render_add([i.address for i in ips], self._comment(cfg, req),
                                       masq.list_elements()))
        state.save(cfg.state_dir, cfg.network, state.AttachmentState(
            container_id=env.container_id, ifname=env.ifname, netns=env.netns,
            bridge=cfg.bridge, host_veth=host_link.name,
            addresses=tuple(str(i.address) for i in ips), masquerade=cfg.ip_masq))
        interfaces = (
            Interface(name=bridge.name, mac=bridge.mac),
            Interface(name=host_link.name, mac=host_link.mac),
            Interface(name=env.ifname, mac=container.mac, mtu=container.mtu, sandbox=env.netns),
        )
        dns = cfg.dns if cfg.dns != DNS() else ipam_result.dns
        return Result(interfaces=interfaces, ips=tuple(ips), routes=tuple(routes), dns=dns)

    # DEL -----------------------------------------------------------------------------------
    def delete(self, req: Request) -> None:
        """Best effort and idempotent: every step runs even if an earlier one failed, and
        host-side cleanup never depends on the pod namespace."""
        cfg, env = parse_bridge_config(req.conf), req.env
        st = state.load(cfg.state_dir, cfg.network, env.container_id, env.ifname)
        steps = BestEffort()
        steps(partial(self._ipam, cfg, "DEL", req))
        if env.netns and netlink.netns_exists(env.netns):
            steps(partial(_delete_in_pod, env.netns, env.ifname))
        steps(partial(_delete_host_veth, host_veth_name(env.container_id, env.ifname)))
        if cfg.ip_masq or (st is not None and st.masquerade) or shutil.which("nft"):
            steps(partial(self._unmasquerade, cfg, req))
        steps(partial(state.remove, cfg.state_dir, cfg.network, env.container_id, env.ifname))
        steps.raise_first()

    # CHECK ---------------------------------------------------------------------------------
    def check(self, req: Request) -> None:
        cfg, env, prev = parse_bridge_config(req.conf), req.env, req.prev_result
        if prev is None:
            raise CniError(INVALID_CONFIG, "required prevResult missing")
        self._ipam(cfg, "CHECK", req)
        idx = _container_interface(prev, env.ifname, env.netns)
        ips = [i for i in prev.ips if i.interface == idx]
        with netlink.opened(env.netns) as pod:
            _check_container(pod, cfg, env.ifname, prev.interfaces[idx], ips, list(prev.routes))
        with netlink.opened(None) as host:
            _check_host(host, cfg, host_veth_name(env.container_id, env.ifname))
        if cfg.ip_masq:
            owned = masq.owned_by(masq.list_elements(), self._comment(cfg, req))
            want = {str(i.address.ip) for i in ips}
            missing = want - {e.address for e in owned}
            if missing:
                raise CniError(CHECK_FAILED, "masquerade rule missing for "
                               + ",".join(sorted(missing)))

    # GC / STATUS ---------------------------------------------------------------------------
    def gc(self, req: Request, valid: set[Attachment]) -> None:
        """Spec: keep going past errors; the first one is reported at the end."""
        cfg = parse_bridge_config(req.conf)
        stale = [s for s in state.load_all(cfg.state_dir, cfg.network)
                 if Attachment(s.container_id, s.ifname) not in valid]
        steps = BestEffort()
        for s in stale:
            steps(partial(_delete_host_veth, s.host_veth))
        if cfg.ip_masq or stale or shutil.which("nft"):
            steps(partial(self._gc_masquerade, cfg, valid))
        for s in stale:
            steps(partial(state.remove, cfg.state_dir, cfg.network, s.container_id, s.ifname))
        steps(partial(self._ipam, cfg, "GC", req))
        steps.raise_first()

    @staticmethod
    def _gc_masquerade(cfg: BridgeConfig, valid: set[Attachment]) -> None:
        keep = {masq.attachment_comment(cfg.network, a.container_id, a.ifname) for a in valid}
        mine = [e for e in masq.list_elements() if masq.belongs_to(e, cfg.network)]
        masq.apply(masq.render_delete([e for e in mine if e.comment not in keep]))

    def status(self, req: Request) -> None:
        cfg = parse_bridge_config(req.conf)
        if cfg.ip_masq and not shutil.which("nft"):
            raise CniError(NOT_AVAILABLE, "ipMasq needs the nft command, which is not installed")
        self._ipam(cfg, "STATUS", req)

    # helpers -------------------------------------------------------------------------------
    @staticmethod
    def _comment(cfg: BridgeConfig, req: Request) -> str:
        return masq.attachment_comment(cfg.network, req.env.container_id, req.env.ifname)

    def _unmasquerade(self, cfg: BridgeConfig, req: Request) -> None:
        owned = masq.owned_by(masq.list_elements(), self._comment(cfg, req))
        masq.apply(masq.render_delete(owned))

    def _unmasquerade_quietly(self, cfg: BridgeConfig, req: Request) -> None:
        try:
            self._unmasquerade(cfg, req)
        except CniError:
            pass  # already failing; the original error is the one to report

    def _ipam_quietly(self, cfg: BridgeConfig, command: str, req: Request) -> None:
        try:
            self._ipam(cfg, command, req)
        except CniError:
            pass  # already failing; the original error is the one to report


class BestEffort:
    """Runs cleanup steps, remembering failures instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[CniError] = []

    def __call__(self, step: Callable[[], object]) -> None:
        try:
            step()
        except CniError as e:
            self.errors.append(e)

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def _delete_in_pod(netns: str, ifname: str) -> None:
    try:
        with netlink.opened(netns) as pod:
            netlink.delete_link(pod, ifname)
    except CniError as e:
        if e.code != CONTAINER_UNKNOWN:  # vanished between the check and the open: fine
            raise


def _delete_host_veth(name: str) -> None:
    with netlink.opened(None) as host:
        netlink.delete_link(host, name)


def _enable_forwarding(families: set[int]) -> None:
    if 4 in families:
        netlink.write_sysctl("net.ipv4.ip_forward", "1")
    if 6 in families:
        netlink.write_sysctl("net.ipv6.conf.all.forwarding", "1")


def _container_interface(prev: Result, ifname: str, netns: str) -> int:
    for i, iface in enumerate(prev.interfaces):
        if iface.name == ifname and iface.sandbox:
            return i
    raise CniError(CHECK_FAILED, f"prevResult has no container interface {ifname} in {netns}")


def _check_container(pod: Any, cfg: BridgeConfig, ifname: str, want: Interface,
                     ips: list[IPConfig], routes: list[Route]) -> None:
    link = netlink.get_link(pod, ifname)
    if link is None or link.kind != "veth":
        raise CniError(CHECK_FAILED, f"container interface {ifname} is missing or not a veth")
    if link.mtu != cfg.mtu:
        raise CniError(CHECK_FAILED, f"{ifname} has MTU {link.mtu}, expected {cfg.mtu}")
    if want.mac and link.mac.lower() != want.mac.lower():
        raise CniError(CHECK_FAILED, f"{ifname} has MAC {link.mac}, expected {want.mac}")
    have = set(netlink.addresses(pod, link.index))
    for ipc in ips:
        if ipc.address not in have:
            raise CniError(CHECK_FAILED, f"failed to match addr {ipc.address} on interface "
                           f"{ifname}")
    for route in routes:
        gw = netlink.route_gateway(route, ips)
        if not netlink.route_present(pod, route, gw):
            raise CniError(CHECK_FAILED, f"failed to match route {route.dst} via {gw} in the "
                           "container")


def _check_host(host: Any, cfg: BridgeConfig, host_name: str) -> None:
    bridge = netlink.get_link(host, cfg.bridge)
    if bridge is None or bridge.kind != "bridge":
        raise CniError(CHECK_FAILED, f"bridge {cfg.bridge} is missing")
    veth = netlink.get_link(host, host_name)
    if veth is None or veth.master != bridge.index:
        raise CniError(CHECK_FAILED, f"host veth {host_name} is missing or not on {cfg.bridge}")
    if cfg.hairpin_mode and not netlink.hairpin_enabled(host, veth.index):
        raise CniError(CHECK_FAILED, f"hairpin mode is off on {host_name}")
