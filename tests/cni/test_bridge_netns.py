"""kdns-cni end to end in real namespaces: a node netns playing the host, one netns per pod."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kdns.cni.netconf import bridge_mac, host_veth_name, node_identity
from tests.cni.cnitest import (
    Call,
    Namespaces,
    bridge_conf,
    nft_elements,
    path_of,
    ping,
    run_plugin,
    sh,
)

pytestmark = pytest.mark.root


@dataclass
class World:
    ns: Namespaces
    node: str
    cni_path: str
    tmp: Path
    conf: dict[str, Any]

    def call(self, command: str, pod: str = "", *, cid: str = "ctr1", ifname: str = "eth0",
             conf: dict[str, Any] | None = None, netns: str | None = None,
             args: str = "") -> Call:
        return run_plugin("kdns-cni", command, conf or self.conf, node=self.node,
                          container_id=cid, netns=path_of(pod) if netns is None else netns,
                          ifname=ifname, cni_path=self.cni_path, args=args)

    def add(self, pod: str, cid: str, **kw: Any) -> dict[str, Any]:
        res = self.call("ADD", pod, cid=cid, **kw)
        assert res.rc == 0, res
        assert isinstance(res.out, dict)
        return res.out

    def with_prev(self, prev: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return {**self.conf, **kw, "prevResult": prev}

    def ipam_files(self) -> list[str]:
        d = self.tmp / "ipam" / self.conf["name"]
        return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture
def world(netns: Namespaces, cni_path: str, tmp_path: Path) -> World:
    node = netns.add("node")
    name = f"{netns.prefix}-net"
    conf = bridge_conf(name, str(tmp_path / "ipam"), str(tmp_path / "state"))
    conf["ipam"]["ranges"].append([{"subnet": "fd00:250::/64"}])
    conf["ipam"]["routes"].append({"dst": "::/0"})
    return World(netns, node, cni_path, tmp_path, conf)


def _addr(result: dict[str, Any], family: int) -> str:
    for ip in result["ips"]:
        iface = ipaddress.ip_interface(ip["address"])
        if iface.version == family:
            return str(iface.ip)
    raise AssertionError(f"no IPv{family} address in {result}")


def test_add_wires_two_pods_that_reach_each_other_and_the_gateway(world: World) -> None:
    p1, p2 = world.ns.add("p1"), world.ns.add("p2")
    r1, r2 = world.add(p1, "c1"), world.add(p2, "c2")
    bridge = world.conf["bridge"]
    assert [i["name"] for i in r1["interfaces"]] == [
        bridge, host_veth_name("c1", "eth0"), "eth0"]
    assert r1["interfaces"][0]["mac"] == bridge_mac(bridge, node_identity())
    assert r1["interfaces"][2]["sandbox"] == path_of(p1)
    assert r1["ips"][0] == {"interface": 2, "address": "10.250.0.2/24", "gateway": "10.250.0.1"}
    assert _addr(r2, 4) == "10.250.0.3"
    assert ping(p1, _addr(r2, 4)) and ping(p2, _addr(r1, 4))
    assert ping(p1, "10.250.0.1") and ping(p2, "fd00:250::1")
    assert ping(p1, _addr(r2, 6))
    # container side: MTU, addresses, default route via the gateway
    link = json.loads(sh("ip", "-n", p1, "-j", "-d", "link", "show", "eth0").stdout)[0]
    assert link["mtu"] == 1400 and link["linkinfo"]["info_kind"] == "veth"
    routes = sh("ip", "-n", p1, "route", "show", "default").stdout
    assert "via 10.250.0.1 dev eth0" in routes
    # host side: veth on the bridge with hairpin, pinned bridge MAC, forwarding, masquerade
    port = json.loads(sh("ip", "-n", world.node, "-j", "-d", "link", "show",
                         host_veth_name("c1", "eth0")).stdout)[0]
    assert port["master"] == bridge and port["linkinfo"]["info_slave_data"]["hairpin"]
    br = json.loads(sh("ip", "-n", world.node, "-j", "link", "show", bridge).stdout)[0]
    assert br["address"] == bridge_mac(bridge, node_identity())
    fwd = sh("ip", "netns", "exec", world.node, "sysctl", "-n", "net.ipv4.ip_forward").stdout
    assert fwd.strip() == "1"
    masq = {e["address"]: e["comment"] for e in nft_elements(world.node)}
    assert masq["10.250.0.2"] == f"c1 eth0 {world.conf['name']}"
    assert set(masq) == {"10.250.0.2", "10.250.0.3", _addr(r1, 6), _addr(r2, 6)}
    # the pinned gateway MAC survives ports coming and going
    assert world.call("DEL", p1, cid="c1").rc == 0
    br = json.loads(sh("ip", "-n", world.node, "-j", "link", "show", bridge).stdout)[0]
    assert br["address"] == bridge_mac(bridge, node_identity())


def test_ipv6_works_in_a_pod_created_with_ipv6_disabled(world: World) -> None:
    pod = world.ns.add("p1")
    sh("ip", "netns", "exec", pod, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")
    out = world.add(pod, "c1")
    assert ping(pod, "fd00:250::1") and _addr(out, 6) == "fd00:250::2"


def test_masquerade_rewrites_traffic_leaving_the_pod_subnet(world: World) -> None:
    # An "outside" host on a second link of the node: pod traffic to it must be masqueraded
    # to the node address, traffic inside the pod subnet must keep the pod address.
    p1, ext = world.ns.add("p1"), world.ns.add("ext")
    world.add(p1, "c1")
    sh("ip", "-n", world.node, "link", "add", "kcniup", "type", "veth", "peer", "name",
       "kcnidown", "netns", ext)
    sh("ip", "-n", world.node, "addr", "add", "192.0.2.1/24", "dev", "kcniup")
    sh("ip", "-n", world.node, "link", "set", "kcniup", "up")
    sh("ip", "-n", ext, "addr", "add", "192.0.2.2/24", "dev", "kcnidown")
    sh("ip", "-n", ext, "link", "set", "kcnidown", "up")
    # ext has no route back to the pod subnet: only a masqueraded ping can succeed.
    assert ping(p1, "192.0.2.2")
    conntrack = sh("ip", "netns", "exec", world.node, "conntrack", "-L", "-p", "icmp",
                   check=False).stdout
    assert "src=192.0.2.2 dst=192.0.2.1" in conntrack


def test_kubernetes_cni_args_requested_ip_and_runtime_mac(world: World) -> None:
    pod = world.ns.add("p1")
    mac = "0a:58:0a:fa:00:2a"
    conf = {**world.conf, "runtimeConfig": {"mac": mac}}
    res = world.call("ADD", pod, conf=conf, args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;"
                     "K8S_POD_NAME=web-0;IP=10.250.0.42,fd00:250::42")
    assert res.rc == 0, res
    assert [ip["address"] for ip in res.out["ips"]] == ["10.250.0.42/24", "fd00:250::42/64"]
    assert res.out["interfaces"][2]["mac"] == mac
    link = json.loads(sh("ip", "-n", pod, "-j", "link", "show", "eth0").stdout)[0]
    assert link["address"] == mac


def test_result_shape_follows_the_requested_version(world: World) -> None:
    shapes = {}
    for i, ver in enumerate(("0.4.0", "1.0.0", "1.1.0")):
        pod = world.ns.add(f"v{i}")
        out = world.add(pod, f"v{i}", conf={**world.conf, "cniVersion": ver})
        shapes[ver] = out
        assert out["cniVersion"] == ver
    assert shapes["0.4.0"]["ips"][0]["version"] == "4"
    assert "version" not in shapes["1.0.0"]["ips"][0]
    assert "mtu" not in shapes["1.0.0"]["interfaces"][2]
    assert shapes["1.1.0"]["interfaces"][2]["mtu"] == 1400
    for out in shapes.values():
        assert set(out) == {"cniVersion", "interfaces", "ips", "routes", "dns"}


def test_check_passes_then_fails_after_each_kind_of_tampering(world: World) -> None:
    pod = world.ns.add("p1")
    prev = world.add(pod, "c1")
    check = world.with_prev(prev)
    assert world.call("CHECK", pod, cid="c1", conf=check).rc == 0
    v4 = _addr(prev, 4)

    def broken(undo: list[str], tamper: list[str], expect: str) -> None:
        sh(*tamper)
        res = world.call("CHECK", pod, cid="c1", conf=check)
        assert res.rc == 1 and expect in res.out["msg"], res
        assert res.out["code"] == 103 and res.out["cniVersion"] == "1.0.0"
        if undo:
            sh(*undo)
            assert world.call("CHECK", pod, cid="c1", conf=check).rc == 0

    broken(["ip", "-n", pod, "route", "add", "default", "via", "10.250.0.1"],
           ["ip", "-n", pod, "route", "del", "default"], "route 0.0.0.0/0")
    veth = host_veth_name("c1", "eth0")
    broken(["ip", "-n", world.node, "link", "set", veth, "type", "bridge_slave", "hairpin", "on"],
           ["ip", "-n", world.node, "link", "set", veth, "type", "bridge_slave", "hairpin", "off"],
           "hairpin")
    broken(["ip", "-n", pod, "link", "set", "eth0", "mtu", "1400"],
           ["ip", "-n", pod, "link", "set", "eth0", "mtu", "1300"], "MTU")
    elem = f"{{ {v4} comment \"c1 eth0 {world.conf['name']}\" : jump masq-10.250.0.0-24 }}"
    broken(["ip", "netns", "exec", world.node, "nft", f"add element inet kdns-cni masq4 {elem}"],
           ["ip", "netns", "exec", world.node, "nft",
            f"delete element inet kdns-cni masq4 {{ {v4} }}"], "masquerade")
    ipam_file = world.tmp / "ipam" / world.conf["name"] / v4
    content = ipam_file.read_bytes()
    ipam_file.unlink()
    res = world.call("CHECK", pod, cid="c1", conf=check)
    assert res.rc == 1 and v4 in res.out["msg"]
    ipam_file.write_bytes(content)
    broken([], ["ip", "-n", pod, "addr", "flush", "dev", "eth0"], f"failed to match addr {v4}")


def test_second_add_of_the_same_attachment_fails_but_a_new_ifname_works(world: World) -> None:
    pod = world.ns.add("p1")
    world.add(pod, "c1")
    again = world.call("ADD", pod, cid="c1")
    assert again.rc == 1 and again.out["code"] == 101
    assert "already exists" in again.out["msg"]
    # a second interface in the same pod (no routes, another subnet: another network)
    other = bridge_conf(f"{world.conf['name']}2", str(world.tmp / "ipam"),
                        str(world.tmp / "state"), subnet="10.251.0.0/24", bridge="kcni2br",
                        promiscMode=True, isDefaultGateway=False)
    other["ipam"]["routes"] = []
    second = world.add(pod, "c1", ifname="net1", conf=other)
    assert second["interfaces"][2]["name"] == "net1"
    assert ping(pod, "10.251.0.1")
    assert "promiscuity 1" in sh("ip", "-n", world.node, "-d", "link", "show", "kcni2br").stdout


def test_is_default_gateway_adds_the_default_route(world: World) -> None:
    conf = {**world.conf, "isDefaultGateway": True, "isGateway": False}
    conf["ipam"] = {**conf["ipam"], "routes": []}
    pod = world.ns.add("p1")
    out = world.add(pod, "c1", conf=conf)
    assert {r["dst"]: r["gw"] for r in out["routes"]} == {"0.0.0.0/0": "10.250.0.1",
                                                          "::/0": "fd00:250::1"}
    assert ping(pod, "10.250.0.1")  # isDefaultGateway implies isGateway
    assert world.call("CHECK", pod, cid="c1", conf={**conf, "prevResult": out}).rc == 0


def test_del_removes_everything_and_is_idempotent(world: World) -> None:
    pod = world.ns.add("p1")
    out = world.add(pod, "c1")
    assert len(world.ipam_files()) == 2 + 2 + 1  # 2 IPs, 2 last_reserved_ip, lock
    conf = world.with_prev(out)
    for _ in range(2):
        res = world.call("DEL", pod, cid="c1", conf=conf)
        assert (res.rc, res.out) == (0, None), res
    assert "eth0" not in sh("ip", "-n", pod, "link").stdout
    assert host_veth_name("c1", "eth0") not in sh("ip", "-n", world.node, "link").stdout
    assert nft_elements(world.node) == []
    assert world.ipam_files() == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    assert not list((world.tmp / "state").rglob("*.json"))


@pytest.mark.parametrize("netns_value", ["deleted-path", "empty"])
def test_del_after_the_namespace_is_gone_still_cleans_up(world: World, netns_value: str) -> None:
    # Regression test for the reference plugin's leak (containernetworking/plugins#810).
    pod = world.ns.add("p1")
    world.add(pod, "c1")
    keep = world.ns.add("p2")
    world.add(keep, "c2")
    world.ns.delete(pod)
    assert not os.path.exists(path_of(pod))
    netns = path_of(pod) if netns_value == "deleted-path" else ""
    for _ in range(2):  # no prevResult: the runtime lost it too
        res = world.call("DEL", cid="c1", netns=netns)
        assert res.rc == 0, res
    assert not os.path.exists(path_of(pod)), "DEL must never create a namespace"
    assert [e["comment"].split()[0] for e in nft_elements(world.node)] == ["c2", "c2"]
    assert all(not f.startswith("10.250.0.2") for f in world.ipam_files())
    assert host_veth_name("c1", "eth0") not in sh("ip", "-n", world.node, "link").stdout
    assert ping(keep, "10.250.0.1")


def test_proc_pid_namespace_paths_work(world: World) -> None:
    # Runtimes often pass /proc/<pid>/ns/net instead of a bind mount under /run/netns.
    pod = world.ns.add("p1")
    sleeper = subprocess.Popen(["ip", "netns", "exec", pod, "sleep", "60"])
    try:
        path = f"/proc/{sleeper.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):  # until exec'd in pod
            assert time.monotonic() < deadline
            time.sleep(0.01)
        out = world.add("", "c1", netns=path)
        assert out["interfaces"][2]["sandbox"] == path
        assert ping(pod, "10.250.0.1")
        assert world.call("CHECK", cid="c1", netns=path, conf=world.with_prev(out)).rc == 0
        assert world.call("DEL", cid="c1", netns=path).rc == 0
        assert "eth0" not in sh("ip", "-n", pod, "link").stdout
    finally:
        sleeper.kill()
        sleeper.wait()


def test_add_into_a_missing_namespace_fails_without_creating_it(world: World) -> None:
    ghost = f"/run/netns/{world.ns.prefix}-ghost"
    res = world.call("ADD", netns=ghost)
    assert res.rc == 1 and res.out["code"] == 3
    assert not os.path.exists(ghost)
    assert world.ipam_files() == []


def test_del_finishes_host_cleanup_even_when_ipam_fails(world: World) -> None:
    pod = world.ns.add("p1")
    world.add(pod, "c1")
    broken = {**world.conf, "ipam": {**world.conf["ipam"], "type": "kcni-no-such-ipam"}}
    res = world.call("DEL", pod, cid="c1", conf=broken)
    assert res.rc == 1 and res.out["code"] == 104, res  # the IP could not be released...
    assert nft_elements(world.node) == []  # ...but everything else was cleaned up
    assert host_veth_name("c1", "eth0") not in sh("ip", "-n", world.node, "link").stdout
    assert world.call("DEL", pod, cid="c1").rc == 0  # a retry with the right config frees it
    assert [f for f in world.ipam_files() if f[0].isdigit() or ":" in f] == []


def test_missing_ipam_plugin_fails_cleanly(world: World) -> None:
    pod = world.ns.add("p1")
    res = world.call("ADD", pod, conf={**world.conf, "ipam": {"type": "kcni-no-such-ipam"}})
    assert res.rc == 1 and res.out["code"] == 104 and "kcni-no-such-ipam" in res.out["msg"]
    assert "eth0" not in sh("ip", "-n", pod, "link").stdout
    assert host_veth_name("ctr1", "eth0") not in sh("ip", "-n", world.node, "link").stdout


def test_failure_after_ipam_rolls_everything_back(world: World) -> None:
    # isDefaultGateway with an IPAM default route fails after IPAM allocated and the
    # container was half set up: the address, veth and masquerade must all be undone.
    pod = world.ns.add("p1")
    res = world.call("ADD", pod, conf={**world.conf, "isDefaultGateway": True})
    assert res.rc == 1 and res.out["code"] == 7 and "ineffective" in res.out["msg"], res
    assert [f for f in world.ipam_files() if not f.startswith(("last", "lock"))] == []
    assert "eth0" not in sh("ip", "-n", pod, "link").stdout
    assert host_veth_name("ctr1", "eth0") not in sh("ip", "-n", world.node, "link").stdout
    assert nft_elements(world.node) == []
    # and the pod can be added afterwards (round robin moves on past the released .2)
    assert world.add(pod, "ctr1")["ips"][0]["address"] == "10.250.0.3/24"


def test_ten_concurrent_adds_get_ten_distinct_addresses(world: World) -> None:
    pods = [world.ns.add(f"c{i}") for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda ip: world.call("ADD", ip[1], cid=f"cc{ip[0]}"),
                                enumerate(pods)))
    assert all(r.rc == 0 for r in results), [r for r in results if r.rc]
    v4 = [_addr(r.out, 4) for r in results]
    assert len(set(v4)) == 10
    files = [f for f in world.ipam_files() if f.startswith("10.")]
    assert sorted(files) == sorted(v4)
    owners = {(world.tmp / "ipam" / world.conf["name"] / f).read_bytes() for f in files}
    assert owners == {f"cc{i}\r\neth0".encode() for i in range(10)}
    assert ping(pods[0], v4[9]) and ping(pods[9], v4[0])


def test_gc_removes_attachments_that_are_not_valid(world: World) -> None:
    conf = {**world.conf, "cniVersion": "1.1.0"}
    pods = [world.ns.add(f"g{i}") for i in range(3)]
    outs = [world.add(p, f"g{i}", conf=conf) for i, p in enumerate(pods)]
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "g1", "ifname": "eth0"}]}
    res = world.call("GC", conf=gc, cid="", netns="")
    assert (res.rc, res.out) == (0, None), res
    assert {e["comment"].split()[0] for e in nft_elements(world.node)} == {"g1"}
    assert [f for f in world.ipam_files() if f.startswith("10.")] == [_addr(outs[1], 4)]
    links = sh("ip", "-n", world.node, "link").stdout
    assert host_veth_name("g0", "eth0") not in links and host_veth_name("g1", "eth0") in links
    assert ping(pods[1], "10.250.0.1") and not ping(pods[0], "10.250.0.1")
    # the older key name from the spec-v1.1.0 text works too
    old = {**conf, "cni.dev/attachments": []}
    assert world.call("GC", conf=old, cid="", netns="").rc == 0
    assert nft_elements(world.node) == []


def test_status_reports_ready_then_exhausted(world: World) -> None:
    conf = {**world.conf, "cniVersion": "1.1.0"}
    conf["ipam"] = {**conf["ipam"], "ranges": [[{"subnet": "10.249.0.0/30"}]]}
    assert world.call("STATUS", conf=conf, cid="", netns="").rc == 0
    pod = world.ns.add("s1")
    world.add(pod, "s1", conf=conf)  # a /30 holds one pod: .1 is the gateway
    res = world.call("STATUS", conf=conf, cid="", netns="")
    assert res.rc == 1 and res.out["code"] == 50, res
    full = world.call("ADD", world.ns.add("s2"), cid="s2", conf=conf)
    assert full.rc == 1 and "no IP addresses available" in full.out["msg"], full
    assert host_veth_name("s2", "eth0") not in sh("ip", "-n", world.node, "link").stdout
