"""Partial-sync diffs, stale chains, conntrack planning (pure)."""

from __future__ import annotations

import dataclasses

from kdns.proxy import names, transaction
from kdns.proxy.conntrack import FlowFilter, stale_flows
from kdns.proxy.render import render
from tests.proxy import scenarios as sc


def test_no_change_is_an_empty_transaction() -> None:
    a = render([sc.WEB], sc.CFG, "ip")
    assert transaction.partial(a, render([sc.WEB], sc.CFG, "ip")) == ""


def test_endpoint_removal_rewrites_service_chain_and_flushes_endpoint_chain() -> None:
    old = render([sc.WEB], sc.CFG, "ip")
    one = dataclasses.replace(sc.WEB, endpoints=sc.WEB.endpoints[:1])
    new = render([one], sc.CFG, "ip")
    gone = names.endpoint_chain(sc.WEB, sc.WEB.endpoints[1])
    svc = names.cluster_chain(sc.WEB)
    assert transaction.partial(old, new).splitlines() == [
        f"flush chain ip kdns-proxy {svc}",
        f"add rule ip kdns-proxy {svc} ip daddr 10.96.0.10 tcp dport 80 "
        "ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"add rule ip kdns-proxy {svc} numgen random mod 1 vmap "
        f"{{ 0 : goto {names.endpoint_chain(sc.WEB, sc.WEB.endpoints[0])} }}",
        f"flush chain ip kdns-proxy {gone}",
    ]
    # A later sync deletes the flushed chain, unless it is in use again.
    assert transaction.partial(new, new, [gone]) == f"delete chain ip kdns-proxy {gone}\n"
    assert transaction.partial(new, old, [gone]).count("delete chain") == 0


def test_losing_all_endpoints_swaps_map_elements() -> None:
    old = render([sc.WEB], sc.CFG, "ip")
    new = render([dataclasses.replace(sc.WEB, endpoints=())], sc.CFG, "ip")
    text = transaction.partial(old, new)
    assert "delete element ip kdns-proxy service-ips { 10.96.0.10 . tcp . 80 }" in text
    assert ('add element ip kdns-proxy no-endpoint-services { 10.96.0.10 . tcp . 80 '
            'comment "default/web:http" : goto reject-chain }') in text
    assert text.index("delete element") < text.index("flush chain")
    assert "delete element ip kdns-proxy cluster-ips" not in text


def test_removed_affinity_sets_are_deleted_after_their_chains_are_flushed() -> None:
    old = render([sc.AFFINITY], sc.CFG, "ip")
    new = render([], sc.CFG, "ip")
    lines = transaction.partial(old, new).splitlines()
    deletes = [i for i, line in enumerate(lines) if line.startswith("delete set")]
    flushes = [i for i, line in enumerate(lines) if line.startswith("flush chain")]
    assert len(deletes) == 2 and max(flushes) < min(deletes)
    assert not [line for line in lines if line.startswith("delete element ip kdns-proxy affinity")]


def test_full_sync_converges_unknown_state() -> None:
    desired = render([sc.WEB], sc.CFG, "ip")
    existing = transaction.Existing(chains=frozenset({"services", "service-OLD-x/y/tcp/z"}),
                                    sets={"affinity-OLD": "set", "service-ips": "map"})
    text = transaction.full(desired, existing)
    assert "flush chain ip kdns-proxy service-OLD-x/y/tcp/z" in text
    assert "delete set ip kdns-proxy affinity-OLD" in text
    assert transaction.stale_after_full(desired, existing) == {"service-OLD-x/y/tcp/z"}
    assert text.index("delete set") < text.index("add rule")


def test_conntrack_plan() -> None:
    old = render(sc.DNS, sc.CFG, "ip")
    udp = dataclasses.replace(sc.DNS[0], endpoints=sc.DNS[0].endpoints[1:], node_port=30053)
    new = render([udp, sc.DNS[1]], sc.CFG, "ip")
    assert stale_flows(old, new) == [FlowFilter("ip", "10.96.0.53", 53, "10.244.1.20")]
    # First sync: un-NATed entries to every UDP VIP that has endpoints are cleared.
    assert stale_flows(None, old) == [FlowFilter("ip", "10.96.0.53", 53, "10.96.0.53")]
    gone = render([], sc.CFG, "ip")
    assert {(f.orig_dst, f.orig_dport, f.reply_src) for f in stale_flows(new, gone)} == {
        ("10.96.0.53", 53, "10.244.2.21"), (None, 30053, "10.244.2.21")}
    assert FlowFilter("ip6", None, 30053, "fd00::1").argv() == [
        "-D", "-f", "ipv6", "-p", "udp", "--orig-port-dst", "30053", "--reply-src", "fd00::1"]


def test_conntrack_listing_parser() -> None:
    from kdns.proxy.conntrack import _parse_udp_listing

    text = (
        "udp      17 29 src=10.244.1.30 dst=10.96.0.53 sport=40053 dport=53 src=10.244.1.10 "
        "dst=10.244.1.30 sport=5353 dport=40053 [ASSURED] mark=0 use=1\n"
        "udp      17 12 src=fd00:244:1::30 dst=fd00:96::a sport=1 dport=53 [UNREPLIED] "
        "src=fd00:244:1::a dst=fd00:244:1::30 sport=53 dport=1 mark=0 use=1\n"
        "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n"
    )
    assert _parse_udp_listing(text) == {("10.96.0.53", 53, "10.244.1.10"),
                                        ("fd00:96::a", 53, "fd00:244:1::a")}
