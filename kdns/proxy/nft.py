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
        """Names of the chains and sets/maps the table holds now (empty if it does not exist).

        Family-wide terse listings filtered by table: ~0.1 s for 9000 chains, where
        ``list table`` takes seconds because it prints every rule and element.
        """
        items: list[dict[str, Any]] = []
        for what in ("chains", "sets", "maps"):
            rc, out, err = await self._run(["-t", "-j", "list", what, family])
            if rc != 0:
                raise NftError(f"nft list {what} {family} failed: {err.strip()}")
            try:
                items += json.loads(out)["nftables"]
            except (ValueError, KeyError, TypeError) as e:
                raise NftError(f"nft -j list printed unexpected output: {e}") from None
        mine = [(kind, i[kind]) for i in items for kind in ("chain", "set", "map") if kind in i]
        mine = [(kind, obj) for kind, obj in mine if obj.get("table") == table]
        return Existing(
            chains=frozenset(obj["name"] for kind, obj in mine if kind == "chain"),
            sets={obj["name"]: kind for kind, obj in mine if kind != "chain"},
        )

    async def has_table(self, family: str, table: str) -> bool:
        """Whether the table exists (a cheap listing of table names only)."""
        rc, out, err = await self._run(["-j", "list", "tables", family])
        if rc != 0:
            raise NftError(f"nft list tables {family} failed: {err.strip()}")
        try:
            items: list[dict[str, Any]] = json.loads(out)["nftables"]
        except (ValueError, KeyError, TypeError) as e:
            raise NftError(f"nft -j list printed unexpected output: {e}") from None
        return any(i.get("table", {}).get("name") == table for i in items)
