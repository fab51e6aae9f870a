"""The CNI_* environment of one plugin invocation, parsed and validated (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from kdns.cni.errors import INVALID_ENV, CniError

COMMANDS: Final = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
# Spec: must start with an alphanumeric, followed by alphanumerics, '_', '.' or '-'.
_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_REQUIRED: Final = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": ("CNI_PATH",),
    "VERSION": (),
    "STATUS": (),
}


@dataclass(frozen=True, slots=True)
class CniEnv:
    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()

    def arg(self, key: str) -> str | None:
        for k, v in self.args:
            if k == key:
                return v
        return None


def parse_cni_args(raw: str) -> tuple[tuple[str, str], ...]:
    """CNI_ARGS is 'K=V;K2=V2'; an empty string means no arguments."""
    pairs: list[tuple[str, str]] = []
    for item in raw.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENV, "invalid CNI_ARGS", f"pair {item!r} is not K=V")
        pairs.append((key, value))
    return tuple(pairs)


def valid_ifname(name: str) -> bool:
    # Linux: at most 15 bytes, not "." or "..", no '/', ':' or whitespace.
    if not name or len(name.encode()) > 15 or name in (".", ".."):
        return False
    return not any(c in "/:" or c.isspace() for c in name)


def parse_env(environ: Mapping[str, str]) -> CniEnv:
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENV, "required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, f"unknown CNI_COMMAND: {command}")
    missing = [k for k in _REQUIRED[command] if not environ.get(k)]
    if missing:
        raise CniError(INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    container_id = environ.get("CNI_CONTAINERID", "")
    if container_id and not _CONTAINER_ID.match(container_id):
        raise CniError(INVALID_ENV, "invalid CNI_CONTAINERID", repr(container_id))
    ifname = environ.get("CNI_IFNAME", "")
    if ifname and not valid_ifname(ifname):
        raise CniError(INVALID_ENV, "invalid CNI_IFNAME", repr(ifname))
    path = tuple(p for p in environ.get("CNI_PATH", "").split(":") if p)
    return CniEnv(
        command=command,
        container_id=container_id,
        netns=environ.get("CNI_NETNS", ""),
        ifname=ifname,
        args=parse_cni_args(environ.get("CNI_ARGS", "")),
        path=path,
    )
