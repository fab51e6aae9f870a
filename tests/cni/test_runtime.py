from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdns.cni import runtime
from kdns.cni.errors import CniError

CONFLIST = {"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0", "9.0.0"], "name": "n",
            "plugins": [{"type": "kdns-cni", "ipam": {"type": "kdns-ipam"}},
                        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def test_version_negotiation_picks_the_highest_supported() -> None:
    net = runtime.parse_network(json.dumps(CONFLIST).encode())
    assert net.cni_version == "1.1.0"
    with pytest.raises(CniError) as e:
        runtime.parse_network(json.dumps({**CONFLIST, "cniVersions": ["7.0.0"]}).encode())
    assert e.value.code == 1


def test_request_config_injects_and_filters_capabilities() -> None:
    net = runtime.parse_network(json.dumps(CONFLIST).encode())
    caps = {"portMappings": [{"hostPort": 1}], "bandwidth": {}}
    first = json.loads(runtime.request_config(net, net.plugins[0], caps, None))
    assert first == {"type": "kdns-cni", "ipam": {"type": "kdns-ipam"}, "cniVersion": "1.1.0",
                     "name": "n"}
    second = json.loads(runtime.request_config(net, net.plugins[1], caps, {"ips": []}))
    assert second["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert "capabilities" not in second and second["prevResult"] == {"ips": []}
    assert "capabilities" in net.plugins[1]  # the loaded list is not mutated


def test_single_conf_becomes_a_list_and_bad_lists_are_rejected() -> None:
    net = runtime.parse_network(b'{"cniVersion":"0.4.0","name":"x","type":"bridge"}')
    assert net.plugins == ({"type": "bridge"},)
    for bad in (b"{", b'{"name":"x","cniVersion":"1.0.0","plugins":[{}]}', b'{"plugins":[]}'):
        with pytest.raises(CniError):
            runtime.parse_network(bad)


def test_load_by_name_and_cache_round_trip(tmp_path: Path) -> None:
    (tmp_path / "00-broken.conflist").write_text("{")
    (tmp_path / "10-n.conflist").write_text(json.dumps(CONFLIST))
    net = runtime.load_network("n", str(tmp_path))
    assert net.name == "n"
    with pytest.raises(CniError):
        runtime.load_network("missing", str(tmp_path))
    path = runtime.cache_path(str(tmp_path / "c"), "n", "id1", "eth0")
    assert path.endswith("/results/n-id1-eth0")
    runtime.write_cache(path, runtime.cache_record(net, "id1", "eth0", "/run/netns/p",
                                                   [("K", "V")], {}, {"ips": []}))
    record = runtime.read_cache(path)
    assert record is not None and record["kind"] == "cniCacheV1"
    assert record["cniArgs"] == [["K", "V"]]
    assert runtime.cached_attachments(str(tmp_path / "c"), "n") == [
        {"containerID": "id1", "ifname": "eth0"}]
    assert runtime.default_container_id("/run/netns/p").startswith("cnitool-")
