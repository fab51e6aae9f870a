"""``health [ADDRESS] { lameduck DURATION }``; ADDRESS defaults to ``:8080``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kdns.hostport import split_host_port
from kdns.plugin import Controller

DEFAULT_ADDRESS: Final = ":8080"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    address: str = DEFAULT_ADDRESS
    lameduck: float = 0.0  # seconds to keep serving after SIGTERM


def parse(c: Controller) -> HealthConfig:
    d = c.d
    args = d.args(max=1)
    address = args[0] if args else DEFAULT_ADDRESS
    try:
        split_host_port(address)
    except ValueError as e:
        raise d.err(str(e)) from None
    lameduck = 0.0
    for key in d.block():
        if key == "lameduck":
            value = d.args(min=1, max=1)[0]
            lameduck = d.to_duration(value, "lameduck duration")
            if lameduck < 0:
                raise d.err(f"unable to parse lameduck duration value: '{value}'")
        else:
            raise d.unknown_property()
    return HealthConfig(address, lameduck)
