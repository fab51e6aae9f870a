"""The IPAM store and commands, checked at byte level against host-local's format."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kdns.cni.errors import CniError
from kdns.cni.ipam import plugin as ipam
from kdns.cni.ipam.config import parse_ipam_config
from kdns.cni.ipam.store import Store
from tests.cni.cnitest import console_script

HOST_LOCAL = "/usr/lib/cni/host-local"


def netconf(tmp: Path, ranges: list[Any] | None = None, version: str = "1.0.0",
            **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net", "ipam": {
        "type": "kdns-ipam", "dataDir": str(tmp), "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": ranges or [[{"subnet": "10.9.0.0/24"}], [{"subnet": "fd00:9::/64"}]],
        **extra}}


def att(cid: str, ifname: str = "eth0") -> ipam.Attachment:
    return ipam.Attachment(cid, ifname)


def test_add_writes_host_local_bytes(tmp_path: Path) -> None:
    res = ipam.add(parse_ipam_config(netconf(tmp_path)), att("ctr1"))
    assert [str(i.address) for i in res.ips] == ["10.9.0.2/24", "fd00:9::2/64"]
    d = tmp_path / "net"
    assert (d / "10.9.0.2").read_bytes() == b"ctr1\r\neth0"
    assert (d / "fd00:9::2").read_bytes() == b"ctr1\r\neth0"
    assert (d / "last_reserved_ip.0").read_bytes() == b"10.9.0.2"
    assert (d / "last_reserved_ip.1").read_bytes() == b"fd00:9::2"
    assert (d / "lock").read_bytes() == b""
    assert oct((d / "10.9.0.2").stat().st_mode & 0o777) == "0o644"


def test_duplicate_allocation_is_refused_and_partial_allocations_are_undone(
        tmp_path: Path) -> None:
    cfg = parse_ipam_config(netconf(tmp_path))
    ipam.add(cfg, att("ctr1"))
    with pytest.raises(CniError) as e:
        ipam.add(cfg, att("ctr1"))
    assert "duplicate allocation is not allowed" in e.value.msg
    small = parse_ipam_config(netconf(tmp_path, [[{"subnet": "10.8.0.0/24"}],
                                                 [{"subnet": "10.7.0.0/30"}]]))
    ipam.add(small, att("a"))
    with pytest.raises(CniError) as e:
        ipam.add(small, att("b"))
    assert e.value.msg.startswith("failed to allocate for range 1: no IP addresses available")
    assert not (tmp_path / "net" / "10.8.0.3").exists()  # range 0's address was given back


def test_release_round_robin_gc_and_legacy_files(tmp_path: Path) -> None:
    cfg = parse_ipam_config(netconf(tmp_path, [[{"subnet": "10.9.0.0/29"}]]))
    for cid in ("a", "b", "c"):
        ipam.add(cfg, att(cid))
    assert ipam.delete(cfg, att("b")) == [Store(str(tmp_path), "net").find("c", "eth0")[0] - 1]
    assert ipam.delete(cfg, att("b")) == []  # idempotent
    assert str(ipam.add(cfg, att("d")).ips[0].address) == "10.9.0.5/29"  # not .3 straight away
    (tmp_path / "net" / "10.9.0.6").write_bytes(b"legacy")  # pre-0.7 file: bare container ID
    assert [str(ip) for ip in ipam.delete(cfg, att("legacy"))] == ["10.9.0.6"]
    released = ipam.gc(cfg, {att("a")})
    assert sorted(str(ip) for ip in released) == ["10.9.0.4", "10.9.0.5"]
    assert sorted(os.listdir(tmp_path / "net")) == ["10.9.0.2", "last_reserved_ip.0", "lock"]


def test_requested_ip_and_gateway_refusal(tmp_path: Path) -> None:
    c = netconf(tmp_path, [[{"subnet": "10.9.0.0/24"}]])
    res = ipam.add(parse_ipam_config(c, (("IP", "10.9.0.77"),)), att("x"))
    assert str(res.ips[0].address) == "10.9.0.77/24"
    for ip, needle in (("10.9.0.77", "not available"), ("10.9.0.1", "gateway"),
                       ("10.10.0.1", "requested IPs")):
        with pytest.raises(CniError) as e:
            ipam.add(parse_ipam_config(c, (("IP", ip),)), att("y"))
        assert needle in e.value.msg


def test_check_and_status(tmp_path: Path) -> None:
    cfg = parse_ipam_config(netconf(tmp_path, [[{"subnet": "10.9.0.0/30"}]]))
    with pytest.raises(CniError) as e:
        ipam.check(cfg, att("x"), None)
    assert e.value.code == 103
    ipam.status(cfg)
    res = ipam.add(cfg, att("x"))
    ipam.check(cfg, att("x"), res)
    with pytest.raises(CniError) as e:
        ipam.status(cfg)
    assert e.value.code == 50


def test_resolv_conf_becomes_dns(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# c\nnameserver 10.96.0.10\nsearch a.svc b.svc\noptions ndots:5\n"
                      "domain cluster.local\n")
    res = ipam.add(parse_ipam_config(netconf(tmp_path, resolvConf=str(resolv))), att("r"))
    assert res.dns.nameservers == ("10.96.0.10",) and res.dns.search == ("a.svc", "b.svc")
    assert res.dns.options == ("ndots:5",) and res.dns.domain == "cluster.local"


def test_threads_sharing_the_store_never_duplicate(tmp_path: Path) -> None:
    cfg = parse_ipam_config(netconf(tmp_path, [[{"subnet": "10.9.0.0/24"}]]))
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: ipam.add(cfg, att(f"t{i}")), range(50)))
    addrs = [str(r.ips[0].address) for r in results]
    assert len(set(addrs)) == 50


def _call(binary: str, command: str, conf: dict[str, Any], cid: str) -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/none",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "PATH": os.environ["PATH"]}
    p = subprocess.run([binary], input=json.dumps(conf).encode(), env=env, capture_output=True,
                       timeout=60, check=False)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None


def test_ten_concurrent_kdns_ipam_processes(tmp_path: Path) -> None:
    conf = netconf(tmp_path, [[{"subnet": "10.9.0.0/24"}]])
    binary = console_script("kdns-ipam")
    assert binary
    with ThreadPoolExecutor(max_workers=10) as pool:
        outs = list(pool.map(lambda i: _call(binary, "ADD", conf, f"p{i}"), range(10)))
    assert all(rc == 0 for rc, _ in outs), outs
    assert len({o["ips"][0]["address"] for _, o in outs}) == 10


@pytest.mark.skipif(not os.path.exists(HOST_LOCAL), reason="containernetworking-plugins missing")
def test_host_local_and_kdns_ipam_share_one_store(tmp_path: Path) -> None:
    conf = netconf(tmp_path)
    kdns = console_script("kdns-ipam")
    assert kdns
    rc, a = _call(HOST_LOCAL, "ADD", conf, "hl1")
    rc2, b = _call(kdns, "ADD", conf, "kd1")
    rc3, c = _call(HOST_LOCAL, "ADD", conf, "hl2")
    assert (rc, rc2, rc3) == (0, 0, 0)
    assert [x["ips"][0]["address"] for x in (a, b, c)] == [
        "10.9.0.2/24", "10.9.0.3/24", "10.9.0.4/24"]
    assert {k: v for k, v in b.items() if k != "ips"} == {k: v for k, v in a.items()
                                                          if k != "ips"}
    # each releases what the other allocated, and refuses the other's duplicates
    assert _call(kdns, "ADD", conf, "hl1")[1]["msg"].endswith("duplicate allocation is not allowed")
    assert _call(kdns, "DEL", conf, "hl1")[0] == 0
    assert _call(HOST_LOCAL, "DEL", conf, "kd1")[0] == 0
    assert sorted(os.listdir(tmp_path / "net")) == [
        "10.9.0.4", "fd00:9::4", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    assert _call(HOST_LOCAL, "CHECK", conf, "hl2")[0] == 0
    assert _call(kdns, "CHECK", {**conf, "prevResult": c}, "hl2")[0] == 0
    # round robin continues from host-local's last_reserved_ip
    assert _call(kdns, "ADD", conf, "kd2")[1]["ips"][0]["address"] == "10.9.0.5/24"
