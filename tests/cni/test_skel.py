"""Malformed invocations get spec error JSON from the real binaries, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from kdns.cni import skel, version
from tests.cni.cnitest import console_script

GOOD: dict[str, Any] = {"cniVersion": "1.0.0", "name": "net", "type": "kdns-cni",
                        "ipam": {"type": "kdns-ipam", "subnet": "10.9.0.0/24",
                                 "dataDir": "/nonexistent-kcni"}}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/kcni-none",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}


def run(binary: str, stdin: bytes, **env: str) -> tuple[int, Any, str]:
    full = {"PATH": os.environ["PATH"], **ENV, **env}
    full = {k: v for k, v in full.items() if v != "-"}
    p = subprocess.run([console_script(binary)], input=stdin, env=full, capture_output=True,
                       timeout=30, check=False)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr.decode()


@pytest.mark.parametrize("binary", ["kdns-cni", "kdns-ipam"])
@pytest.mark.parametrize("stdin,env,code,needle", [
    (b"{not json", {}, 6, "decode"),
    (b"[1, 2]", {}, 6, "not a JSON object"),
    (b"", {}, 6, "decode"),
    (json.dumps({**GOOD, "cniVersion": "9.9.9"}).encode(), {}, 1, "incompatible"),
    (json.dumps({**GOOD, "cniVersion": "0.2.0"}).encode(), {}, 1, "incompatible"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "cniVersion"}).encode(), {}, 1,
     "incompatible"),
    (json.dumps(GOOD).encode(), {"CNI_NETNS": "-"}, 4, "CNI_NETNS"),
    (json.dumps(GOOD).encode(), {"CNI_COMMAND": "BOGUS"}, 4, "BOGUS"),
    (json.dumps(GOOD).encode(), {"CNI_COMMAND": "GC"}, 1, "GC"),
    (json.dumps(GOOD).encode(), {"CNI_COMMAND": "STATUS"}, 1, "STATUS"),
    (json.dumps({**GOOD, "cniVersion": "0.3.1"}).encode(), {"CNI_COMMAND": "CHECK"}, 1,
     "CHECK"),
    (json.dumps({**GOOD, "cniVersion": "1.1.0"}).encode(), {"CNI_COMMAND": "GC"}, 7,
     "valid-attachments"),
    (json.dumps({**GOOD, "prevResult": {"ips": [{"address": "x"}]}}).encode(),
     {"CNI_COMMAND": "CHECK"}, 6, "address"),
])
def test_error_json(binary: str, stdin: bytes, env: dict[str, str], code: int,
                    needle: str) -> None:
    rc, out, err = run(binary, stdin, **env)
    assert rc == 1 and "Traceback" not in err
    assert out["code"] == code and needle in json.dumps(out), out
    assert out["cniVersion"] in version.SUPPORTED_VERSIONS
    assert set(out) == {"cniVersion", "code", "msg", "details"}


@pytest.mark.parametrize("conf,code,needle", [
    ({**GOOD, "mtu": "big"}, 7, "mtu"), ({**GOOD, "vlan": 5}, 2, "vlan"),
    (GOOD, 3, "kcni-none does not exist")])  # ADD into a missing namespace
def test_kdns_cni_config_errors(conf: dict[str, Any], code: int, needle: str) -> None:
    rc, out, _ = run("kdns-cni", json.dumps(conf).encode())
    assert rc == 1 and out["code"] == code and needle in json.dumps(out), out


def test_ipam_config_error_is_7() -> None:
    bad = {**GOOD, "ipam": {"type": "kdns-ipam", "subnet": "10.9.0.0/33"}}
    rc, out, _ = run("kdns-ipam", json.dumps(bad).encode())
    assert (rc, out["code"]) == (1, 7) and "CIDR" in out["msg"]


@pytest.mark.parametrize("binary", ["kdns-cni", "kdns-ipam"])
def test_version(binary: str) -> None:
    rc, out, _ = run(binary, b'{"cniVersion":"0.4.0"}', CNI_COMMAND="VERSION")
    assert rc == 0 and out == {"cniVersion": "0.4.0",
                               "supportedVersions": list(version.SUPPORTED_VERSIONS)}
    rc, out, _ = run(binary, b"", CNI_COMMAND="VERSION", CNI_CONTAINERID="-", CNI_NETNS="-")
    assert rc == 0 and out["cniVersion"] == "1.1.0"


def test_dispatch_turns_a_bug_into_error_json() -> None:
    class Broken:
        def add(self, req: skel.Request) -> Any:
            raise KeyError("oops")

    code, out = skel.dispatch(Broken(), ENV, json.dumps(GOOD).encode())  # type: ignore[arg-type]
    assert code == 1 and json.loads(out)["code"] == 100


def test_valid_attachments_accepts_both_keys() -> None:
    one = [{"containerID": "a", "ifname": "eth0"}]
    assert skel.valid_attachments({"cni.dev/valid-attachments": one}) == \
        skel.valid_attachments({"cni.dev/attachments": one})
