"""Chain order: CoreDNS's plugin.cfg (v1.12/v1.13), never Corefile order.

Every name CoreDNS knows is listed so that a known-but-unimplemented plugin gets a precise error
instead of "Unknown directive". ``BUILTIN`` lists what kdns implements, loaded lazily from
``kdns.plugins.<name>``.
"""

from __future__ import annotations

from typing import Final

ORDER: Final[tuple[str, ...]] = (
    "root", "metadata", "geoip", "cancel", "tls", "quic", "timeouts", "multisocket", "reload",
    "nsid", "bufsize", "bind", "debug", "trace", "ready", "health", "pprof", "prometheus",
    "errors", "log", "dnstap", "local", "dns64", "acl", "any", "chaos", "loadbalance", "tsig",
    "cache", "rewrite", "header", "dnssec", "autopath", "minimal", "template", "transfer",
    "hosts", "route53", "azure", "clouddns", "k8s_external", "kubernetes", "file", "auto",
    "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on", "sign", "view",
    "nomad",
)

BUILTIN: Final[frozenset[str]] = frozenset({
    "acl", "errors", "log", "health", "ready", "prometheus", "reload", "loadbalance", "whoami",
    "hosts", "any", "kubernetes", "cache", "forward", "loop",
})
