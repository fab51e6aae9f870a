"""forward's Corefile syntax -> ForwardConfig (CoreDNS plugin/forward/setup.go, parse/host.go).

``forward FROM TO... { except NAMES...; force_tcp; prefer_udp; expire DURATION; max_fails N;
policy random|round_robin|sequential; health_check DURATION [no_rec] [domain FQDN];
max_concurrent N; next RCODE...; failover RCODE...; failfast_all_unhealthy_upstreams;
max_connect_attempts N; read_timeout DURATION; max_idle_conns N; max_age DURATION;
source_address IP }``. A TO that is not an IP address is read as a resolv.conf file, once,
here (CoreDNS reads it at setup too, never per query).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import dns.exception
import dns.name
import dns.rcode

from kdns.corefile.address import parse_key
from kdns.corefile.dispenser import Dispenser
from kdns.corefile.lexer import Token
from kdns.errors import CorefileError

MAX_UPSTREAMS: Final = 15
DEFAULT_EXPIRE: Final = 10.0
DEFAULT_MAX_FAILS: Final = 2
DEFAULT_HC_INTERVAL: Final = 0.5
DEFAULT_READ_TIMEOUT: Final = 2.0
POLICIES: Final = ("random", "round_robin", "sequential")


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int = 53

    @property
    def label(self) -> str:
        """The ``to`` metric label, as CoreDNS prints it: ``10.0.0.2:53``, ``[::1]:53``."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    from_zone: str
    upstreams: tuple[Upstream, ...]
    except_zones: tuple[str, ...] = ()
    force_tcp: bool = False
    prefer_udp: bool = False
    expire: float = DEFAULT_EXPIRE
    max_fails: int = DEFAULT_MAX_FAILS
    hc_interval: float = DEFAULT_HC_INTERVAL
    hc_domain: str = "."
    hc_recursion: bool = True
    policy: str = "random"
    max_concurrent: int = 0
    next_rcodes: frozenset[int] = field(default_factory=frozenset)
    failover_rcodes: frozenset[int] = field(default_factory=frozenset)
    failfast_all_unhealthy: bool = False
    max_connect_attempts: int = 0
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_idle_conns: int = 0  # 0: kdns's safety cap (MAX_POOLED_PER_UPSTREAM in transport.py)
    max_age: float = 0.0  # 0: pooled connections live until idle for ``expire``
    source_address: str = ""


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def parse(d: Dispenser, read_file: Callable[[str], str] = _read_file) -> ForwardConfig:
    """Parse one ``forward`` directive; errors name file:line in CoreDNS's wording."""
    args = d.args(min=2)
    from_zone = _zone(d, args[0])
    upstreams: list[Upstream] = []
    for tok in args[1:]:
        upstreams += _upstreams(d, tok, read_file)
    if len(upstreams) > MAX_UPSTREAMS:
        raise d.err(f"more than {MAX_UPSTREAMS} TOs configured")
    opts: dict[str, object] = {}
    for key in d.block():
        _option(d, key, opts)
    return ForwardConfig(from_zone=from_zone, upstreams=tuple(upstreams), **opts)  # type: ignore[arg-type]


