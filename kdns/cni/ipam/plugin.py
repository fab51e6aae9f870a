"""kdns-ipam commands: ADD, DEL, CHECK, GC and STATUS over the host-local store."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from kdns.cni.errors import (
    ADDRESS_EXHAUSTED,
    ALREADY_ALLOCATED,
    CHECK_FAILED,
    INVALID_CONFIG,
    IO_FAILURE,
    NOT_AVAILABLE,
    CniError,
)
from kdns.cni.ipam.allocator import candidates, range_for
from kdns.cni.ipam.config import IpamConfig, RangeSet
from kdns.cni.ipam.store import Store
from kdns.cni.result import DNS, IPAddress, IPConfig, IPInterface, Result


@dataclass(frozen=True, slots=True)
class Attachment:
    container_id: str
    ifname: str


def _describe(range_set: RangeSet) -> str:
    return ",".join(str(r) for r in range_set)


def _allocate(store: Store, cfg: IpamConfig, idx: int, att: Attachment,
              requested: IPAddress | None) -> IPConfig:
    range_set = cfg.range_sets[idx]
    if requested is not None:
        idx_in_set = range_for(range_set, requested)
        assert idx_in_set is not None  # _assign_requested only hands out contained addresses
        r = range_set[idx_in_set]
        if requested == r.gateway:
            raise CniError(INVALID_CONFIG, f"requested ip {requested} is subnet's gateway")
        if not store.reserve(att.container_id, att.ifname, requested, idx):
            raise CniError(ADDRESS_EXHAUSTED, f"requested IP address {requested} is not available"
                           f" in range set {_describe(range_set)}")
        return IPConfig(address=_with_prefix(requested, r.subnet.prefixlen), gateway=r.gateway)
    for held in store.find(att.container_id, att.ifname):
        if range_for(range_set, held) is not None:
            raise CniError(ALREADY_ALLOCATED, f"{held} has been allocated to {att.container_id}, "
                           "duplicate allocation is not allowed")
    for address, gateway in candidates(range_set, store.last_reserved(idx)):
        if store.reserve(att.container_id, att.ifname, address.ip, idx):
            return IPConfig(address=address, gateway=gateway)
    raise CniError(ADDRESS_EXHAUSTED,
                   f"no IP addresses available in range set: {_describe(range_set)}")


def _with_prefix(ip: IPAddress, prefixlen: int) -> IPInterface:
    return ipaddress.ip_interface(f"{ip}/{prefixlen}")


def _assign_requested(cfg: IpamConfig) -> list[IPAddress | None]:
    """Match each requested IP to the range set that contains it (host-local semantics)."""
    per_set: list[IPAddress | None] = [None] * len(cfg.range_sets)
    left = list(cfg.requested_ips)
    for idx, range_set in enumerate(cfg.range_sets):
        for ip in left:
            if range_for(range_set, ip) is not None:
                per_set[idx] = ip
                left.remove(ip)
                break
    if left:
        raise CniError(INVALID_CONFIG, "failed to allocate all requested IPs: "
                       + ",".join(str(ip) for ip in left))
    return per_set


def add(cfg: IpamConfig, att: Attachment) -> Result:
    per_set = _assign_requested(cfg)
    store = Store(cfg.data_dir, cfg.network)
    ips: list[IPConfig] = []
    with store.locked():
        try:
            for idx in range(len(cfg.range_sets)):
                ips.append(_allocate(store, cfg, idx, att, per_set[idx]))
        except CniError as e:
            for ip in ips:  # all or nothing, as host-local does
                store.release(ip.address.ip)
            raise CniError(e.code, f"failed to allocate for range {len(ips)}: {e.msg}",
                           e.details) from None
    return Result(ips=tuple(ips), routes=cfg.routes, dns=read_resolv_conf(cfg.resolv_conf))


def delete(cfg: IpamConfig, att: Attachment) -> list[IPAddress]:
    store = Store(cfg.data_dir, cfg.network)
    with store.locked():
        return store.release_owner(att.container_id, att.ifname)


def check(cfg: IpamConfig, att: Attachment, prev: Result | None) -> None:
    """Every address of ours in prevResult (or at least one) must still be reserved for us."""
    store = Store(cfg.data_dir, cfg.network)
    with store.locked():
        held = set(store.find(att.container_id, att.ifname))
    if not held:
        raise CniError(CHECK_FAILED, f"failed to find address added by container "
                       f"{att.container_id} ({att.ifname})")
    for ipc in prev.ips if prev else ():
        ours = any(range_for(rs, ipc.address.ip) is not None for rs in cfg.range_sets)
        if ours and ipc.address.ip not in held:
            raise CniError(CHECK_FAILED, f"address {ipc.address.ip} is not reserved for "
                           f"{att.container_id} ({att.ifname})")


def gc(cfg: IpamConfig, valid: set[Attachment]) -> list[IPAddress]:
    """Releases every reservation whose attachment is not in `valid`."""
    store = Store(cfg.data_dir, cfg.network)
    released: list[IPAddress] = []
    with store.locked():
        for a in store.allocations():
            if Attachment(a.container_id, a.ifname) not in valid:
                store.release(a.ip)
                released.append(a.ip)
    return released


def status(cfg: IpamConfig) -> None:
    """Ready when the store is writable and every range set still has a free address."""
    store = Store(cfg.data_dir, cfg.network)
    if not os.access(store.dir, os.W_OK):
        raise CniError(NOT_AVAILABLE, f"IPAM data dir {store.dir} is not writable")
    with store.locked():
        taken = {a.ip for a in store.allocations()}
        for idx, range_set in enumerate(cfg.range_sets):
            if all(a.ip in taken for a, _ in candidates(range_set, None)):
                raise CniError(NOT_AVAILABLE, f"range set {idx} is exhausted",
                               _describe(range_set))


def read_resolv_conf(path: str) -> DNS:
    if not path:
        return DNS()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot read resolvConf {path}", str(e)) from e
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for line in lines:
        fields = line.split("#")[0].split()
        if len(fields) < 2:
            continue
        match fields[0]:
            case "nameserver":
                servers.append(fields[1])
            case "domain":
                domain = fields[1]
            case "search":
                search = fields[1:]
            case "options":
                options += fields[1:]
    return DNS(nameservers=tuple(servers), domain=domain, search=tuple(search),
               options=tuple(options))
