"""loadbalance Corefile syntax -> LoadBalanceConfig (pure).

    loadbalance [round_robin | weighted WEIGHTFILE] {
        reload DURATION      # weighted only; default 30s, 0 disables
        prefer CIDR...
    }
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Final

from kdns.corefile.dispenser import Dispenser
from kdns.plugin import Controller

from .reorder import Network

ROUND_ROBIN: Final = "round_robin"
WEIGHTED: Final = "weighted"
DEFAULT_WEIGHT_RELOAD: Final = 30.0  # seconds


@dataclass(frozen=True, slots=True)
class LoadBalanceConfig:
    policy: str = ROUND_ROBIN
    weight_file: str = ""
    reload: float = DEFAULT_WEIGHT_RELOAD
    prefer: tuple[Network, ...] = ()


def parse(c: Controller) -> LoadBalanceConfig:
    d = c.d
    args = d.args()
    policy, weight_file = ROUND_ROBIN, ""
    if args:
        policy = args[0]
        if policy == ROUND_ROBIN:
            if len(args) > 1:
                raise d.err(f"unknown property for {policy}")
        elif policy == WEIGHTED:
            if len(args) < 2:
                raise d.err("missing weight file argument")
            if len(args) > 2:
                raise d.err("unexpected argument(s)")
        else:
            raise d.err(f"unknown policy: {policy}")
    reload = DEFAULT_WEIGHT_RELOAD
    prefer: list[Network] = []
    for key in d.block():
        match key:
            case "reload" if policy == WEIGHTED:
                reload = _reload(d)
            case "prefer":
                cidrs = d.args(min=1)
                prefer += [_cidr(d, x) for x in cidrs]
            case _:
                raise d.unknown_property()
    if policy == WEIGHTED:
        weight_file = _resolve(args[1], c.app.corefile_path)
    return LoadBalanceConfig(policy, weight_file, reload, tuple(prefer))


def _resolve(path: str, corefile_path: str | None) -> str:
    """A relative WEIGHTFILE is taken from the Corefile's directory (CoreDNS: from *root*)."""
    if os.path.isabs(path):
        return path
    base = os.path.dirname(os.path.abspath(corefile_path)) if corefile_path else os.getcwd()
    return os.path.normpath(os.path.join(base, path))


def _reload(d: Dispenser) -> float:
    vals = d.args()
    if not vals:
        raise d.err("reload duration value is missing")
    if len(vals) > 1:
        raise d.err("unexpected argument")
    secs = d.to_duration(vals[0], "reload duration")
    if secs < 0:
        raise d.err(f"invalid reload duration '{vals[0]}'")
    return secs


def _cidr(d: Dispenser, text: str) -> Network:
    if "/" not in text:  # Go's net.ParseCIDR wants a prefix length; so do we
        raise d.err(f'invalid CIDR "{text}": missing prefix length')
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise d.err(f'invalid CIDR "{text}": {e}') from None
