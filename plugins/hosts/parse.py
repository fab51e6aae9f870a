"""hosts Corefile syntax -> HostsConfig (pure; the file itself is read later, in start()).

    hosts [FILE [ZONES...]] {
        INLINE-ENTRY...            # ADDRESS NAME... (before fallthrough, as in CoreDNS)
        ttl SECONDS
        no_reverse
        reload DURATION
        fallthrough [ZONES...]
        fallthrough_unsupported
    }

Unlike CoreDNS, an inline line that is not a valid hosts entry is a Corefile error (CoreDNS skips
it silently, which turns a typo such as ``fallthruogh`` into a silent no-op).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from kdns.corefile.address import parse_key
from kdns.corefile.dispenser import Dispenser
from kdns.corefile.lexer import Token
from kdns.errors import CorefileError
from kdns.plugin import Controller

from .table import HostLine, parse_address, parse_line

DEFAULT_PATH: Final = "/etc/hosts"
DEFAULT_TTL: Final = 3600
DEFAULT_RELOAD: Final = 5.0  # seconds
MAX_TTL: Final = 65535


@dataclass(frozen=True, slots=True)
class HostsConfig:
    path: str
    origins: tuple[str, ...]
    ttl: int = DEFAULT_TTL
    reverse: bool = True
    reload: float = DEFAULT_RELOAD  # 0: never re-read the file
    fall: tuple[str, ...] = ()  # empty: never fall through
    fall_unsupported: bool = False
    inline: tuple[HostLine, ...] = ()


def parse(c: Controller) -> HostsConfig:
    d = c.d
    args = d.args()
    path, origins = DEFAULT_PATH, c.zones
    if args:
        if not args[0]:
            raise d.err("hosts file path is empty")
        path = resolve_path(args[0], c.app.corefile_path)
        if args[1:]:
            origins = normalize_zones(d, args[1:])
    ttl, reverse, reload = DEFAULT_TTL, True, DEFAULT_RELOAD
    fall: tuple[str, ...] | None = None
    fall_unsupported: CorefileError | None = None  # the error to raise if fallthrough is missing
    inline: list[HostLine] = []
    for key in d.block():
        match key:
            case "ttl":
                ttl = _ttl(d)
            case "no_reverse":
                d.args(max=0)
                reverse = False
            case "reload":
                reload = _reload(d)
            case "fallthrough":
                zones = d.args()
                fall = normalize_zones(d, zones) if zones else (".",)
            case "fallthrough_unsupported":
                d.args(max=0)
                fall_unsupported = d.err("fallthrough_unsupported requires fallthrough")
            case _:
                if fall is not None or parse_address(key) is None:
                    raise d.unknown_property()
                inline.append(_inline_entry(d, key))
    if fall_unsupported is not None and not fall:
        raise fall_unsupported
    return HostsConfig(path, origins, ttl, reverse, reload, fall or (),
                       fall_unsupported is not None, tuple(inline))


def resolve_path(path: str, corefile_path: str | None) -> str:
    """A relative FILE is taken from the Corefile's directory (CoreDNS: from *root*)."""
    if os.path.isabs(path):
        return path
    base = os.path.dirname(os.path.abspath(corefile_path)) if corefile_path else os.getcwd()
    return os.path.normpath(os.path.join(base, path))


def normalize_zones(d: Dispenser, zones: list[str]) -> tuple[str, ...]:
    """Zone arguments as the block keys are read: lower-case fqdn, CIDRs as reverse zones."""
    out: list[str] = []
    tok = d.token
    for z in zones:
        try:
            addrs = parse_key(Token(z, tok.file, tok.line), 53)
        except CorefileError:
            raise d.err(f"invalid zone '{z}'") from None
        out += [a.zone for a in addrs]
    return tuple(dict.fromkeys(out))


def _ttl(d: Dispenser) -> int:
    vals = d.args()
    if not vals:
        raise d.err("ttl needs a time in second")
    if len(vals) > 1:
        raise d.arg_err()
    try:
        ttl = int(vals[0], 10)
    except ValueError:
        raise d.err("ttl needs a number of second") from None
    if ttl <= 0 or ttl > MAX_TTL:
        raise d.err("ttl provided is invalid")
    return ttl


def _reload(d: Dispenser) -> float:
    vals = d.args()
    if len(vals) != 1:
        raise d.err("reload needs a duration (zero seconds to disable)")
    secs = d.to_duration(vals[0], "duration for reload")
    if secs < 0:
        raise d.err(f"invalid negative duration for reload '{vals[0]}'")
    return secs


def _inline_entry(d: Dispenser, address: str) -> HostLine:
    rest = d.args()
    parsed = parse_line(" ".join([address, *rest]))
    if not isinstance(parsed, HostLine):
        raise d.err(f"invalid hosts entry '{' '.join([address, *rest])}': {parsed}")
    return parsed
