"""``ready [ADDRESS] { monitor until-ready|continuously }``; ADDRESS defaults to ``:8181``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kdns.hostport import split_host_port
from kdns.plugin import Controller

DEFAULT_ADDRESS: Final = ":8181"
MONITOR_MODES: Final = ("until-ready", "continuously")


@dataclass(frozen=True, slots=True)
class ReadyConfig:
    address: str = DEFAULT_ADDRESS
    monitor: str = "until-ready"  # until-ready latches a plugin once it has reported ready


def parse(c: Controller) -> ReadyConfig:
    d = c.d
    args = d.args(max=1)
    address = args[0] if args else DEFAULT_ADDRESS
    try:
        split_host_port(address)
    except ValueError as e:
        raise d.err(str(e)) from None
    monitor = "until-ready"
    for key in d.block():
        if key == "monitor":
            monitor = d.args(min=1, max=1)[0]
            if monitor not in MONITOR_MODES:
                raise d.err(f"monitor must be one of {', '.join(MONITOR_MODES)}: '{monitor}'")
        else:
            raise d.unknown_property()
    return ReadyConfig(address, monitor)
