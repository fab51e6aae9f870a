"""acl's metrics, CoreDNS's names and labels (plugin/acl/metrics.go)."""

from __future__ import annotations

from prometheus_client import Counter

BLOCKED = Counter("coredns_acl_blocked_requests_total", "Counter of DNS requests being blocked.",
                  ["server", "zone", "view"])
FILTERED = Counter("coredns_acl_filtered_requests_total",
                   "Counter of DNS requests being filtered.", ["server", "zone", "view"])
ALLOWED = Counter("coredns_acl_allowed_requests_total", "Counter of DNS requests being allowed.",
                  ["server", "view"])
DROPPED = Counter("coredns_acl_dropped_requests_total", "Counter of DNS requests being dropped.",
                  ["server", "zone", "view"])
