"""Which address to try next: host-local's round-robin walk over a range set (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from kdns.cni.ipam.config import RangeSet
from kdns.cni.result import IPAddress, IPInterface


def range_for(range_set: RangeSet, addr: IPAddress) -> int | None:
    for i, r in enumerate(range_set):
        if r.contains(addr):
            return i
    return None


def _start(range_set: RangeSet, last_reserved: IPAddress | None) -> tuple[int, IPAddress]:
    idx = range_for(range_set, last_reserved) if last_reserved is not None else None
    if idx is None or last_reserved is None:
        return 0, range_set[0].range_start
    if last_reserved == range_set[idx].range_end:
        nxt = (idx + 1) % len(range_set)
        return nxt, range_set[nxt].range_start
    return idx, last_reserved + 1


def candidates(
    range_set: RangeSet, last_reserved: IPAddress | None
) -> Iterator[tuple[IPInterface, IPAddress]]:
    """Yields (address/prefix, gateway) in host-local's order, every address at most once.

    The walk starts just after the last reserved address (so a released address is not handed
    out again straight away), wraps across ranges, skips each range's gateway and ends where it
    began. It is lazy: an IPv6 /64 is never materialised.
    """
    start_idx, start = _start(range_set, last_reserved)
    idx, cur = start_idx, start
    while True:
        r = range_set[idx]
        if cur != r.gateway:
            yield ipaddress.ip_interface(f"{cur}/{r.subnet.prefixlen}"), r.gateway
        if cur == r.range_end:
            idx = (idx + 1) % len(range_set)
            cur = range_set[idx].range_start
        else:
            cur = cur + 1
        if idx == start_idx and cur == start:
            return
