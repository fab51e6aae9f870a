"""Real traffic through kdns-proxy rules in network namespaces (root; topology in netns.py).

Backends ``a`` and ``b`` answer "NAME PEER_IP", so each answer shows which endpoint served a
connection and which source address it saw (kept, or masqueraded to the node's 10.244.1.1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import pytest

from kdns.proxy import names
from kdns.proxy.conntrack import Conntrack
from kdns.proxy.model import Endpoint, ServicePort
from kdns.proxy.nodeaddrs import NodeAddresses
from kdns.proxy.syncer import Syncer, SyncSettings
from tests.proxy.conftest import Proxy
from tests.proxy.netns import (
    EXT_V4,
    EXTERNAL_IP,
    GW_V4,
    NODE_V4,
    Topology,
    pod_v4,
    pod_v6,
    sh,
)

pytestmark = pytest.mark.root

CIP = "10.96.0.10"


def ep(pod: str, port: int = 8080, node: str = "node-a", v6: bool = False) -> Endpoint:
    return Endpoint(pod_v6(pod) if v6 else pod_v4(pod), port, node)


def web(**kw: object) -> ServicePort:
    fields: dict[str, object] = dict(
        namespace="default", name="web", port_name="http", protocol="tcp", port=80,
        cluster_ips=(CIP, "fd00:96::10"), endpoints=(ep("a"), ep("b")),
    )
    fields.update(kw)
    return ServicePort(**fields)  # type: ignore[arg-type]


def dns(*pods: str) -> ServicePort:
    return ServicePort("kube-system", "dns", "dns", "udp", 53, ("10.96.0.53",),
                       endpoints=tuple(ep(p, 5353) for p in pods))


def backends(answers: list[str]) -> Counter[str]:
    return Counter(a.split()[0] for a in answers)


async def test_clusterip_reaches_both_backends_and_keeps_pod_source(
    topo: Topology, proxy: Proxy
) -> None:
    before = topo.probe("c", "tcp", CIP, "80", "--timeout=0.5")
    assert before[0].startswith("ERR"), "nothing may answer before the proxy programs rules"
    await proxy.set(web())
    answers = topo.probe("c", "tcp", CIP, "80", "--count=40")
    assert backends(answers).keys() == {"a", "b"}, answers
    assert {a.split()[1] for a in answers} == {pod_v4("c")}  # pod -> ClusterIP: no SNAT


async def test_node_originated_and_ipv6_clusterip(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web(endpoints=(ep("a"), ep("b"), ep("a", v6=True), ep("b", v6=True))))
    from_node = topo.probe("node", "tcp", CIP, "80", "--count=20")
    assert backends(from_node).keys() == {"a", "b"}, from_node
    v6 = topo.probe("c", "tcp", "fd00:96::10", "80", "--count=30")
    assert backends(v6).keys() == {"a", "b"}, v6
    assert {a.split()[1] for a in v6} == {pod_v6("c")}


async def test_udp_service_multi_port_named_target(topo: Topology, proxy: Proxy) -> None:
    # Service port 53 -> targetPort "dns" = 5353 (resolved per endpoint, as slices carry it).
    await proxy.set(dns("a", "b"), web())
    answers = topo.probe("c", "udp", "10.96.0.53", "53", "--count=30", "--timeout=1")
    assert backends(answers).keys() == {"a", "b"}, answers
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=10")).keys() <= {"a", "b"}


async def test_no_endpoints_is_refused_fast(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web(endpoints=()), dns())
    # More attempts than the kernel's ICMP burst (6): each must still be refused at once.
    answers = topo.probe("c", "tcp", CIP, "80", "--count=20", "--timeout=3")
    for a in answers:
        err, code, seconds = a.split()
        assert (err, code) == ("ERR", "ECONNREFUSED") and float(seconds) < 1.0, answers
    udp = topo.probe("c", "udp", "10.96.0.53", "53", "--timeout=3")
    assert udp == ["ERR ECONNREFUSED"], udp  # the ICMP error reaches the UDP socket too
    from_node = topo.probe("node", "tcp", CIP, "80", "--timeout=3")
    assert from_node[0].startswith("ERR ECONNREFUSED"), from_node


async def test_undefined_port_refused_unallocated_ip_dropped(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web())
    assert topo.probe("c", "tcp", CIP, "81", "--timeout=2")[0].startswith("ERR ECONNREFUSED")
    start = time.monotonic()
    dropped = topo.probe("c", "tcp", "10.96.0.99", "80", "--timeout=0.5")
    assert dropped[0].startswith("ERR timeout") and time.monotonic() - start >= 0.5


async def test_nodeport_cluster_policy_masquerades(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web(node_port=30080, endpoints=(ep("a"), ep("b"), ep("a", v6=True))))
    answers = topo.probe("ext", "tcp", NODE_V4, "30080", "--count=30")
    assert backends(answers).keys() == {"a", "b"}, answers
    assert {a.split()[1] for a in answers} == {GW_V4}  # masqueraded to the node's bridge IP
    v6 = topo.probe("ext", "tcp", "2001:db8::1", "30080", "--count=4")
    assert backends(v6).keys() <= {"a", "b"} and len(v6) == 4, v6


async def test_nodeport_local_policy_keeps_client_ip_or_drops(topo: Topology, proxy: Proxy) -> None:
    local = web(node_port=30081, external_local=True, endpoints=(ep("a"), ep("b", node="n2")))
    remote = web(name="remote", cluster_ips=("10.96.0.11",), node_port=30082,
                 external_local=True, endpoints=(ep("b", node="n2"),))
    await proxy.set(local, remote)
    answers = topo.probe("ext", "tcp", NODE_V4, "30081", "--count=10")
    assert answers == [f"a {EXT_V4}"] * 10  # only the local endpoint, client IP preserved
    assert topo.probe("ext", "tcp", NODE_V4, "30082", "--timeout=0.5")[0].startswith("ERR timeout")
    # Pods short-circuit the policy (as kube-proxy): the remote endpoint still serves them.
    assert topo.probe("c", "tcp", NODE_V4, "30082", "--count=3") == [f"b {pod_v4('c')}"] * 3


async def test_session_affinity_client_ip(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web(affinity_timeout=300))
    answers = topo.probe("c", "tcp", CIP, "80", "--count=20")
    assert len(backends(answers)) == 1 and len(answers) == 20, answers
    chosen = answers[0].split()[0]
    sp = proxy.ports[0]
    elements = topo.nft_json("set", "ip", proxy.table, names.affinity_set(sp, ep(chosen)))
    set_info = next(i["set"] for i in elements if "set" in i)
    assert set_info["timeout"] == 300  # type: ignore[index]
    assert pod_v4("c") in str(set_info.get("elem"))  # type: ignore[union-attr]


async def test_endpoint_removal_and_udp_conntrack_cleanup(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(dns("a", "b"), web())
    first = topo.probe("c", "udp", "10.96.0.53", "53", "--sport=40053")[0]
    victim = first.split()[0]
    survivor = "b" if victim == "a" else "a"
    # Control: without conntrack cleanup the same 5-tuple keeps reaching the removed endpoint.
    real = proxy.syncer.conntrack
    proxy.syncer.conntrack = Conntrack(binary="true")
    await proxy.set(dns(survivor), web(endpoints=(ep(survivor),)))
    assert topo.probe("c", "udp", "10.96.0.53", "53", "--sport=40053")[0].split()[0] == victim
    # With cleanup: put the endpoint back, remove it again, and the flow moves at once.
    proxy.syncer.conntrack = real
    await proxy.set(dns("a", "b"), web())
    await proxy.set(dns(survivor), web(endpoints=(ep(survivor),)))
    again = topo.probe("c", "udp", "10.96.0.53", "53", "--sport=40053", "--count=5")
    assert backends(again) == {survivor: 5}, again
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=10")) == {survivor: 10}


async def test_stale_chains_flushed_then_deleted(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web())
    gone = names.endpoint_chain(proxy.ports[0], ep("b"))
    await proxy.set(web(endpoints=(ep("a"),)))
    chains = {i["chain"]["name"]: i for i in topo.nft_json("table", "ip", proxy.table)
              if "chain" in i}  # type: ignore[index]
    assert gone in chains and gone in proxy.syncer.stale_chains("ip")
    await asyncio.sleep(0.25)  # stale_chain_delay in the fixture is 0.2 s
    assert await proxy.syncer.sync()
    chains = {i["chain"]["name"] for i in topo.nft_json("table", "ip", proxy.table)
              if "chain" in i}  # type: ignore[index]
    assert gone not in chains and not proxy.syncer.stale_chains("ip")


async def test_established_tcp_flow_survives_full_resync(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web())
    flow = topo.hold("c", CIP, 80)
    assert flow.stdout is not None and flow.stdin is not None
    first = flow.stdout.readline().split()
    proxy.syncer.force_full()
    assert await proxy.syncer.sync()  # the whole table is flushed and rebuilt atomically
    flow.stdin.write("go\n")
    flow.stdin.flush()
    second = flow.stdout.readline().split()
    flow.wait(5)
    assert first and second == first, (first, second)


async def test_cleanup_removes_tables(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web())
    await proxy.syncer.cleanup()
    listed = topo.nft_json("tables")
    assert not [i for i in listed if i.get("table", {}).get("name") == proxy.table]  # type: ignore[union-attr]
    assert topo.probe("c", "tcp", CIP, "80", "--timeout=0.5")[0].startswith("ERR")
    await proxy.syncer.cleanup()  # idempotent


async def test_restart_full_sync_cleans_what_a_previous_run_left(
    topo: Topology, proxy: Proxy
) -> None:
    other = web(name="old", cluster_ips=("10.96.0.12",))
    await proxy.set(web(affinity_timeout=100), other)
    # A new process (fresh Syncer, same table) that no longer sees "old" nor affinity.
    restarted = Syncer(proxy.cfg, lambda: [web()], nft=proxy.nft, conntrack=proxy.conntrack,
                       settings=SyncSettings(stale_chain_delay=0.0))
    assert await restarted.sync()
    listing = topo.nft_json("table", "ip", proxy.table)
    sets = {i["set"]["name"] for i in listing if "set" in i}  # type: ignore[index]
    assert not [s for s in sets if s.startswith("affinity-")], sets
    old_chains = {names.cluster_chain(other), names.endpoint_chain(other, ep("a"))}
    assert old_chains <= restarted.stale_chains("ip")  # flushed now, deleted next sync
    assert await restarted.sync()
    chains = {i["chain"]["name"] for i in topo.nft_json("table", "ip", proxy.table)
              if "chain" in i}  # type: ignore[index]
    assert not old_chains & chains
    assert topo.probe("c", "tcp", "10.96.0.12", "80", "--timeout=0.5")[0].startswith("ERR")
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=20")).keys() == {"a", "b"}


async def test_internal_traffic_policy_local(topo: Topology, proxy: Proxy) -> None:
    here = web(internal_local=True, endpoints=(ep("a"), ep("b", node="n2")))
    elsewhere = web(name="far", cluster_ips=("10.96.0.11",), internal_local=True,
                    endpoints=(ep("b", node="n2"),))
    await proxy.set(here, elsewhere)
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=10")) == {"a": 10}
    far = topo.probe("c", "tcp", "10.96.0.11", "80", "--timeout=0.5")
    assert far[0].startswith("ERR timeout"), far  # endpoints exist, none here: drop


async def test_terminating_endpoints_serve_only_when_none_is_ready(
    topo: Topology, proxy: Proxy
) -> None:
    draining = Endpoint(pod_v4("a"), 8080, "node-a", ready=False, serving=True, terminating=True)
    gone = Endpoint(pod_v4("b"), 8080, "node-a", ready=False, serving=False, terminating=True)
    await proxy.set(web(endpoints=(draining, gone)))
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=10")) == {"a": 10}
    await proxy.set(web(endpoints=(draining, ep("b"))))
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=10")) == {"b": 10}


async def test_hairpin_pod_reaches_itself_masqueraded(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web(endpoints=(ep("a"),)))
    assert topo.probe("a", "tcp", CIP, "80", "--count=3") == [f"a {GW_V4}"] * 3


async def test_external_ip_and_nodeport_without_endpoints(topo: Topology, proxy: Proxy) -> None:
    await proxy.set(web(external_ips=(EXTERNAL_IP,)),
                    web(name="none", cluster_ips=("10.96.0.11",), node_port=30099, endpoints=()))
    answers = topo.probe("ext", "tcp", EXTERNAL_IP, "80", "--count=20")
    assert backends(answers).keys() == {"a", "b"}, answers
    assert {a.split()[1] for a in answers} == {GW_V4}  # external traffic is masqueraded
    refused = topo.probe("ext", "tcp", NODE_V4, "30099", "--timeout=3")[0].split()
    assert refused[:2] == ["ERR", "ECONNREFUSED"] and float(refused[2]) < 1.0, refused


async def test_ipv6_udp_endpoint_removal_cleans_conntrack(topo: Topology, proxy: Proxy) -> None:
    def dns6(*pods: str) -> ServicePort:
        return ServicePort("kube-system", "dns6", "dns", "udp", 53, ("fd00:96::53",),
                           endpoints=tuple(ep(p, 5353, v6=True) for p in pods))

    await proxy.set(dns6("a", "b"))
    victim = topo.probe("c", "udp", "fd00:96::53", "53", "--sport=40054")[0].split()[0]
    survivor = "b" if victim == "a" else "a"
    await proxy.set(dns6(survivor))
    again = topo.probe("c", "udp", "fd00:96::53", "53", "--sport=40054", "--count=3")
    assert backends(again) == {survivor: 3}, again


async def test_load_balancer_source_ranges(topo: Topology, proxy: Proxy) -> None:
    lb = web(node_port=30443, external_ips=(EXTERNAL_IP,), lb_ips=(EXTERNAL_IP,),
             source_ranges=("192.0.2.0/24",))
    await proxy.set(lb)
    allowed = topo.probe("ext", "tcp", EXTERNAL_IP, "80", "--count=10")
    assert backends(allowed).keys() <= {"a", "b"} and len(allowed) == 10, allowed
    await proxy.set(dataclasses.replace(lb, source_ranges=("203.0.113.0/24",)))
    denied = topo.probe("ext", "tcp", EXTERNAL_IP, "80", "--timeout=0.5")
    assert denied[0].startswith("ERR timeout"), denied  # dropped before DNAT
    # The ranges guard the load-balancer IP only: the ClusterIP and NodePort still answer.
    assert topo.probe("ext", "tcp", NODE_V4, "30443")[0].split()[0] in {"a", "b"}
    assert topo.probe("c", "tcp", CIP, "80")[0].split()[0] in {"a", "b"}


async def test_nodeport_addresses(topo: Topology, proxy: Proxy) -> None:
    restricted = Syncer(proxy.cfg, lambda: [web(node_port=30080)], nft=proxy.nft,
                        conntrack=proxy.conntrack, nodeport_cidrs=("192.0.2.0/24",),
                        addresses=NodeAddresses(topo.exec_prefix()))
    assert await restricted.sync()
    assert backends(topo.probe("ext", "tcp", NODE_V4, "30080", "--count=6")).keys() <= {"a", "b"}
    # The bridge address is not listed: no NodePort there (nothing listens: refused by the node).
    there = topo.probe("c", "tcp", GW_V4, "30080", "--timeout=2")
    assert there[0].startswith("ERR ECONNREFUSED"), there


async def test_deleted_table_is_rebuilt(topo: Topology, proxy: Proxy) -> None:
    syncer = Syncer(proxy.cfg, lambda: [web()], nft=proxy.nft, conntrack=proxy.conntrack,
                    settings=SyncSettings(sync_period=0.0))  # canary checked on every sync
    assert await syncer.sync()
    for family in ("ip", "ip6"):
        sh(*topo.exec_prefix(), "nft", "delete", "table", family, proxy.table)  # a "flush"
    assert topo.probe("c", "tcp", CIP, "80", "--timeout=0.5")[0].startswith("ERR")
    assert await syncer.sync()  # nothing changed in the API, but the table is gone
    assert backends(topo.probe("c", "tcp", CIP, "80", "--count=10")).keys() <= {"a", "b"}