def _option(d: Dispenser, key: str, opts: dict[str, object]) -> None:
    match key:
        case "except":
            names = d.args(min=1)
            opts["except_zones"] = tuple(_zone(d, n) for n in names)
        case "force_tcp" | "prefer_udp" | "failfast_all_unhealthy_upstreams":
            d.args(max=0)
            name = "failfast_all_unhealthy" if key.startswith("failfast") else key
            opts[name] = True
        case "expire":
            (value,) = d.args(min=1, max=1)
            expire = d.to_duration(value, "expire duration")
            if expire < 0:
                raise d.err(f"expire can't be negative: {value}")
            opts["expire"] = expire
        case "max_fails":
            (value,) = d.args(min=1, max=1)
            opts["max_fails"] = d.to_int(value, "max_fails", minimum=0)
        case "health_check":
            _health_check(d, opts)
        case "policy":
            (value,) = d.args(min=1, max=1)
            if value not in POLICIES:
                raise d.err(f"unknown policy '{value}'")
            opts["policy"] = value
        case "max_concurrent":
            (value,) = d.args(min=1, max=1)
            opts["max_concurrent"] = d.to_int(value, "max_concurrent", minimum=0)
        case "max_connect_attempts":
            (value,) = d.args(min=1, max=1)
            opts["max_connect_attempts"] = d.to_int(value, "max_connect_attempts", minimum=0)
        case "next" | "failover":
            codes = frozenset(_rcode(d, v) for v in d.args(min=1))
            opts[f"{key}_rcodes"] = codes
        case "read_timeout" | "max_age":
            (value,) = d.args(min=1, max=1)
            secs = d.to_duration(value, f"{key} duration")
            if secs < 0 or (key == "read_timeout" and secs == 0):
                raise d.err(f"{key} must be positive: {value}")
            opts[key] = secs
        case "max_idle_conns":
            (value,) = d.args(min=1, max=1)
            opts["max_idle_conns"] = d.to_int(value, "max_idle_conns", minimum=0)
        case "source_address":
            (value,) = d.args(min=1, max=1)
            try:
                opts["source_address"] = str(ipaddress.ip_address(value))
            except ValueError:
                raise d.err(f"source_address is not an IP address: {value!r}") from None
        case "tls" | "tls_servername":
            raise d.err(f"'{key}' is not supported by kdns: DNS-over-TLS upstreams are not "
                        "implemented")
        case _:
            raise d.unknown_property()
    if opts.get("force_tcp") and opts.get("prefer_udp"):
        opts["prefer_udp"] = False  # CoreDNS: force_tcp wins


def _health_check(d: Dispenser, opts: dict[str, object]) -> None:
    args = d.args(min=1)
    interval = d.to_duration(args[0], "health_check duration")
    if interval < 0:
        raise d.err(f"health_check can't be negative: {args[0]}")
    opts["hc_interval"] = interval
    rest = args[1:]
    while rest:
        opt = rest.pop(0)
        if opt == "no_rec":
            opts["hc_recursion"] = False
        elif opt == "domain":
            if not rest:
                raise d.err("health_check: 'domain' needs a name")
            opts["hc_domain"] = _zone(d, rest.pop(0))
        else:
            raise d.err(f"health_check: unknown option {opt}")


def _rcode(d: Dispenser, text: str) -> int:
    try:
        return int(dns.rcode.from_text(text.upper()))
    except (dns.rcode.UnknownRcode, ValueError):
        raise d.err(f"{text} is not a valid rcode") from None


def _zone(d: Dispenser, text: str) -> str:
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme != "dns":
            raise d.err(f"unsupported transport '{scheme}' in '{scheme}://{text}'")
    if "/" in text:  # CIDR FROM: only the first expanded zone is used, as CoreDNS
        try:
            return parse_key(Token(text, d.token.file, d.token.line), 53)[0].zone
        except CorefileError as e:
            raise d.err(str(e).split("Error during parsing: ", 1)[-1]) from None
    try:
        return dns.name.from_text(text).to_text().lower()
    except (dns.exception.DNSException, ValueError) as e:
        raise d.err(f"not a valid domain name: {text}: {e}") from None


def _upstreams(d: Dispenser, tok: str, read_file: Callable[[str], str]) -> list[Upstream]:
    text = tok
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme == "tls":
            raise d.err(f"'tls://' upstreams are not supported by kdns: {tok}")
        if scheme != "dns":
            raise d.err(f"unsupported transport '{scheme}' in '{tok}'")
    addr = host_port(text)
    if addr is not None:
        return [addr]
    if tok.startswith("dns://"):
        raise d.err(f"not an IP address: {tok!r}")
    try:
        content = read_file(text)
    except OSError as e:
        raise d.err(f"not an IP address or file {text!r}: {e.strerror or e}") from None
    servers = resolv_conf_nameservers(content)
    if not servers:
        raise d.err(f"no nameservers found in {text!r}")
    return servers


def host_port(text: str, default_port: int = 53) -> Upstream | None:
    """``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or bare IPv6 -> Upstream; None if not an address."""
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            return None
        port = int(port_text)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if not 0 < port < 65536:
        return None
    return Upstream(str(ip), port)


def resolv_conf_nameservers(content: str) -> list[Upstream]:
    """The ``nameserver`` lines of a resolv.conf, port 53; search/options are ignored."""
    out: list[Upstream] = []
    for line in content.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            addr = host_port(fields[1])
            if addr is not None and fields[1].count(":") != 1:
                out.append(Upstream(addr.host, 53))
    return out


__all__ = ["CorefileError", "ForwardConfig", "Upstream", "host_port", "parse",
           "resolv_conf_nameservers"]
