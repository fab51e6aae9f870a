"""kdns: cluster DNS for Kubernetes, a drop-in replacement for CoreDNS."""

from __future__ import annotations

__version__ = "0.1.0"
# What `-version` prints and `coredns_build_info{version}` carries.
VERSION_BANNER = f"kdns-{__version__}"

__all__ = ["VERSION_BANNER", "__version__"]
