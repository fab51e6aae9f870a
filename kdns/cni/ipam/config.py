"""host-local's IPAM configuration: ranges, routes, dataDir, requested IPs (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Final

from kdns.cni.errors import INVALID_CONFIG, CniError
from kdns.cni.result import IPAddress, IPNetwork, Route, parse_address, parse_route

DEFAULT_DATA_DIR: Final = "/var/lib/cni/networks"


@dataclass(frozen=True, slots=True)
class Range:
    subnet: IPNetwork
    range_start: IPAddress
    range_end: IPAddress
    gateway: IPAddress

    def contains(self, addr: IPAddress) -> bool:
        return (addr.version == self.subnet.version and addr in self.subnet
                and self.range_start <= addr <= self.range_end)  # type: ignore[operator]

    def __str__(self) -> str:
        return f"{self.range_start}-{self.range_end}"


RangeSet = tuple[Range, ...]


@dataclass(frozen=True, slots=True)
class IpamConfig:
    network: str
    data_dir: str
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    resolv_conf: str = ""
    requested_ips: tuple[IPAddress, ...] = ()


def _invalid(msg: str, details: object = "") -> CniError:
    return CniError(INVALID_CONFIG, msg, "" if details == "" else repr(details))


def _opt_address(obj: dict[str, Any], key: str) -> IPAddress | None:
    value = obj.get(key)
    if value in (None, ""):
        return None
    try:
        return parse_address(value)
    except CniError:
        raise _invalid(f"invalid {key}", value) from None


def _last_ip(subnet: IPNetwork) -> IPAddress:
    # host-local: the last address, minus the broadcast for IPv4.
    end = subnet.broadcast_address
    return end - 1 if subnet.version == 4 else end


def parse_range(obj: object) -> Range:
    """Mirrors host-local's Range.Canonicalize, including its error cases."""
    if not isinstance(obj, dict):
        raise _invalid("invalid range", obj)
    raw = obj.get("subnet")
    if not isinstance(raw, str) or "/" not in raw:
        raise _invalid("invalid CIDR address", raw)
    try:
        subnet = ipaddress.ip_network(raw, strict=True)
    except ValueError:
        try:
            net = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise _invalid("invalid CIDR address", raw) from None
        raise _invalid(f"network has host bits set, the network address is {net.network_address}",
                       raw) from None
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise _invalid(f"network {subnet} too small to allocate from")
    start = _opt_address(obj, "rangeStart") or subnet.network_address + 1
    end = _opt_address(obj, "rangeEnd") or _last_ip(subnet)
    gateway = _opt_address(obj, "gateway") or subnet.network_address + 1
    for key, addr in (("rangeStart", start), ("rangeEnd", end)):
        if addr.version != subnet.version or addr not in subnet:
            raise _invalid(f"{key} {addr} not in network {subnet}")
    if gateway.version != subnet.version:
        raise _invalid(f"gateway {gateway} is not in the family of {subnet}")
    if start > end:  # type: ignore[operator]
        raise _invalid(f"rangeStart {start} is after rangeEnd {end}")
    return Range(subnet=subnet, range_start=start, range_end=end, gateway=gateway)


def _overlap(a: Range, b: Range) -> bool:
    return a.subnet.version == b.subnet.version and a.subnet.overlaps(b.subnet)  # type: ignore[arg-type]


def parse_range_set(obj: object, index: int) -> RangeSet:
    if not isinstance(obj, list) or not obj:
        raise _invalid(f"range set {index} is not a non-empty list", obj)
    ranges = tuple(parse_range(r) for r in obj)
    if len({r.subnet.version for r in ranges}) != 1:
        raise _invalid(f"range set {index}: mixed address families")
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if _overlap(a, b):
                raise _invalid(f"subnets {a.subnet} and {b.subnet} overlap")
    return ranges


def _requested_ips(conf: dict[str, Any], cni_args: tuple[tuple[str, str], ...]) -> list[IPAddress]:
    raw: list[object] = []
    for key, value in cni_args:
        if key == "IP":
            raw += [v for v in value.split(",") if v]
    args = conf.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict):
        raw += list(args["cni"].get("ips") or [])
    runtime = conf.get("runtimeConfig")
    if isinstance(runtime, dict):
        raw += list(runtime.get("ips") or [])
    out: list[IPAddress] = []
    for item in raw:
        text = item.split("/")[0] if isinstance(item, str) else item
        try:
            out.append(parse_address(text))
        except CniError:
            raise _invalid("invalid requested IP", item) from None
    return out


def parse_ipam_config(
    conf: dict[str, Any], cni_args: tuple[tuple[str, str], ...] = ()
) -> IpamConfig:
    """`conf` is the whole network config (IPAM delegates receive it unchanged)."""
    name = conf.get("name")
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise _invalid("invalid network name", name)
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise _invalid("IPAM config missing 'ipam' key")
    ranges_raw = ipam.get("ranges")
    if not ranges_raw and ipam.get("subnet"):
        ranges_raw = [[{k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway")
                        if k in ipam}]]
    if not ranges_raw:
        raise _invalid("no IP ranges specified")
    if not isinstance(ranges_raw, list):
        raise _invalid("invalid ranges", ranges_raw)
    range_sets = tuple(parse_range_set(rs, i) for i, rs in enumerate(ranges_raw))
    for i, a in enumerate(range_sets):
        for j in range(i + 1, len(range_sets)):
            if any(_overlap(x, y) for x in a for y in range_sets[j]):
                raise _invalid(f"range set {i} overlaps with {j}")
    routes_raw = ipam.get("routes") or []
    if not isinstance(routes_raw, list) or not all(isinstance(r, dict) for r in routes_raw):
        raise _invalid("invalid routes", routes_raw)
    try:
        routes = tuple(parse_route(r) for r in routes_raw)
    except CniError as e:
        raise _invalid("invalid route", e.details) from None
    data_dir = ipam.get("dataDir") or DEFAULT_DATA_DIR
    resolv = ipam.get("resolvConf") or ""
    if not isinstance(data_dir, str) or not isinstance(resolv, str):
        raise _invalid("dataDir and resolvConf must be strings")
    return IpamConfig(
        network=name, data_dir=data_dir, range_sets=range_sets, routes=routes,
        resolv_conf=resolv, requested_ips=tuple(_requested_ips(conf, cni_args)),
    )
