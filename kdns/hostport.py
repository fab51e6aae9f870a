"""``host:port`` for the HTTP side endpoints (health, ready, metrics), checked like Go's
``net.SplitHostPort`` plus a numeric port, so a typo fails at parse time with file:line."""

from __future__ import annotations


def split_host_port(address: str) -> tuple[str, int]:
    """``("", 8080)`` for ``:8080``, ``("::1", 9153)`` for ``[::1]:9153``; ValueError if bad."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or not address[end + 1:].startswith(":"):
            raise ValueError(f"address {address}: missing port in address")
        host, port = address[1:end], address[end + 2:]
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            raise ValueError(f"address {address}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {address}: too many colons in address")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address {address}: invalid port {port!r}")
    return host, int(port)
