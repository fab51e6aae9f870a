"""`kdns-cni run`: executes a network config list for one namespace, like cnitool.

    kdns-cni run add|check|del|gc|status|version <network-name-or-file> [<netns>]

Environment as cnitool: NETCONFPATH (config dir), CNI_PATH, CNI_IFNAME (default eth0),
CNI_ARGS, CAP_ARGS (JSON capability arguments, e.g. portMappings), CNI_CONTAINERID;
CNI_CACHE_DIR (default /var/lib/cni) holds the libcni-compatible result cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from kdns.cni import runtime, version
from kdns.cni.delegate import find_plugin
from kdns.cni.env import parse_cni_args
from kdns.cni.errors import (
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    IO_FAILURE,
    PLUGIN_FAILURE,
    CniError,
)

DEFAULT_CNI_PATH = "/opt/cni/bin:/usr/lib/cni"


@dataclass(frozen=True, slots=True)
class Invocation:
    net: runtime.NetworkList
    netns: str
    container_id: str
    ifname: str
    cni_path: str
    cni_args: str
    cap_args: dict[str, Any]
    cache_dir: str


def _exec(inv: Invocation, plugin: dict[str, Any], command: str, stdin: bytes) -> str:
    binary = find_plugin(plugin["type"], tuple(p for p in inv.cni_path.split(":") if p))
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": inv.container_id,
           "CNI_NETNS": inv.netns, "CNI_IFNAME": inv.ifname, "CNI_ARGS": inv.cni_args,
           "CNI_PATH": inv.cni_path}
    proc = subprocess.run([binary], input=stdin, env=env, capture_output=True, timeout=300,
                          check=False)
    sys.stderr.buffer.write(proc.stderr)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise PluginFailed(plugin["type"], command, out)
    return out


class PluginFailed(Exception):
    def __init__(self, plugin: str, command: str, output: str) -> None:
        super().__init__(f"{plugin} {command} failed")
        self.output = output


def add(inv: Invocation) -> dict[str, Any]:
    prev: dict[str, Any] | None = None
    for i, plugin in enumerate(inv.net.plugins):
        stdin = runtime.request_config(inv.net, plugin, inv.cap_args, prev)
        try:
            prev = json.loads(_exec(inv, plugin, "ADD", stdin))
        except (PluginFailed, CniError, ValueError, OSError, subprocess.TimeoutExpired):
            # Like containerd: undo what the chain did so far, then report the failure.
            _del_chain(inv, inv.net.plugins[:i + 1], prev, quiet=True)
            raise
    assert prev is not None
    runtime.write_cache(_cache(inv), runtime.cache_record(
        inv.net, inv.container_id, inv.ifname, inv.netns,
        list(parse_cni_args(inv.cni_args)), inv.cap_args, prev))
    return prev


def _cache(inv: Invocation) -> str:
    return runtime.cache_path(inv.cache_dir, inv.net.name, inv.container_id, inv.ifname)


def _cached_result(inv: Invocation) -> dict[str, Any] | None:
    record = runtime.read_cache(_cache(inv))
    result = record.get("result") if record else None
    return result if isinstance(result, dict) else None


def _del_chain(inv: Invocation, plugins: tuple[dict[str, Any], ...],
               prev: dict[str, Any] | None, quiet: bool = False) -> None:
    """Every plugin gets its DEL even when an earlier one failed; the first failure is
    raised at the end (unless quiet: a failed ADD is being undone)."""
    first: Exception | None = None
    for plugin in reversed(plugins):
        stdin = runtime.request_config(inv.net, plugin, inv.cap_args, prev)
        try:
            _exec(inv, plugin, "DEL", stdin)
        except (PluginFailed, CniError, OSError, subprocess.TimeoutExpired) as e:
            first = first or e
    if first is not None and not quiet:
        raise first


def delete(inv: Invocation) -> None:
    _del_chain(inv, inv.net.plugins, _cached_result(inv))
    try:
        os.unlink(_cache(inv))
    except FileNotFoundError:
        pass


def check(inv: Invocation) -> None:
    if not version.at_least(inv.net.cni_version, "0.4.0"):
        raise CniError(INCOMPATIBLE_VERSION, "CHECK needs cniVersion 0.4.0 or later")
    if inv.net.disable_check:
        return
    prev = _cached_result(inv)
    if prev is None:
        raise CniError(INVALID_CONFIG, f"no cached result for {inv.container_id} "
                       f"{inv.ifname} in {inv.net.name}: was ADD run?")
    for plugin in inv.net.plugins:
        _exec(inv, plugin, "CHECK", runtime.request_config(inv.net, plugin, inv.cap_args, prev))


def gc(inv: Invocation) -> None:
    if not version.at_least(inv.net.cni_version, "1.1.0"):
        raise CniError(INCOMPATIBLE_VERSION, "GC needs cniVersion 1.1.0")
    if inv.net.disable_gc:
        return
    valid = runtime.cached_attachments(inv.cache_dir, inv.net.name)
    # Both keys: the spec-v1.1.0 text and what libcni actually sends.
    extra = {"cni.dev/valid-attachments": valid, "cni.dev/attachments": valid}
    for plugin in inv.net.plugins:
        _exec(inv, plugin, "GC", runtime.request_config(inv.net, plugin, {}, None, extra))


def status(inv: Invocation) -> None:
    if not version.at_least(inv.net.cni_version, "1.1.0"):
        raise CniError(INCOMPATIBLE_VERSION, "STATUS needs cniVersion 1.1.0")
    for plugin in inv.net.plugins:
        _exec(inv, plugin, "STATUS", runtime.request_config(inv.net, plugin, {}, None))


def versions(inv: Invocation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for plugin in inv.net.plugins:
        stdin = json.dumps({"cniVersion": inv.net.cni_version}).encode()
        out[plugin["type"]] = json.loads(_exec(inv, plugin, "VERSION", stdin))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdns-cni run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["add", "check", "del", "gc", "status", "version"])
    p.add_argument("network", help="network name (searched in NETCONFPATH) or a config file")
    p.add_argument("netns", nargs="?", default="", help="namespace name or path")
    return p


def _invocation(args: argparse.Namespace) -> Invocation:
    net = runtime.load_network(args.network,
                               os.environ.get("NETCONFPATH", runtime.DEFAULT_CONF_DIR))
    netns = runtime.netns_path(args.netns)
    if args.command in ("add", "check") and not netns:
        raise CniError(INVALID_CONFIG, f"{args.command} needs a network namespace")
    try:
        cap_args = json.loads(os.environ.get("CAP_ARGS") or "{}")
    except ValueError as e:
        raise CniError(INVALID_CONFIG, "CAP_ARGS is not valid JSON", str(e)) from e
    if not isinstance(cap_args, dict):
        raise CniError(INVALID_CONFIG, "CAP_ARGS must be a JSON object")
    return Invocation(
        net=net, netns=netns,
        container_id=os.environ.get("CNI_CONTAINERID") or runtime.default_container_id(netns),
        ifname=os.environ.get("CNI_IFNAME") or "eth0",
        cni_path=os.environ.get("CNI_PATH") or DEFAULT_CNI_PATH,
        cni_args=os.environ.get("CNI_ARGS", ""), cap_args=cap_args,
        cache_dir=os.environ.get("CNI_CACHE_DIR") or runtime.DEFAULT_CACHE_DIR,
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        inv = _invocation(args)
        match args.command:
            case "add":
                print(json.dumps(add(inv)))
            case "del":
                delete(inv)
            case "check":
                check(inv)
            case "gc":
                gc(inv)
            case "status":
                status(inv)
            case "version":
                print(json.dumps(versions(inv)))
    except PluginFailed as e:
        # The plugin's own error JSON, unchanged; a plugin that printed nothing gets one.
        fallback = CniError(PLUGIN_FAILURE, str(e), "the plugin printed no error JSON")
        sys.stdout.write(e.output if e.output.strip() else
                         json.dumps(fallback.to_json(version.LATEST)) + "\n")
        return 1
    except CniError as e:
        print(json.dumps(e.to_json(version.LATEST)))
        return 1
    except (OSError, subprocess.TimeoutExpired) as e:
        print(json.dumps(CniError(IO_FAILURE, "I/O failure", str(e)).to_json(version.LATEST)))
        return 1
    return 0
