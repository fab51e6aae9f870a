"""The ``nft`` binary: atomic transactions through ``nft -f -`` and table listings as JSON.

``prefix`` lets tests run the same commands inside a network namespace
(``("ip", "netns", "exec", NAME)``); in production the proxy runs in the node's namespace.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from kdns.errors import KdnsError
from kdns.proxy.transaction import Existing


class NftError(KdnsError):
    """nft rejected a transaction or could not be run."""


@dataclass(frozen=True, slots=True)
class Nft:
    prefix: tuple[str, ...] = ()
    binary: str = "nft"

    async def _run(self, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix,
                self.binary,
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise NftError(f"cannot run {self.binary}: {e}") from None
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def apply(self, text: str, *, check_only: bool = False) -> None:
        """Runs ``text`` as one transaction: all of it applies or none of it does."""
        rc, _, err = await self._run(["-c", "-f", "-"] if check_only else ["-f", "-"], text)
        if rc != 0:
            raise NftError(f"nft -f failed (rc {rc}): {err.strip()}")

    async def existing(self, family: str, table: str) -> Existing:
        """Names of the chains and sets/maps the table holds now (empty if it does not exist)."""
        rc, out, err = await self._run(["-j", "list", "table", family, table])
        if rc != 0:
            if "No such file or directory" in err:
                return Existing()
            raise NftError(f"nft list table {family} {table} failed: {err.strip()}")
        try:
            items: list[dict[str, Any]] = json.loads(out)["nftables"]
        except (ValueError, KeyError, TypeError) as e:
            raise NftError(f"nft -j list printed unexpected output: {e}") from None
        chains = frozenset(i["chain"]["name"] for i in items if "chain" in i)
        sets = {i[kind]["name"]: kind for i in items for kind in ("set", "map") if kind in i}
        return Existing(chains=chains, sets=sets)
