"""cache's Corefile syntax -> CacheConfig (CoreDNS plugin/cache/setup.go, defaults as CoreDNS).

``cache [TTL] [ZONES...] { success CAPACITY [TTL] [MINTTL]; denial CAPACITY [TTL] [MINTTL];
prefetch AMOUNT [[DURATION] [PERCENTAGE%]]; serve_stale [DURATION] [immediate|verify];
servfail DURATION; disable success|denial [ZONES...]; keepttl }``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.name

from kdns.corefile.dispenser import Dispenser

DEFAULT_CAPACITY: Final = 10_000
MAX_TTL: Final = 3600  # success cap; CoreDNS's maxTTL
MAX_NTTL: Final = 1800  # denial cap; CoreDNS's maxNTTL (maxTTL / 2)
MIN_TTL: Final = 5  # floor for both; CoreDNS's minTTL / minNTTL
DEFAULT_SERVFAIL_TTL: Final = 5.0
MAX_SERVFAIL_TTL: Final = 300.0
DEFAULT_PREFETCH_DURATION: Final = 60.0
DEFAULT_PREFETCH_PERCENTAGE: Final = 10
DEFAULT_STALE: Final = 3600.0


@dataclass(frozen=True, slots=True)
class CacheConfig:
    zones: tuple[str, ...]
    success_capacity: int = DEFAULT_CAPACITY
    success_ttl: int = MAX_TTL
    success_min_ttl: int = MIN_TTL
    denial_capacity: int = DEFAULT_CAPACITY
    denial_ttl: int = MAX_NTTL
    denial_min_ttl: int = MIN_TTL
    prefetch: int = 0
    prefetch_duration: float = DEFAULT_PREFETCH_DURATION
    prefetch_percentage: int = DEFAULT_PREFETCH_PERCENTAGE
    stale_up_to: float = 0.0  # 0: serve_stale off
    stale_verify: bool = False
    servfail_ttl: float = DEFAULT_SERVFAIL_TTL
    disable_success: tuple[str, ...] = ()
    disable_denial: tuple[str, ...] = ()
    keepttl: bool = False


def parse(d: Dispenser, block_zones: Sequence[str]) -> CacheConfig:
    args = d.args()
    opts: dict[str, object] = {}
    if args and _is_int(args[0]):
        ttl = int(args[0])
        if ttl <= 0:
            raise d.err(f"cache TTL can not be zero or negative: {ttl}")
        opts["success_ttl"] = opts["denial_ttl"] = ttl
        args = args[1:]
    zones = tuple(dict.fromkeys(_zone(d, z) for z in args)) or tuple(block_zones)
    for key in d.block():
        match key:
            case "success" | "denial":
                _capacity(d, key, opts)
            case "prefetch":
                _prefetch(d, opts)
            case "serve_stale":
                _serve_stale(d, opts)
            case "servfail":
                (value,) = d.args(min=1, max=1)
                ttl_f = d.to_duration(value, "servfail duration")
                if ttl_f < 0:
                    raise d.err("invalid negative ttl for servfail")
                if ttl_f > MAX_SERVFAIL_TTL:
                    raise d.err("caching SERVFAIL responses over 5 minutes is not permitted")
                opts["servfail_ttl"] = ttl_f
            case "disable":
                what = d.args(min=1)
                if what[0] not in ("success", "denial"):
                    raise d.err('cache type for disable must be "success" or "denial"')
                names = tuple(_zone(d, z) for z in what[1:]) or zones
                opts[f"disable_{what[0]}"] = names
            case "keepttl":
                d.args(max=0)
                opts["keepttl"] = True
            case _:
                raise d.unknown_property()
    return CacheConfig(zones=zones, **opts)  # type: ignore[arg-type]


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _int(d: Dispenser, text: str) -> int:
    if not _is_int(text):
        raise d.err(f'strconv.Atoi: parsing "{text}": invalid syntax')
    n = int(text)
    if not -(2**63) <= n < 2**63:  # as Go's Atoi: a capacity of 10^23 is not "unbounded"
        raise d.err(f'strconv.Atoi: parsing "{text}": value out of range')
    return n


def _capacity(d: Dispenser, kind: str, opts: dict[str, object]) -> None:
    args = d.args(min=1, max=3)
    cap = _int(d, args[0])
    if cap <= 0:
        raise d.err(f"cache capacity must be positive: {cap}")
    opts[f"{kind}_capacity"] = cap
    if len(args) > 1:
        ttl = _int(d, args[1])
        if ttl <= 0:
            raise d.err(f"cache TTL can not be zero or negative: {ttl}")
        opts[f"{kind}_ttl"] = ttl
    if len(args) > 2:
        min_ttl = _int(d, args[2])
        if min_ttl < 0:
            raise d.err(f"cache min TTL can not be negative: {min_ttl}")
        opts[f"{kind}_min_ttl"] = min_ttl


def _prefetch(d: Dispenser, opts: dict[str, object]) -> None:
    args = d.args(min=1, max=3)
    amount = _int(d, args[0])
    if amount < 0:
        raise d.err(f"prefetch amount should be positive: {amount}")
    opts["prefetch"] = amount
    if len(args) > 1:
        opts["prefetch_duration"] = d.to_duration(args[1], "prefetch duration")
    if len(args) > 2:
        pct = args[2]
        if not pct.endswith("%"):
            raise d.err(f"last character of percentage should be `%`, but is: '{pct[-1]}'")
        num = _int(d, pct[:-1])
        if not 10 <= num <= 90:
            raise d.err(f"percentage should fall in range [10, 90]: {num}")
        opts["prefetch_percentage"] = num


def _serve_stale(d: Dispenser, opts: dict[str, object]) -> None:
    args = d.args(max=2)
    stale = DEFAULT_STALE
    if args:
        stale = d.to_duration(args[0], "serve_stale duration")
        if stale < 0:
            raise d.err("invalid negative duration for serve_stale")
    opts["stale_up_to"] = stale
    if len(args) > 1:
        mode = args[1].lower()
        if mode not in ("immediate", "verify"):
            raise d.err(f"invalid value for serve_stale refresh mode: {mode}")
        opts["stale_verify"] = mode == "verify"


def _zone(d: Dispenser, text: str) -> str:
    try:
        return dns.name.from_text(text).to_text().lower()
    except (dns.exception.DNSException, ValueError) as e:
        raise d.err(f"not a valid domain name: {text}: {e}") from None
