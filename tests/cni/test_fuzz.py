"""Arbitrary JSON never makes the parsers fail with anything but a CniError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdns.cni import runtime, skel
from kdns.cni.errors import CniError
from kdns.cni.ipam.config import parse_ipam_config
from kdns.cni.ipam_main import IpamPlugin
from kdns.cni.netconf import parse_bridge_config
from kdns.cni.result import parse_result

SCALARS = st.none() | st.booleans() | st.integers(-5, 70000) | st.sampled_from(
    ["", "10.0.0.0/24", "10.0.0.1", "fd00::/64", "fd00::1", "0.0.0.0/0", "x", "1.1.0",
     "10.0.0.0/31", "kdns-ipam", "eth0", "02:00:00:00:00:01"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(
                        ["subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes",
                         "dst", "gw", "ips", "address", "interface", "type", "name", "mtu",
                         "dns", "interfaces", "cniVersion", "plugins", "cniVersions",
                         "bridge", "ipMasq", "dataDir"]), inner, max_size=4),
                    max_leaves=12)


def _only_cni_errors(fn: Any, arg: Any) -> None:
    try:
        fn(arg)
    except CniError:
        pass


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_result_parser(raw: Any) -> None:
    _only_cni_errors(parse_result, raw)


@settings(max_examples=300, deadline=None)
@given(JSON, JSON)
def test_config_parsers(ipam: Any, extra: Any) -> None:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "net", "ipam": ipam}
    if isinstance(extra, dict):
        conf.update({k: v for k, v in extra.items() if k != "ipam"})
    _only_cni_errors(parse_ipam_config, conf)
    _only_cni_errors(parse_bridge_config, conf)
    _only_cni_errors(runtime.parse_network, json.dumps(conf).encode())


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(JSON)
def test_ipam_plugin_never_reports_an_internal_error(tmp_path_factory: Any, ipam: Any) -> None:
    if isinstance(ipam, dict):
        ipam = {**ipam, "dataDir": str(tmp_path_factory.mktemp("fuzz"))}
    conf = {"cniVersion": "1.0.0", "name": "net", "ipam": ipam}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "e"}
    code, out = skel.dispatch(IpamPlugin(), env, json.dumps(conf).encode())
    if code:
        assert json.loads(out)["code"] != 100, out
