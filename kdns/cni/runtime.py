"""The runtime side of CNI, as libcni does it: conflists, request configs, the result cache.

Everything here is pure except `load_network` and the cache read/write helpers. The chain
execution lives in runtime_cli.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from dataclasses import dataclass
from typing import Any, Final

from kdns.cni import version
from kdns.cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, IO_FAILURE, CniError

DEFAULT_CONF_DIR: Final = "/etc/cni/net.d"
DEFAULT_CACHE_DIR: Final = "/var/lib/cni"
CACHE_KIND: Final = "cniCacheV1"


@dataclass(frozen=True, slots=True)
class NetworkList:
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    raw: bytes  # the file as loaded; libcni keeps it in the cache
    disable_check: bool = False
    disable_gc: bool = False


def parse_network(raw: bytes) -> NetworkList:
    """A .conflist, or a single-plugin .conf turned into a list of one (as libcni does)."""
    try:
        conf = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CniError(INVALID_CONFIG, "network config is not valid JSON", str(e)) from e
    if not isinstance(conf, dict):
        raise CniError(INVALID_CONFIG, "network config is not a JSON object")
    name = conf.get("name")
    if not isinstance(name, str) or not name:
        raise CniError(INVALID_CONFIG, "network config has no name")
    plugins = conf.get("plugins")
    if plugins is None:
        single = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
        plugins = [single]
    if not isinstance(plugins, list) or not plugins or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) and p["type"] for p in plugins):
        raise CniError(INVALID_CONFIG, "plugins must be a non-empty list of objects with a type")
    return NetworkList(
        name=name, cni_version=negotiate(conf), plugins=tuple(plugins), raw=raw,
        disable_check=bool(conf.get("disableCheck", False)),
        disable_gc=bool(conf.get("disableGC", False)),
    )


def negotiate(conf: dict[str, Any]) -> str:
    """Spec 1.1: the highest of cniVersions we support, else cniVersion itself."""
    versions = conf.get("cniVersions")
    if isinstance(versions, list) and versions:
        best = version.highest_supported([v for v in versions if isinstance(v, str)])
        if best is None:
            raise CniError(INCOMPATIBLE_VERSION, "no supported version in cniVersions",
                           repr(versions))
        return best
    raw = conf.get("cniVersion", "")
    return version.require_supported(raw if isinstance(raw, str) else "")


def request_config(net: NetworkList, plugin: dict[str, Any], cap_args: dict[str, Any],
                   prev_result: dict[str, Any] | None,
                   extra: dict[str, Any] | None = None) -> bytes:
    """The stdin of one plugin call: name and cniVersion injected, declared capabilities
    turned into runtimeConfig, `capabilities` removed, prevResult added when given."""
    conf = copy.deepcopy(plugin)
    conf["cniVersion"] = net.cni_version
    conf["name"] = net.name
    declared = conf.pop("capabilities", None) or {}
    runtime = {k: v for k, v in cap_args.items() if declared.get(k)}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev_result is not None:
        conf["prevResult"] = prev_result
    conf.update(extra or {})
    return json.dumps(conf).encode()


def default_container_id(netns: str) -> str:
    # cnitool: "cnitool-" + the first 20 hex digits of sha512(netns path).
    import hashlib

    return "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


def netns_path(netns: str) -> str:
    return netns if not netns or "/" in netns else f"/var/run/netns/{netns}"


def load_network(name_or_path: str, conf_dir: str) -> NetworkList:
    if os.path.isfile(name_or_path):
        with open(name_or_path, "rb") as f:
            return parse_network(f.read())
    try:
        files = sorted(os.listdir(conf_dir))
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot read config dir {conf_dir}", str(e)) from e
    for ext in (".conflist", ".conf", ".json"):
        for fname in files:
            if not fname.endswith(ext):
                continue
            with open(os.path.join(conf_dir, fname), "rb") as f:
                raw = f.read()
            try:
                if json.loads(raw).get("name") == name_or_path:
                    return parse_network(raw)
            except (ValueError, AttributeError):
                continue  # someone else's broken file must not hide ours
    raise CniError(INVALID_CONFIG, f"no network named {name_or_path!r} in {conf_dir}")


# libcni result cache ------------------------------------------------------------------------
def cache_path(cache_dir: str, network: str, container_id: str, ifname: str) -> str:
    return os.path.join(cache_dir, "results", f"{network}-{container_id}-{ifname}")


def cache_record(net: NetworkList, container_id: str, ifname: str, netns: str,
                 cni_args: list[tuple[str, str]], cap_args: dict[str, Any],
                 result: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": CACHE_KIND, "containerId": container_id,
        "config": base64.b64encode(net.raw).decode(), "ifName": ifname,
        "networkName": net.name, "netns": netns, "result": result,
    }
    if cni_args:
        record["cniArgs"] = [list(p) for p in cni_args]
    if cap_args:
        record["capabilityArgs"] = cap_args
    return record


def write_cache(path: str, record: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def read_cache(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a corrupt cache entry must not block DEL
    return record if isinstance(record, dict) and record.get("kind") == CACHE_KIND else None


def cached_attachments(cache_dir: str, network: str) -> list[dict[str, str]]:
    """Attachments with a cached result for `network`: what GC must keep."""
    results = os.path.join(cache_dir, "results")
    try:
        names = sorted(os.listdir(results))
    except FileNotFoundError:
        return []
    out: list[dict[str, str]] = []
    for fname in names:
        record = read_cache(os.path.join(results, fname))
        if record and record.get("networkName") == network:
            out.append({"containerID": str(record.get("containerId", "")),
                        "ifname": str(record.get("ifName", ""))})
    return out
