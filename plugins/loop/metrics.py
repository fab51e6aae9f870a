"""loop's metric: kdns_loop_detected (kdns-only; CoreDNS exits on a loop instead)."""

from __future__ import annotations

from prometheus_client import Gauge

LOOP_DETECTED = Gauge(
    "kdns_loop_detected",
    "1 when the loop plugin saw its probe query come back and disabled forwarding on that path "
    "for this server and zone; 0 otherwise.", ["server", "zone"])
