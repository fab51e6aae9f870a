"""hosts metrics, named and labelled as CoreDNS's plugin/hosts/metrics.go."""

from __future__ import annotations

from prometheus_client import Gauge

# Shared by every hosts instance (and server block): last writer wins per file, as in CoreDNS.
HOSTS_ENTRIES = Gauge(
    "coredns_hosts_entries",
    "The combined number of entries in hosts and Corefile.",
    ["hostsfile"],
)
HOSTS_RELOAD_TIMESTAMP = Gauge(
    "coredns_hosts_reload_timestamp_seconds",
    "The timestamp of the last reload of hosts file.",
    ["hostsfile"],
)
