"""Server block keys: ``[SCHEME://]ZONE[:PORT]`` and CIDR keys expanded to reverse zones."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.name
import dns.reversename

from kdns.corefile.lexer import Token
from kdns.errors import CorefileError

SUPPORTED_SCHEMES = ("dns",)
KNOWN_SCHEMES = ("dns", "tls", "quic", "grpc", "https", "https3")


@dataclass(frozen=True, slots=True)
class ZoneAddress:
    scheme: str
    zone: str  # lower-case, fully qualified
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.zone}:{self.port}"


def _err(tok: Token, msg: str) -> CorefileError:
    return CorefileError(f"{tok.file}:{tok.line} - Error during parsing: {msg}")


def parse_key(tok: Token, default_port: int) -> list[ZoneAddress]:
    """Parse one server block key; CIDR keys yield one zone per octet/nibble boundary."""
    text = tok.text
    scheme = "dns"
    if "://" in text:
        scheme, text = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in KNOWN_SCHEMES:
            raise _err(tok, f"unsupported transport '{scheme}' in '{tok.text}'")
        if scheme not in SUPPORTED_SCHEMES:
            raise _err(tok, f"transport '{scheme}://' is not implemented in kdns yet: '{tok.text}'"
                       " (only dns:// is served)")
    zone_text, port = _split_port(tok, text, default_port)
    if "/" in zone_text:
        zones = _cidr_zones(tok, zone_text)
    else:
        zones = [_normalize_zone(tok, zone_text)]
    return [ZoneAddress(scheme, z, port) for z in zones]


def _split_port(tok: Token, text: str, default_port: int) -> tuple[str, int]:
    if "/" in text:  # CIDR: an optional :PORT can only follow the prefix length
        net, _, rest = text.partition("/")
        plen, sep, port_text = rest.partition(":")
        host = f"{net}/{plen}"
        if not sep:
            return host, default_port
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        return text, default_port
    if not port_text:
        raise _err(tok, f"expecting data after last colon: '{tok.text}'")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _err(tok, f"invalid port '{port_text}' in '{tok.text}'")
    return host, int(port_text)


def _normalize_zone(tok: Token, text: str) -> str:
    if not text:
        text = "."
    try:
        name = dns.name.from_text(text)
    except dns.name.NameTooLong:
        raise _err(tok, f"specified zone is too long: {text}") from None
    except (dns.exception.DNSException, ValueError) as e:
        raise _err(tok, f"zone is not a valid domain name: {text}: {e}") from None
    return name.to_text().lower()


def _cidr_zones(tok: Token, text: str) -> list[str]:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _err(tok, f"invalid CIDR zone: '{text}'") from None
    step = 8 if net.version == 4 else 4
    target = -(-net.prefixlen // step) * step
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = (
        [net] if target == net.prefixlen else list(net.subnets(new_prefix=target)))
    zones = []
    for sub in subnets:
        labels = dns.reversename.from_address(str(sub.network_address)).labels
        drop = (sub.max_prefixlen - sub.prefixlen) // step
        zones.append(dns.name.Name(labels[drop:]).to_text().lower())
    return zones
