"""Stale UDP conntrack entries: which to delete after a sync (pure) and deleting them.

UDP has no connection teardown, so a client that keeps its source port (a resolver talking to
the kube-dns ClusterIP, say) keeps hitting the conntrack entry that DNATs to a backend that is
gone, until the entry times out (30-120 s). kube-proxy deletes those entries after each sync;
so does this module. It also deletes un-NATed entries for a ClusterIP port that just got
endpoints: packets sent while it had none may have created entries that bypass the new DNAT.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kdns.proxy.model import Family
from kdns.proxy.render import Ruleset

log = logging.getLogger("kdns.proxy")
_DELETED = re.compile(r"(\d+) flow entries have been deleted")


@dataclass(frozen=True, slots=True)
class FlowFilter:
    """``conntrack -D`` for UDP entries to (orig_dst or any, orig_dport) answered by reply_src."""

    family: Family
    orig_dst: str | None
    orig_dport: int
    reply_src: str

    def argv(self) -> list[str]:
        args = ["-D", "-f", "ipv4" if self.family == "ip" else "ipv6", "-p", "udp"]
        if self.orig_dst is not None:
            args += ["--orig-dst", self.orig_dst]
        return [*args, "--orig-port-dst", str(self.orig_dport), "--reply-src", self.reply_src]


def stale_flows(old: Ruleset | None, new: Ruleset) -> list[FlowFilter]:
    """Entries to delete once ``new`` is applied in place of ``old``."""
    gone = (old.udp_flows if old else frozenset()) - new.udp_flows
    filters = [FlowFilter(new.family, f.vip, f.port, f.endpoint_ip) for f in gone]
    fresh = new.udp_vips - (old.udp_vips if old else frozenset())
    filters += [FlowFilter(new.family, vip, port, vip) for vip, port in fresh]
    return sorted(filters, key=lambda f: (f.orig_dst or "", f.orig_dport, f.reply_src))


def _parse_udp_listing(text: str) -> set[tuple[str, int, str]]:
    """(orig dst, orig dport, reply src) of each ``conntrack -L`` line."""
    out = set()
    for line in text.splitlines():
        seen: dict[str, str] = {}
        reply_src = None
        for token in line.split():
            key, eq, value = token.partition("=")
            if not eq:
                continue
            if key == "src" and "src" in seen:
                reply_src = value
                break
            seen.setdefault(key, value)
        if reply_src and "dst" in seen and seen.get("dport", "").isdigit():
            try:
                dst, src = ipaddress.ip_address(seen["dst"]), ipaddress.ip_address(reply_src)
            except ValueError:
                continue
            out.add((str(dst), int(seen["dport"]), str(src)))
    return out


@dataclass(frozen=True, slots=True)
class Conntrack:
    prefix: tuple[str, ...] = ()
    binary: str = "conntrack"

    async def delete_stale(self, family: Family, filters: Sequence[FlowFilter]) -> int:
        """Deletes entries matching any filter. One listing first, so filters that match
        nothing (the common case) cost no process spawn each."""
        if not filters:
            return 0
        entries = await self._list_udp(family)
        if entries is None:  # listing failed (logged): try every filter
            wanted = list(filters)
        else:
            by_port_reply = {(port, src) for _, port, src in entries}
            wanted = [
                f for f in filters
                if ((f.orig_dst, f.orig_dport, f.reply_src) in entries if f.orig_dst
                    else (f.orig_dport, f.reply_src) in by_port_reply)
            ]
        deleted = 0
        for f in wanted:
            deleted += await self.delete(f)
        return deleted

    async def _list_udp(self, family: Family) -> set[tuple[str, int, str]] | None:
        args = ["-L", "-f", "ipv4" if family == "ip" else "ipv6", "-p", "udp"]
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix, self.binary, *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            log.error("cannot run %s: %s", self.binary, e)
            return None
        out, err = await proc.communicate()
        if proc.returncode != 0:
            log.error("conntrack %s failed: %s", " ".join(args), err.decode(errors="replace"))
            return None
        return _parse_udp_listing(out.decode(errors="replace"))

    async def delete(self, flow: FlowFilter) -> int:
        """Deletes matching entries; returns how many (0 when none matched). Never raises."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix,
                self.binary,
                *flow.argv(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            log.error("cannot run %s: %s", self.binary, e)
            return 0
        _, err = await proc.communicate()
        text = err.decode(errors="replace")
        # conntrack prints "N flow entries have been deleted." and exits 1 when N is 0.
        deleted = _DELETED.search(text)
        if deleted:
            return int(deleted.group(1))
        if proc.returncode != 0:
            log.error("conntrack %s failed: %s", " ".join(flow.argv()), text.strip())
        return 0
