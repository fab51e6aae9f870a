"""coredns_reload_* (plugin/reload/metrics.go)."""

from __future__ import annotations

import prometheus_client

prometheus_client.disable_created_metrics()

FAILED = prometheus_client.Counter(
    "coredns_reload_failed_total",
    "Counter of the number of failed reload attempts.",
)
VERSION_INFO = prometheus_client.Gauge(
    "coredns_reload_version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    ["hash", "value"],
)


def set_version(old: str, new: str) -> None:
    """Replace the series of the previous digest by the new one (only one at a time)."""
    if old:
        try:
            VERSION_INFO.remove("sha512", old)
        except KeyError:
            pass
    VERSION_INFO.labels("sha512", new).set(1)
