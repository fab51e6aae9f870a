"""This node's addresses, for ``--nodeport-addresses`` (NodePorts only on matching IPs)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kdns.proxy.nft import NftError


def select(addresses: Iterable[str], cidrs: Iterable[str]) -> tuple[str, ...]:
    """The addresses inside any of ``cidrs``, loopback excluded, sorted."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    out = set()
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%")[0])
        if not ip.is_loopback and any(ip.version == n.version and ip in n for n in nets):
            out.add(str(ip))
    return tuple(sorted(out, key=lambda s: (":" in s, s)))


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    """Reads the addresses with ``ip -j addr show`` (``prefix`` runs it in a namespace)."""

    prefix: tuple[str, ...] = ()

    async def read(self) -> list[str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix, "ip", "-j", "addr", "show",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise NftError(f"cannot run ip: {e}") from None
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise NftError(f"ip addr show failed: {err.decode(errors='replace').strip()}")
        try:
            links: list[dict[str, Any]] = json.loads(out)
            return [a["local"] for link in links for a in link.get("addr_info", ()) if "local" in a]
        except (ValueError, TypeError, KeyError) as e:
            raise NftError(f"ip -j addr show printed unexpected output: {e}") from None
