"""Golden-text tests of the renderer (full transactions), plus targeted semantic checks.

Regenerate the goldens after an intended change with ``KDNS_UPDATE_GOLDEN=1 pytest tests/proxy``
and review the diff: each file is exactly what ``nft -f -`` receives on a first full sync.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from kdns.proxy import names, transaction
from kdns.proxy.model import FAMILIES, Endpoint, ServicePort
from kdns.proxy.render import Element, RenderConfig, categorize, render
from tests.proxy import scenarios as sc

GOLDEN = Path(__file__).parent / "golden"


def full_text(ports: tuple[ServicePort, ...], cfg: RenderConfig = sc.CFG) -> str:
    return "".join(transaction.full(render(ports, cfg, f)) for f in FAMILIES)


@pytest.mark.parametrize("name", sorted(sc.SCENARIOS))
def test_golden(name: str) -> None:
    text = full_text(sc.SCENARIOS[name])
    path = GOLDEN / f"{name}.nft"
    if os.environ.get("KDNS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"rendering of {name} changed; see module docstring"


def rules_of(text: str, chain_prefix: str) -> list[str]:
    return [line for line in text.splitlines() if f" {chain_prefix}" in line]


def test_chain_names_follow_kube_proxy() -> None:
    # Values computed the way pkg/proxy/nftables hashes names (base32(sha256)[:8]).
    assert names.cluster_chain(sc.WEB).startswith("service-")
    assert names.cluster_chain(sc.WEB).endswith("-default/web/tcp/http")
    e = sc.DUAL.endpoints[1]
    assert names.endpoint_chain(sc.DUAL, e).endswith("__fd00.244.1..60/8080")
    long = ServicePort("n" * 63, "s" * 63, "p" * 63, "tcp", 1, ("10.0.0.1",))
    chain = names.endpoint_chain(long, sc.ep("fd00:1111:2222:3333:4444:5555:6666:7777", 65535))
    assert len(chain) <= names.NAME_LENGTH_MAX and chain.endswith("...")
    assert names.external_chain(long) != names.external_chain(long.__class__(
        "n" * 63, "s" * 63, "p" * 62 + "q", "tcp", 1, ("10.0.0.1",)))


def test_load_balancing_spreads_over_all_ready_endpoints() -> None:
    rs = render([sc.WEB], sc.CFG, "ip")
    rules = rs.chains[names.cluster_chain(sc.WEB)].rules
    assert rules[0] == ("ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 "
                        "jump mark-for-masquerade")
    assert rules[1].startswith("numgen random mod 2 vmap { 0 : goto endpoint-")
    assert rs.elements["service-ips"]["10.96.0.10 . tcp . 80"].value == (
        f"goto {names.cluster_chain(sc.WEB)}")


def test_no_endpoints_rejects_and_creates_no_nat_chains() -> None:
    rs = render([sc.EMPTY], sc.CFG, "ip")
    assert rs.elements["no-endpoint-services"]["10.96.0.11 . tcp . 80"].value == "goto reject-chain"
    assert rs.elements["no-endpoint-nodeports"]["tcp . 30011"].value == "goto reject-chain"
    per_service = ("service-", "endpoint-", "external-", "local-")
    assert not [c for c in rs.chains if c.startswith(per_service) and "check" not in c]
    assert rs.elements["service-ips"] == {}
    assert "10.96.0.11" in rs.elements["cluster-ips"]


def test_external_local_without_local_endpoints_drops_external_but_serves_clusterip() -> None:
    sp = sc.NODEPORT_LOCAL_NONE_HERE
    rs = render([sp], sc.CFG, "ip")
    assert rs.elements["no-endpoint-nodeports"]["tcp . 30082"].value == "drop"
    assert rs.elements["service-ips"]["10.96.0.14 . tcp . 80"].value == (
        f"goto {names.cluster_chain(sp)}")
    ext = rs.chains[names.external_chain(sp)].rules
    assert not any(r.startswith("goto local-") for r in ext)  # nothing local to fall through to


def test_internal_local_without_local_endpoints_drops_clusterip() -> None:
    rs = render([sc.INTERNAL_LOCAL_NONE_HERE], sc.CFG, "ip")
    assert rs.elements["no-endpoint-services"]["10.96.0.17 . tcp . 80"].value == "drop"
    rs = render([sc.INTERNAL_LOCAL], sc.CFG, "ip")
    local = rs.chains[names.local_chain(sc.INTERNAL_LOCAL)].rules
    assert local[-1].startswith("numgen random mod 1 ")  # only the endpoint on node-a


def test_terminating_endpoints_used_only_when_nothing_is_ready() -> None:
    cat = categorize(sc.TERMINATING, sc.TERMINATING.endpoints, sc.NODE)
    assert [e.ip for e in cat.cluster] == ["10.244.1.40", "10.244.2.42"]  # serving ones only
    cat = categorize(sc.READY_AND_TERMINATING, sc.READY_AND_TERMINATING.endpoints, sc.NODE)
    assert [e.ip for e in cat.cluster] == ["10.244.1.50"]


def test_affinity_sets_and_rules() -> None:
    rs = render([sc.AFFINITY], sc.CFG, "ip")
    sets = [s for s in rs.sets.values() if s.name.startswith("affinity-")]
    assert len(sets) == 2 and all("timeout 600s" in s.spec and s.keep_elements for s in sets)
    svc = rs.chains[names.cluster_chain(sc.AFFINITY)].rules
    assert svc[1].startswith("ip saddr @affinity-") and " goto endpoint-" in svc[1]
    changed = render([ServicePort(**{**_fields(sc.AFFINITY), "affinity_timeout": 60})],
                     sc.CFG, "ip")
    assert not set(rs.sets) & {s for s in changed.sets if s.startswith("affinity-")}


def _fields(sp: ServicePort) -> dict[str, object]:
    return {f: getattr(sp, f) for f in sp.__dataclass_fields__}


def test_dual_stack_splits_by_family() -> None:
    v4, v6 = (render([sc.DUAL], sc.CFG, f) for f in FAMILIES)
    assert set(v4.elements["cluster-ips"]) == {"10.96.0.20"}
    assert set(v6.elements["cluster-ips"]) == {"fd00:96::20"}
    v6_endpoint = [c for n, c in v6.chains.items() if n.startswith("endpoint-")]
    assert v6_endpoint[0].rules[-1] == "meta l4proto tcp dnat to [fd00:244:1::60]:8080"
    assert "ip6 daddr != ::1" in v6.chains["services"].rules[1]


def test_masquerade_all_and_no_cluster_cidr() -> None:
    cfg = RenderConfig(node_name=sc.NODE, masquerade_all=True)
    rs = render([sc.WEB], cfg, "ip")
    assert rs.chains[names.cluster_chain(sc.WEB)].rules[0] == (
        "ip daddr 10.96.0.10 tcp dport 80 jump mark-for-masquerade")
    rs = render([sc.WEB], RenderConfig(node_name=sc.NODE), "ip")
    assert rs.chains[names.cluster_chain(sc.WEB)].rules[0].startswith("numgen")
    assert not [r for r in rs.chains["cluster-ips-check"].rules if " drop" in r]  # no CIDR


def test_udp_flows_track_programmed_paths() -> None:
    rs = render(sc.DNS, sc.CFG, "ip")
    assert {(f.vip, f.port, f.endpoint_ip) for f in rs.udp_flows} == {
        ("10.96.0.53", 53, "10.244.1.20"), ("10.96.0.53", 53, "10.244.2.21")}
    assert rs.udp_vips == {("10.96.0.53", 53)}


def test_source_ranges_filter_only_load_balancer_ips() -> None:
    rs = render([sc.LOADBALANCER], sc.CFG, "ip")
    fw = names.firewall_chain(sc.LOADBALANCER)
    assert rs.elements["firewall-ips"] == {
        "198.51.100.1 . tcp . 443": Element(f"goto {fw}")}  # not the plain external IP
    assert rs.chains[fw].rules == ("ip saddr != { 203.0.113.0/24, 192.0.2.0/25 } drop",)
    v6 = render([sc.LOADBALANCER], sc.CFG, "ip6")
    assert v6.elements["firewall-ips"] == {}  # no IPv6 load-balancer IP


def test_zone_hints_like_kube_proxy() -> None:
    def hinted(ip: str, *zones: str, ready: bool = True) -> Endpoint:
        return Endpoint(ip, 80, "n", ready=ready, serving=ready, zone_hints=zones)

    a, b = hinted("10.0.0.1", "zone-a"), hinted("10.0.0.2", "zone-b")
    sp = ServicePort("d", "s", "", "tcp", 80, ("10.96.0.1",), endpoints=(a, b))
    assert categorize(sp, [a, b], "n", "zone-a").cluster == [a]
    assert categorize(sp, [a, b], "n", None).cluster == [a, b]  # zone unknown
    assert categorize(sp, [a, b], "n", "zone-c").cluster == [a, b]  # nothing for this zone
    unhinted = hinted("10.0.0.3")
    assert categorize(sp, [a, b, unhinted], "n", "zone-a").cluster == [a, b, unhinted]
    not_ready = hinted("10.0.0.4", ready=False)  # only ready endpoints need hints
    assert categorize(sp, [a, b, not_ready], "n", "zone-a").cluster == [a]
    rs = render([sp], dataclasses.replace(sc.CFG, node_zone="zone-b"), "ip")
    assert "mod 1 vmap" in rs.chains[names.cluster_chain(sp)].rules[-1]


def test_nodeport_addresses_restrict_nodeports_to_listed_ips() -> None:
    from kdns.proxy.nodeaddrs import select

    ips = select(["127.0.0.1", "192.0.2.1", "10.244.1.1", "2001:db8::1", "fe80::1%eth0"],
                 ["192.0.2.0/24", "2001:db8::/64", "127.0.0.0/8"])
    assert ips == ("192.0.2.1", "2001:db8::1")  # loopback never, link-local not listed
    cfg = dataclasses.replace(sc.CFG, nodeport_ips=ips)
    v4, v6 = (render([sc.NODEPORT], cfg, f) for f in FAMILIES)
    assert v4.chains["services"].rules[1] == (
        "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports")
    assert set(v4.elements["nodeport-ips"]) == {"192.0.2.1"}
    assert set(v6.elements["nodeport-ips"]) == {"2001:db8::1"}
    assert render([sc.NODEPORT], sc.CFG, "ip").elements["nodeport-ips"] == {}
