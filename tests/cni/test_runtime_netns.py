"""`kdns-cni run` driving a spec-1.1 kdns-only chain: GC from the result cache, STATUS, errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kdns.cni.netconf import host_veth_name
from tests.cni.cnitest import Namespaces, console_script, nft_elements, ping, sh

pytestmark = pytest.mark.root


def run(node: str, env: dict[str, str], *args: str, cid: str = "") -> tuple[int, Any]:
    full = {**os.environ, **env}
    if cid:
        full["CNI_CONTAINERID"] = cid
    cmd = ["ip", "netns", "exec", node, console_script("kdns-cni"), "run", *args]
    proc = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None


def test_gc_and_status_through_the_run_helper(netns: Namespaces, cni_path: str,
                                              tmp_path: Path) -> None:
    node = netns.add("node")
    pods = [netns.add(f"p{i}") for i in range(2)]
    conf = tmp_path / "podnet.conflist"
    conf.write_text(json.dumps({
        "cniVersions": ["1.0.0", "1.1.0"], "name": "podnet", "plugins": [{
            "type": "kdns-cni", "bridge": "kcnirt0", "isGateway": True, "ipMasq": True,
            "stateDir": str(tmp_path / "state"),
            "ipam": {"type": "kdns-ipam", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.238.0.0/29", "rangeEnd": "10.238.0.4"}]],
                     "routes": [{"dst": "0.0.0.0/0"}]}}]}))
    env = {"CNI_PATH": cni_path, "CNI_CACHE_DIR": str(tmp_path / "cache")}
    assert run(node, env, "status", str(conf)) == (0, None)
    for i, pod in enumerate(pods):
        rc, out = run(node, env, "add", str(conf), pod, cid=f"k{i}")
        assert rc == 0 and out["cniVersion"] == "1.1.0", out
    # the runtime "forgets" k0 (node crash before DEL): its cache entry is gone
    (tmp_path / "cache" / "results" / "podnet-k0-eth0").unlink()
    assert run(node, env, "gc", str(conf)) == (0, None)
    files = sorted(os.listdir(tmp_path / "ipam" / "podnet"))
    assert files == ["10.238.0.3", "last_reserved_ip.0", "lock"]
    assert {e["comment"].split()[0] for e in nft_elements(node)} == {"k1"}
    assert host_veth_name("k0", "eth0") not in sh("ip", "-n", node, "link").stdout
    assert ping(pods[1], "10.238.0.1")
    # the range is .2-.4; GC freed .2, so two more fit (.4, then .2), then it is full
    for i in (2, 3):
        assert run(node, env, "add", str(conf), netns.add(f"p{i}"), cid=f"k{i}")[0] == 0
    rc, out = run(node, env, "add", str(conf), netns.add("p4"), cid="k4")
    assert rc == 1 and out["code"] == 102, out
    rc, out = run(node, env, "status", str(conf))
    assert rc == 1 and out["code"] == 50, out
    assert run(node, env, "check", str(conf), pods[1], cid="k1")[0] == 0


def test_run_reports_errors_as_json(netns: Namespaces, cni_path: str, tmp_path: Path) -> None:
    node = netns.add("node")
    env = {"CNI_PATH": cni_path, "NETCONFPATH": str(tmp_path),
           "CNI_CACHE_DIR": str(tmp_path / "cache")}
    rc, out = run(node, env, "add", "nonet", "x")
    assert rc == 1 and "no network named 'nonet'" in out["msg"]
    (tmp_path / "a.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "kcni-missing-plugin"}]}))
    rc, out = run(node, env, "add", "a", netns.add("p"))
    assert rc == 1 and "kcni-missing-plugin" in out["msg"]
    rc, out = run(node, env, "check", "a", netns.add("q"))
    assert rc == 1 and "no cached result" in out["msg"]
    rc, out = run(node, env, "gc", "a")
    assert rc == 1 and out["code"] == 1


def test_a_failing_plugin_later_in_the_chain_undoes_the_earlier_ones(
        netns: Namespaces, cni_path: str, tmp_path: Path) -> None:
    node, pod = netns.add("node"), netns.add("p")
    conf = tmp_path / "chain.conflist"
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "chain", "plugins": [
        {"type": "kdns-cni", "bridge": "kcnich0", "isGateway": True, "ipMasq": True,
         "stateDir": str(tmp_path / "state"),
         "ipam": {"type": "kdns-ipam", "dataDir": str(tmp_path / "ipam"),
                  "subnet": "10.236.0.0/24"}},
        {"type": "kcni-missing-plugin"}]}))
    env = {"CNI_PATH": cni_path, "CNI_CACHE_DIR": str(tmp_path / "cache")}
    rc, out = run(node, env, "add", str(conf), pod, cid="x1")
    assert rc == 1 and "kcni-missing-plugin" in out["msg"], out
    assert "eth0" not in sh("ip", "-n", pod, "link").stdout
    assert sorted(os.listdir(tmp_path / "ipam" / "chain")) == ["last_reserved_ip.0", "lock"]
    assert nft_elements(node) == []
    assert not (tmp_path / "cache" / "results").exists()
