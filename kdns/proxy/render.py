"""Pure renderer: service ports -> one nftables ruleset per IP family, kube-proxy's layout.

Traffic flow (see pkg/proxy/nftables/README.md in kubernetes): ``nat-prerouting`` and
``nat-output`` jump to ``services``, which looks up ``service-ips`` (ClusterIP and external IPs)
and ``service-nodeports`` (local addresses) and goes to a per-service-port chain; that chain picks
an endpoint chain with ``numgen random mod N``, which DNATs. ``filter-*`` chains reject traffic to
services without endpoints (``no-endpoint-*`` maps) and to undefined ClusterIP ports, and drop
unallocated ClusterIPs. Packets marked 0x4000 are masqueraded in ``nat-postrouting``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from kdns.proxy import names
from kdns.proxy.model import Endpoint, Family, ServicePort, family_of

DEFAULT_TABLE: Final = "kdns-proxy"
MARK_MASQ: Final = "mark-for-masquerade"
REJECT_CHAIN: Final = "reject-chain"
# TCP is refused with a reset rather than kube-proxy's ICMP port-unreachable: the kernel
# rate-limits ICMP errors per peer (a burst of 6, then 1/s), so a client retrying a service
# without endpoints would wait a SYN retransmit (1 s) for each refusal after the first few.
TCP_RESET: Final = "meta l4proto tcp reject with tcp reset"


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """Node-level settings. CIDRs of both families may be mixed; each table takes its own."""

    node_name: str
    table: str = DEFAULT_TABLE
    cluster_cidrs: tuple[str, ...] = ()
    service_cidrs: tuple[str, ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    node_zone: str | None = None  # topology.kubernetes.io/zone of this node, for zone hints
    # None: NodePorts on every local address but loopback; else only on these addresses.
    nodeport_ips: tuple[str, ...] | None = None

    @property
    def masquerade_mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    rules: tuple[str, ...]
    hook: str | None = None  # e.g. "type nat hook output priority -100" for base chains


@dataclass(frozen=True, slots=True)
class SetDecl:
    name: str
    kind: Literal["set", "map"]
    spec: str
    keep_elements: bool = False  # affinity sets keep their state across full syncs


@dataclass(frozen=True, slots=True)
class Element:
    value: str = ""  # the verdict of a map element; empty for set elements
    comment: str = ""


@dataclass(frozen=True, slots=True)
class UdpFlow:
    """A programmed UDP path: traffic to (vip or any node IP, port) DNATed to endpoint_ip."""

    vip: str | None
    port: int
    endpoint_ip: str


@dataclass(frozen=True)
class Ruleset:
    family: Family
    table: str
    chains: Mapping[str, Chain]
    sets: Mapping[str, SetDecl]
    elements: Mapping[str, Mapping[str, Element]]
    udp_flows: frozenset[UdpFlow] = frozenset()
    udp_vips: frozenset[tuple[str, int]] = frozenset()  # UDP VIP ports that have endpoints

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())


def _addr_type(family: Family) -> str:
    return "ipv4_addr" if family == "ip" else "ipv6_addr"


def _net_set(cidrs: Iterable[str], family: Family) -> str:
    nets = [str(ipaddress.ip_network(c, strict=False)) for c in cidrs]
    picked = [n for n in nets if family_of(n.split("/")[0]) == family]
    if len(picked) == 1:  # a bare prefix avoids an anonymous set per rule (nft is faster)
        return picked[0]
    return "{ " + ", ".join(picked) + " }" if picked else ""


def _dnat_target(ep: Endpoint) -> str:
    return f"{ep.ip}:{ep.port}" if ep.family == "ip" else f"[{ep.ip}]:{ep.port}"


def _base(cfg: RenderConfig, family: Family) -> tuple[list[Chain], list[SetDecl]]:
    t = _addr_type(family)
    loopback = "127.0.0.0/8" if family == "ip" else "::1"
    if cfg.nodeport_ips is None:
        local_dst = f"fib daddr type local {family} daddr != {loopback} meta l4proto . th dport"
    else:
        local_dst = f"{family} daddr @nodeport-ips meta l4proto . th dport"
    new = "ct state new jump"
    cluster_ips_check = [
        f"{family} daddr @cluster-ips {TCP_RESET}",
        f'{family} daddr @cluster-ips reject comment "undefined port of a ClusterIP"',
    ]
    service_nets = _net_set(cfg.service_cidrs, family)
    if service_nets:
        cluster_ips_check.append(
            f'{family} daddr {service_nets} drop comment "unallocated ClusterIP"'
        )
    mark = cfg.masquerade_mark
    chains = [
        Chain("filter-forward", (f"{new} service-endpoints-check", f"{new} cluster-ips-check"),
              "type filter hook forward priority -110"),
        Chain("filter-input", (f"{new} nodeport-endpoints-check", f"{new} service-endpoints-check"),
              "type filter hook input priority -110"),
        Chain("filter-output", (f"{new} service-endpoints-check", f"{new} firewall-check"),
              "type filter hook output priority -110"),
        Chain("filter-prerouting", (f"{new} firewall-check",),
              "type filter hook prerouting priority -110"),
        Chain("firewall-check",
              (f"{family} daddr . meta l4proto . th dport vmap @firewall-ips",)),
        Chain("filter-output-post-dnat", (f"{new} cluster-ips-check",),
              "type filter hook output priority -90"),
        Chain("nat-output", ("jump services",), "type nat hook output priority -100"),
        Chain("nat-postrouting", ("jump masquerading",), "type nat hook postrouting priority 100"),
        Chain("nat-prerouting", ("jump services",), "type nat hook prerouting priority -100"),
        Chain("cluster-ips-check", tuple(cluster_ips_check)),
        Chain(MARK_MASQ, (f"mark set mark or {mark}",)),
        Chain("masquerading", (f"mark and {mark} == 0 return", f"mark set mark xor {mark}",
                               "masquerade fully-random")),
        Chain("nodeport-endpoints-check", (f"{local_dst} vmap @no-endpoint-nodeports",)),
        Chain(REJECT_CHAIN, (TCP_RESET, "reject")),
        Chain("service-endpoints-check",
              (f"{family} daddr . meta l4proto . th dport vmap @no-endpoint-services",)),
        Chain("services", (f"{family} daddr . meta l4proto . th dport vmap @service-ips",
                           f"{local_dst} vmap @service-nodeports")),
    ]
    vip_key = f"{t} . inet_proto . inet_service"
    sets = [
        SetDecl("cluster-ips", "set", f'type {t} ; comment "Active ClusterIPs" ;'),
        SetDecl("firewall-ips", "map", f"type {vip_key} : verdict ;"),
        SetDecl("nodeport-ips", "set",
                f'type {t} ; comment "IPs that accept NodePort traffic" ;'),
        SetDecl("no-endpoint-nodeports", "map", "type inet_proto . inet_service : verdict ;"),
        SetDecl("no-endpoint-services", "map", f"type {vip_key} : verdict ;"),
        SetDecl("service-ips", "map", f"type {vip_key} : verdict ;"),
        SetDecl("service-nodeports", "map", "type inet_proto . inet_service : verdict ;"),
    ]
    return chains, sets


@dataclass(slots=True)
class Categorized:
    cluster: list[Endpoint]
    local: list[Endpoint]
    reachable: list[Endpoint]
    has_any: bool


def use_zone_hints(endpoints: Sequence[Endpoint], zone: str | None) -> bool:
    """kube-proxy's canUseTopology: only when every ready endpoint carries zone hints (the
    EndpointSlice controller sets them for services that ask for it) and one is for this zone."""
    ready = [e for e in endpoints if e.ready]
    if not zone or not ready or any(not e.zone_hints for e in ready):
        return False
    return any(zone in e.zone_hints for e in ready)


def categorize(
    sp: ServicePort, endpoints: Sequence[Endpoint], node: str, zone: str | None = None
) -> Categorized:
    """kube-proxy's CategorizeEndpoints.

    Ready endpoints are used (only those hinted for this node's zone, when zone hints apply);
    only when none are ready anywhere (for the local set: on this node) do
    serving-and-terminating endpoints take over, so connections drain gracefully.
    """
    uses_cluster = not sp.internal_local or (sp.externally_accessible and not sp.external_local)
    uses_local = sp.internal_local or (sp.externally_accessible and sp.external_local)

    def pick(candidates: Sequence[Endpoint]) -> list[Endpoint]:
        ready = [e for e in candidates if e.ready]
        return ready or [e for e in candidates if e.serving and e.terminating]

    cluster = pick(endpoints) if uses_cluster else []
    if uses_cluster and use_zone_hints(endpoints, zone):
        cluster = [e for e in cluster if zone in e.zone_hints]
    usable = [e for e in endpoints if e.ready or (e.serving and e.terminating)]
    local = pick([e for e in endpoints if e.node == node]) if uses_local else []
    if not uses_local:
        return Categorized(cluster, [], cluster, bool(cluster))
    if not uses_cluster:
        return Categorized([], local, local, bool(usable))
    reachable = list(dict.fromkeys([*cluster, *local]))
    return Categorized(cluster, local, reachable, bool(usable))


@dataclass
class _Builder:
    cfg: RenderConfig
    family: Family
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, SetDecl] = field(default_factory=dict)
    elements: dict[str, dict[str, Element]] = field(default_factory=dict)
    udp_flows: set[UdpFlow] = field(default_factory=set)
    udp_vips: set[tuple[str, int]] = field(default_factory=set)
    local_net: str = ""  # the cluster CIDRs of this family as an nft set, "" when unknown

    def chain(self, name: str, rules: Iterable[str]) -> None:
        self.chains[name] = Chain(name, tuple(rules))

    def element(self, set_name: str, key: str, value: str = "", comment: str = "") -> None:
        self.elements.setdefault(set_name, {})[key] = Element(value, comment)


def _to_endpoints(b: _Builder, sp: ServicePort, eps: Sequence[Endpoint]) -> list[str]:
    fam = b.family
    rules = []
    if sp.affinity_timeout is not None:
        rules += [f"{fam} saddr @{names.affinity_set(sp, e)} goto {names.endpoint_chain(sp, e)}"
                  for e in eps]
    targets = ", ".join(f"{i} : goto {names.endpoint_chain(sp, e)}" for i, e in enumerate(eps))
    rules.append(f"numgen random mod {len(eps)} vmap {{ {targets} }}")
    return rules


@dataclass(frozen=True, slots=True)
class _Plan:
    """kube-proxy's per-service-port decisions (proxier.go syncProxyRules), for one family."""

    cip: str
    external_ips: tuple[str, ...]
    cat: Categorized
    has_internal: bool  # ClusterIP traffic has somewhere to go
    has_external: bool  # NodePort / external IP traffic has somewhere to go
    verdict: str  # for traffic with nowhere to go: reject (no endpoints) or drop (policy)
    lb_ips: tuple[str, ...]  # of external_ips, those subject to the source ranges
    source_ranges: str  # this family's loadBalancerSourceRanges as an nft set, or ""


def _plan(b: _Builder, sp: ServicePort) -> _Plan | None:
    cip = sp.cluster_ip(b.family)
    if cip is None:
        return None
    cat = categorize(sp, [e for e in sp.endpoints if e.family == b.family], b.cfg.node_name,
                     b.cfg.node_zone)
    return _Plan(
        cip=cip,
        external_ips=tuple(ip for ip in sp.external_ips if family_of(ip) == b.family),
        cat=cat,
        has_internal=cat.has_any and (not sp.internal_local or bool(cat.local)),
        has_external=cat.has_any and (not sp.external_local or bool(cat.local)),
        verdict="drop" if cat.has_any else f"goto {REJECT_CHAIN}",
        lb_ips=tuple(ip for ip in sp.lb_ips if family_of(ip) == b.family),
        source_ranges=_net_set(sp.source_ranges, b.family),
    )


def _add_elements(b: _Builder, sp: ServicePort, p: _Plan) -> None:
    key = f"{sp.protocol} . {sp.port}"
    internal_chain = names.local_chain(sp) if sp.internal_local else names.cluster_chain(sp)
    external_chain = names.external_chain(sp)
    b.element("cluster-ips", p.cip)
    if p.has_internal:
        b.element("service-ips", f"{p.cip} . {key}", f"goto {internal_chain}")
    else:
        b.element("no-endpoint-services", f"{p.cip} . {key}", p.verdict, sp.display)
    for ip in p.external_ips:
        if p.cat.has_any:
            b.element("service-ips", f"{ip} . {key}", f"goto {external_chain}")
        if not p.has_external:
            b.element("no-endpoint-services", f"{ip} . {key}", p.verdict, sp.display)
    if p.source_ranges:  # checked before DNAT, whatever happens to the packet next
        for ip in p.lb_ips:
            b.element("firewall-ips", f"{ip} . {key}", f"goto {names.firewall_chain(sp)}")
    if sp.node_port:
        node_key = f"{sp.protocol} . {sp.node_port}"
        if p.cat.has_any:
            b.element("service-nodeports", node_key, f"goto {external_chain}")
        if not p.has_external:
            b.element("no-endpoint-nodeports", node_key, p.verdict, sp.display)


def _external_rules(b: _Builder, sp: ServicePort, p: _Plan) -> list[str]:
    fam, cluster_chain = b.family, names.cluster_chain(sp)
    rules: list[str] = []
    if not sp.external_local:
        rules.append(f"jump {MARK_MASQ}")  # endpoints may be on other nodes
    elif p.cat.cluster:
        # Pod and node traffic to an eTP=Local service is not subject to the policy: it
        # behaves as if it went out to a load balancer and came back (kube-proxy).
        if b.local_net:
            rules.append(f"{fam} saddr {b.local_net} goto {cluster_chain} "
                         'comment "short-circuit pod traffic"')
        rules.append(f'fib saddr type local jump {MARK_MASQ} comment "masquerade local traffic"')
        rules.append(f"fib saddr type local goto {cluster_chain} "
                     'comment "short-circuit local traffic"')
    if p.has_external:
        policy = names.local_chain(sp) if sp.external_local else cluster_chain
        rules.append(f"goto {policy}")
    return rules


def _masquerade_rule(b: _Builder, sp: ServicePort, p: _Plan) -> list[str]:
    vip_match = f"{b.family} daddr {p.cip} {sp.protocol} dport {sp.port}"
    if b.cfg.masquerade_all:
        return [f"{vip_match} jump {MARK_MASQ}"]
    if b.local_net:  # off-cluster sources reaching a ClusterIP get masqueraded
        return [f"{vip_match} {b.family} saddr != {b.local_net} jump {MARK_MASQ}"]
    return []


def _add_chains(b: _Builder, sp: ServicePort, p: _Plan) -> None:
    fam = b.family
    policy_chains = {names.cluster_chain(sp): p.cat.cluster, names.local_chain(sp): p.cat.local}
    internal_chain = names.local_chain(sp) if sp.internal_local else names.cluster_chain(sp)
    for name, eps in policy_chains.items():
        if eps:
            masq = _masquerade_rule(b, sp, p) if p.has_internal and name == internal_chain else []
            b.chain(name, [*masq, *_to_endpoints(b, sp, eps)])
    if p.cat.has_any and sp.externally_accessible:
        b.chain(names.external_chain(sp), _external_rules(b, sp, p))
    if p.source_ranges and p.lb_ips:
        b.chain(names.firewall_chain(sp), [f"{fam} saddr != {p.source_ranges} drop"])
    for e in p.cat.reachable:
        rules = [f"{fam} saddr {e.ip} jump {MARK_MASQ}"]  # hairpin: a pod reaching itself
        if sp.affinity_timeout is not None:
            affinity = names.affinity_set(sp, e)
            b.sets[affinity] = SetDecl(affinity, "set", (
                f"type {_addr_type(fam)} ; flags dynamic,timeout ; "
                f"timeout {sp.affinity_timeout}s ;"), keep_elements=True)
            rules.append(f"update @{affinity} {{ {fam} saddr }}")
        rules.append(f"meta l4proto {sp.protocol} dnat to {_dnat_target(e)}")
        b.chain(names.endpoint_chain(sp, e), rules)


def _track_udp(b: _Builder, sp: ServicePort, p: _Plan) -> None:
    if sp.protocol != "udp" or not p.cat.has_any:
        return
    vips = [p.cip, *p.external_ips]
    b.udp_vips.update((v, sp.port) for v in vips)
    for e in p.cat.reachable:
        b.udp_flows.update(UdpFlow(v, sp.port, e.ip) for v in vips)
        if sp.node_port:
            b.udp_flows.add(UdpFlow(None, sp.node_port, e.ip))


def render(ports: Iterable[ServicePort], cfg: RenderConfig, family: Family) -> Ruleset:
    """The complete desired state of one family's table."""
    b = _Builder(cfg, family, local_net=_net_set(cfg.cluster_cidrs, family))
    base_chains, base_sets = _base(cfg, family)
    for c in base_chains:
        b.chains[c.name] = c
    for s in base_sets:
        b.sets[s.name] = s
        b.elements[s.name] = {}
    for ip in cfg.nodeport_ips or ():
        if family_of(ip) == family:
            b.element("nodeport-ips", ip)
    for sp in ports:
        plan = _plan(b, sp)
        if plan is not None:
            _add_elements(b, sp, plan)
            _add_chains(b, sp, plan)
            _track_udp(b, sp, plan)
    return Ruleset(
        family=family,
        table=cfg.table,
        chains=b.chains,
        sets=b.sets,
        elements=b.elements,
        udp_flows=frozenset(b.udp_flows),
        udp_vips=frozenset(b.udp_vips),
    )
