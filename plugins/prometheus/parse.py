"""``prometheus [ADDRESS] { runtime_metrics }``; ADDRESS defaults to ``localhost:9153``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kdns.hostport import split_host_port
from kdns.plugin import Controller

DEFAULT_ADDRESS: Final = "localhost:9153"


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    address: str = DEFAULT_ADDRESS


def parse(c: Controller) -> PrometheusConfig:
    d = c.d
    args = d.args(max=1)
    address = args[0] if args else DEFAULT_ADDRESS
    try:
        split_host_port(address)
    except ValueError as e:
        raise d.err(str(e)) from None
    for key in d.block():
        if key == "runtime_metrics":
            # process_* and python_* runtime series are always exported; nothing to switch on.
            d.args(max=0)
        elif key == "tls":
            raise d.err("tls is not implemented in kdns; terminate TLS in front of /metrics")
        else:
            raise d.unknown_property()
    return PrometheusConfig(address)
