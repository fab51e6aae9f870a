"""kdns-proxy metrics, with kube-proxy's names where kube-proxy has one (dashboards carry over).

- ``kubeproxy_sync_proxy_rules_duration_seconds``: every sync (full or partial)
- ``kubeproxy_sync_full_proxy_rules_duration_seconds`` / ``..._partial_...``: by kind
- ``kubeproxy_sync_proxy_rules_last_timestamp_seconds``: unix time of the last successful sync
- ``kubeproxy_sync_proxy_rules_nftables_sync_failures_total``: syncs nft refused
- ``kdns_proxy_rules{family}``: rules in the table after the last successful sync
- ``kdns_proxy_chains{family}``: chains in the table (stale chains awaiting deletion excluded)
- ``kdns_proxy_conntrack_deleted_total``: stale UDP conntrack entries deleted
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kdns.metrics import exponential_buckets

_BUCKETS = exponential_buckets(0.001, 2, 15)

SYNC_DURATION = Histogram(
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds (full and partial syncs).",
    buckets=_BUCKETS,
)
FULL_SYNC_DURATION = Histogram(
    "kubeproxy_sync_full_proxy_rules_duration_seconds",
    "Full SyncProxyRules latency in seconds.",
    buckets=_BUCKETS,
)
PARTIAL_SYNC_DURATION = Histogram(
    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    "Partial SyncProxyRules latency in seconds.",
    buckets=_BUCKETS,
)
LAST_SYNC = Gauge(
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "The last time proxy rules were successfully synced (unix seconds).",
)
SYNC_FAILURES = Counter(
    "kubeproxy_sync_proxy_rules_nftables_sync_failures",
    "Number of proxy rules syncs nft refused.",
)
RULES = Gauge("kdns_proxy_rules", "Rules in the proxy's nftables table.", ["family"])
CHAINS = Gauge("kdns_proxy_chains", "Chains in the proxy's nftables table.", ["family"])
CONNTRACK_DELETED = Counter(
    "kdns_proxy_conntrack_deleted", "Stale UDP conntrack entries deleted after syncs."
)
