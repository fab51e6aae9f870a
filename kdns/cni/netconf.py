"""kdns-cni's network config: the reference bridge plugin's keys, validated (pure)."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Any, Final

from kdns.cni.env import valid_ifname
from kdns.cni.errors import INVALID_CONFIG, UNSUPPORTED_FIELD, CniError
from kdns.cni.result import DNS, parse_dns

DEFAULT_BRIDGE: Final = "cni0"
DEFAULT_MTU: Final = 1500
DEFAULT_STATE_DIR: Final = "/var/lib/cni/kdns-cni"
# Keys of the reference bridge plugin that kdns-cni does not implement, with their "off" value.
# Setting one to anything else is reported as code 2 rather than silently ignored.
_UNSUPPORTED: Final[dict[str, object]] = {
    "vlan": 0, "vlanTrunk": None, "preserveDefaultVlan": None, "macspoofchk": False,
    "enabledad": False, "disableContainerInterface": False, "portIsolation": False,
}


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    network: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    mtu: int = DEFAULT_MTU
    hairpin_mode: bool = False
    promisc_mode: bool = False
    ipam_type: str = ""
    dns: DNS = field(default_factory=DNS)
    mac: str = ""  # runtimeConfig.mac / args.cni.mac for the container interface
    state_dir: str = DEFAULT_STATE_DIR  # kdns extension: per-attachment state for robust DEL/GC


def _invalid(msg: str, value: object = "") -> CniError:
    return CniError(INVALID_CONFIG, msg, "" if value == "" else repr(value))


def _bool(conf: dict[str, Any], key: str) -> bool:
    value = conf.get(key, False)
    if not isinstance(value, bool):
        raise _invalid(f"{key} must be a boolean", value)
    return value


def _mac(value: object) -> str:
    if not isinstance(value, str):
        raise _invalid("invalid MAC address", value)
    parts = value.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and _is_hex(p) for p in parts):
        raise _invalid("invalid MAC address", value)
    if int(parts[0], 16) & 1:
        raise _invalid("MAC address must be unicast", value)
    return value.lower()


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _requested_mac(conf: dict[str, Any]) -> str:
    runtime = conf.get("runtimeConfig")
    if isinstance(runtime, dict) and runtime.get("mac"):
        return _mac(runtime["mac"])
    args = conf.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict) and args["cni"].get("mac"):
        return _mac(args["cni"]["mac"])
    return ""


def parse_bridge_config(conf: dict[str, Any]) -> BridgeConfig:
    network = conf.get("name")
    if not isinstance(network, str) or not network or "/" in network or network in (".", ".."):
        raise _invalid("invalid or missing network name", network)
    for key, off in _UNSUPPORTED.items():
        if conf.get(key, off) not in (off, None):
            raise CniError(UNSUPPORTED_FIELD, f"unsupported field {key!r}", repr(conf[key]))
    bridge = conf.get("bridge", DEFAULT_BRIDGE)
    if not isinstance(bridge, str) or not valid_ifname(bridge):
        raise _invalid("invalid bridge name", bridge)
    mtu = conf.get("mtu", 0) or DEFAULT_MTU
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise _invalid("mtu must be an integer between 68 and 65535", mtu)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str) or not ipam["type"]:
        raise _invalid("ipam.type is required")
    if "/" in ipam["type"]:
        raise _invalid("ipam.type must be a plugin name, not a path", ipam["type"])
    dns_raw = conf.get("dns") or {}
    if not isinstance(dns_raw, dict):
        raise _invalid("dns must be an object", dns_raw)
    state_dir = conf.get("stateDir", DEFAULT_STATE_DIR)
    if not isinstance(state_dir, str) or not state_dir.startswith("/"):
        raise _invalid("stateDir must be an absolute path", state_dir)
    is_default_gw = _bool(conf, "isDefaultGateway")
    try:
        dns = parse_dns(dns_raw)
    except CniError as e:
        raise _invalid("invalid dns", e.details) from None
    return BridgeConfig(
        network=network, bridge=bridge,
        is_gateway=_bool(conf, "isGateway") or is_default_gw,  # as in the reference plugin
        is_default_gateway=is_default_gw, force_address=_bool(conf, "forceAddress"),
        ip_masq=_bool(conf, "ipMasq"), mtu=mtu, hairpin_mode=_bool(conf, "hairpinMode"),
        promisc_mode=_bool(conf, "promiscMode"), ipam_type=ipam["type"], dns=dns,
        mac=_requested_mac(conf), state_dir=state_dir,
    )


def host_veth_name(container_id: str, ifname: str) -> str:
    """Deterministic, so DEL and GC find the host end without the container's namespace."""
    digest = hashlib.sha256(f"{container_id}\0{ifname}".encode()).hexdigest()
    return f"veth{digest[:8]}"


def bridge_mac(bridge: str, node_id: str) -> str:
    """A stable, locally administered unicast MAC for the bridge: the same on every ADD on
    this node (Linux bridges otherwise take the lowest port MAC, so the gateway MAC would
    change as pods come and go), different between nodes (`node_id`), in case bridges are
    ever joined at layer 2."""
    d = hashlib.sha256(f"kdns-cni bridge {node_id} {bridge}".encode()).digest()
    first = (d[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *d[1:6]))


def node_identity() -> str:
    """/etc/machine-id when there is one (stable across reboots), else the host name."""
    try:
        with open("/etc/machine-id", encoding="ascii") as f:
            machine_id = f.read().strip()
    except (OSError, UnicodeDecodeError):
        machine_id = ""
    return machine_id or socket.gethostname()
