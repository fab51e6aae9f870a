"""forward's metrics: CoreDNS's coredns_forward_* and coredns_proxy_* (metrics.md §2.4), plus
kdns_upstream_mismatch_total (reliability.md §5: replies ignored by the anti-spoofing check)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from kdns.metrics import TIME_BUCKETS

HEALTHCHECK_BROKEN = Counter(
    "coredns_forward_healthcheck_broken_total",
    "Counter of the number of complete failures of the healthchecks.")
MAX_CONCURRENT_REJECTS = Counter(
    "coredns_forward_max_concurrent_rejects_total",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.")
REQUEST_DURATION = Histogram(
    "coredns_proxy_request_duration_seconds",
    "Histogram of the time each request took.",
    ["proxy_name", "to", "rcode"], buckets=TIME_BUCKETS)
HEALTHCHECK_FAILURES = Counter(
    "coredns_proxy_healthcheck_failures_total",
    "Counter of the number of failed healthchecks.", ["proxy_name", "to"])
CONN_CACHE_HITS = Counter(
    "coredns_proxy_conn_cache_hits_total",
    "Counter of connection cache hits per upstream and protocol.",
    ["proxy_name", "to", "proto"])
CONN_CACHE_MISSES = Counter(
    "coredns_proxy_conn_cache_misses_total",
    "Counter of connection cache misses per upstream and protocol.",
    ["proxy_name", "to", "proto"])
MISMATCHES = Counter(
    "kdns_upstream_mismatch_total",
    "Datagrams from an upstream socket that were ignored because they did not match the query "
    "(wrong ID, question, flags, or unparsable).", ["to"])
TCP_FALLBACKS = Counter(
    "kdns_upstream_tcp_fallback_total",
    "UDP exchanges finished over TCP because a reply to the same question arrived with a wrong "
    "ID (a spoofing attempt that guessed the source port).", ["to"])
