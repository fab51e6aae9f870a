"""Pure name helpers: zone normalisation (CIDRs to reverse zones), reverse names to IPs,
endpoint names (dashed IPs) and pod labels to IPs, exactly as CoreDNS spells them."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Final

REVERSE_SUFFIXES: Final = ("in-addr.arpa.", "ip6.arpa.")


def is_reverse(zone: str) -> bool:
    """True for zones under in-addr.arpa. or ip6.arpa. (lower-case fqdn)."""
    return any(zone == s or zone.endswith("." + s) for s in REVERSE_SUFFIXES)


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def normalize_zone(arg: str) -> list[str]:
    """One zone argument as lower-case fqdn zones; a CIDR becomes its covering reverse zones.

    ``10.96.0.0/16`` -> ``96.10.in-addr.arpa.``; a /20 -> sixteen /24 zones (CoreDNS splits
    on label boundaries: octets for IPv4, nibbles for IPv6). Raises ValueError for a bad CIDR.
    """
    if "/" not in arg:
        return [fqdn(arg.lower())]
    net = ipaddress.ip_network(arg, strict=False)
    step = 8 if net.version == 4 else 4
    prefix = -(-net.prefixlen // step) * step  # round up to a label boundary
    zones = []
    for sub in (net.subnets(new_prefix=prefix) if prefix != net.prefixlen else [net]):
        zones.append(_reverse_zone(sub, prefix // step))
    return zones


def _reverse_zone(net: ipaddress.IPv4Network | ipaddress.IPv6Network, labels: int) -> str:
    if net.version == 4:
        octets = str(net.network_address).split(".")[:labels]
        return ".".join(reversed(octets)) + (".in-addr.arpa." if octets else "in-addr.arpa.")
    nibbles = net.network_address.exploded.replace(":", "")[:labels]
    return ".".join(reversed(nibbles)) + (".ip6.arpa." if nibbles else "ip6.arpa.")


def ip_from_reverse(name: str) -> str | None:
    """The IP of a complete reverse name (lower-case fqdn), in canonical text, else None.

    Only exactly 4 decimal labels under in-addr.arpa. or 32 nibbles under ip6.arpa. qualify
    (CoreDNS dnsutil.ExtractAddressFromReverse); anything else uses the forward grammar.
    """
    if name.endswith(".in-addr.arpa."):
        labels = name[: -len(".in-addr.arpa.")].split(".")
        if len(labels) != 4:
            return None
        try:
            return str(ipaddress.IPv4Address(".".join(reversed(labels))))
        except ValueError:
            return None
    if name.endswith(".ip6.arpa."):
        labels = name[: -len(".ip6.arpa.")].split(".")
        if len(labels) != 32 or any(len(x) != 1 for x in labels):
            return None
        hexes = "".join(reversed(labels))
        try:
            groups = ":".join(hexes[i : i + 4] for i in range(0, 32, 4))
            return str(ipaddress.IPv6Address(groups))
        except ValueError:
            return None
    return None


def dashed_ip(ip: str) -> str:
    """CoreDNS's endpoint name for an address without hostname: ``10-1-2-3``,
    ``2001-db8--1``; an IPv6 result ending in ``-`` gets ``0`` appended (v1.12.3+).
    An address that is neither (an FQDN slice) has no name: ``""``."""
    if "." in ip:
        return ip.replace(".", "-")
    if ":" in ip:
        dashed = ip.replace(":", "-")
        return dashed + "0" if dashed.endswith("-") else dashed
    return ""


def ip_from_pod_label(label: str) -> str | None:
    """A pod label as an IP (CoreDNS findPods): exactly three ``-`` and no ``--`` is IPv4,
    anything else IPv6 (``-`` -> ``:``). Returns the label's own spelling turned into an
    address string (what ``status.podIP`` is compared to), or None when it is no IP."""
    if label.count("-") == 3 and "--" not in label:
        ip = label.replace("-", ".")
    else:
        ip = label.replace("-", ":")
    return ip if parse_ip(ip) is not None else None


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP, near enough: no zone ids, no leading-zero IPv4 octets."""
    if "%" in text or "/" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)  # called per entry per query: parsing is the costly part
def ip_family(text: str) -> int:
    """4 or 6 for an IP literal (IPv4-mapped IPv6 counts as 4, as Go's To4 does), 0 if none."""
    ip = parse_ip(text)
    if ip is None:
        return 0
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return 4
    return ip.version


def ip_text(text: str) -> str:
    """The address as it goes into an A/AAAA record (IPv4-mapped IPv6 becomes IPv4)."""
    ip = parse_ip(text)
    if ip is None:
        return text
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
