from __future__ import annotations

import pytest

from kdns.cni.env import parse_cni_args, parse_env, valid_ifname
from kdns.cni.errors import CniError

BASE = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"}


def test_parses_a_complete_add() -> None:
    env = parse_env({**BASE, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5"})
    assert env.command == "ADD" and env.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert env.arg("K8S_POD_NAME") == "web" and env.arg("IP") == "10.0.0.5"
    assert env.arg("nope") is None


@pytest.mark.parametrize("drop,command,missing", [
    ("CNI_NETNS", "ADD", "CNI_NETNS"), ("CNI_NETNS", "CHECK", "CNI_NETNS"),
    ("CNI_CONTAINERID", "DEL", "CNI_CONTAINERID"), ("CNI_PATH", "GC", "CNI_PATH"),
    ("CNI_COMMAND", "", "CNI_COMMAND")])
def test_missing_variables_are_named_with_code_4(drop: str, command: str, missing: str) -> None:
    env = {**BASE, "CNI_COMMAND": command}
    env.pop(drop)
    with pytest.raises(CniError) as e:
        parse_env(env)
    assert e.value.code == 4 and missing in e.value.msg


def test_del_does_not_need_a_netns() -> None:
    env = {**BASE, "CNI_COMMAND": "DEL"}
    env.pop("CNI_NETNS")
    assert parse_env(env).netns == ""


@pytest.mark.parametrize("key,value", [
    ("CNI_COMMAND", "FROB"), ("CNI_CONTAINERID", "-bad"), ("CNI_CONTAINERID", "a b"),
    ("CNI_IFNAME", "x" * 16), ("CNI_IFNAME", "a/b"), ("CNI_ARGS", "novalue")])
def test_invalid_values_are_code_4(key: str, value: str) -> None:
    with pytest.raises(CniError) as e:
        parse_env({**BASE, key: value})
    assert e.value.code == 4


def test_cni_args_edge_cases() -> None:
    assert parse_cni_args("") == ()
    assert parse_cni_args("A=1;;B=") == (("A", "1"), ("B", ""))
    assert valid_ifname("eth0") and not valid_ifname("..") and not valid_ifname("a:b")
