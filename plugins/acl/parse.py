"""acl Corefile syntax -> AclConfig (pure), as CoreDNS's plugin/acl/setup.go reads it.

    acl [ZONES...] {
        ACTION [type QTYPE [QTYPE...]] [net SOURCE [SOURCE...]]
    }

ACTION is allow, block, filter or drop. A missing ``type`` or ``net`` section (or ``*``) matches
everything. ``net`` takes CIDRs or plain addresses (IPv4 /32, IPv6 /128), host bits allowed as
Go's net.ParseCIDR allows them.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Final

import dns.rdatatype

from kdns.corefile.address import parse_key
from kdns.corefile.dispenser import Dispenser
from kdns.corefile.lexer import Token
from kdns.errors import CorefileError
from kdns.plugin import Controller

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALL_NETWORKS: Final[tuple[Network, ...]] = (ipaddress.IPv4Network("0.0.0.0/0"),
                                            ipaddress.IPv6Network("::/0"))
_SECTIONS: Final = ("type", "net")


class Action(enum.Enum):
    ALLOW = "allow"
    BLOCK = "block"
    FILTER = "filter"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Policy:
    """One line of the block: ``action`` for queries whose type and source both match."""

    action: Action
    qtypes: frozenset[int] | None  # None: every type
    nets: tuple[Network, ...]  # ALL_NETWORKS when the line does not restrict the source

    @property
    def by_source(self) -> bool:
        """Whether the decision depends on who asks (then answers must not be replayed)."""
        return self.nets != ALL_NETWORKS


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``acl`` directive: its policies apply to names in ``zones``, first match wins."""

    zones: tuple[str, ...]
    policies: tuple[Policy, ...]

    @property
    def by_source(self) -> bool:
        return any(p.by_source for p in self.policies)


def parse(c: Controller) -> Rule:
    d = c.d
    args = d.args()
    zones = _zones(d, args) if args else c.zones
    policies = [_policy(d, key) for key in d.block()]
    return Rule(zones, tuple(policies))


def _zones(d: Dispenser, args: list[str]) -> tuple[str, ...]:
    """ZONES as server block keys are read: lower-case fqdn, CIDRs as reverse zones."""
    out: list[str] = []
    tok = d.token
    for z in args:
        try:
            out += [a.zone for a in parse_key(Token(z, tok.file, tok.line), 53)]
        except CorefileError:
            raise d.err(f"invalid zone '{z}'") from None
    return tuple(dict.fromkeys(out))


def _policy(d: Dispenser, key: str) -> Policy:
    try:
        action = Action(key.lower())
    except ValueError:
        raise d.err(f"unexpected token '{key}'; expect 'allow', 'block', 'filter' or "
                    "'drop'") from None
    rest = d.args()
    qtypes: set[int] | None = None
    nets: list[Network] | None = None
    while rest:
        section = rest[0].lower()
        if section not in _SECTIONS:
            raise d.err(f"unexpected token '{rest[0]}'; expect 'type | net'")
        n = 1
        while n < len(rest) and rest[n].lower() not in _SECTIONS:
            n += 1
        tokens, rest = rest[1:n], rest[n:]
        if not tokens:
            raise d.err(f"no token specified in '{section}' section")
        if section == "type":
            qtypes = _qtypes(d, tokens, qtypes if qtypes is not None else set())
        else:
            nets = _nets(d, tokens, nets if nets is not None else [])
    every_type = qtypes is None or -1 in qtypes
    every_source = nets is None or all(n in nets for n in ALL_NETWORKS)
    return Policy(action, None if every_type else frozenset(qtypes or ()),
                  ALL_NETWORKS if every_source else tuple(dict.fromkeys(nets or ())))


def _qtypes(d: Dispenser, tokens: list[str], out: set[int]) -> set[int]:
    for token in tokens:
        if token == "*":
            out.add(-1)  # every type; later tokens are not read (as CoreDNS)
            break
        out.add(_qtype(d, token))
    return out


def _qtype(d: Dispenser, token: str) -> int:
    """A type mnemonic as miekg/dns's StringToType knows it: upper-case, no TYPEnnn form."""
    bad = d.err(f"unexpected token '{token}'; expect legal QTYPE")
    if token != token.upper() or token.startswith("TYPE"):
        raise bad
    try:
        return int(dns.rdatatype.from_text(token))
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        raise bad from None


def _nets(d: Dispenser, tokens: list[str], out: list[Network]) -> list[Network]:
    for token in tokens:
        if token == "*":
            return out + list(ALL_NETWORKS)  # every source; later tokens are not read (CoreDNS)
        text = token if "/" in token else token + ("/128" if ":" in token else "/32")
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise d.err(f"illegal CIDR notation '{text}'") from None
    return out
