"""Building records: cached address rdata, RRset grouping, names from object strings."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

from .names import ip_text

IN: Final = dns.rdataclass.IN
A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA


def target_name(text: str) -> dns.name.Name | None:
    """An ExternalName (or FQDN endpoint) as a name; None when it is not a valid one."""
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException:
        return None


class _HashOnce:
    """Mixin for address rdata whose hash is computed once. dnspython hashes an rdata by
    rendering it to canonical wire form, and an RRset hashes every rdata added to it (twice):
    most of the cost of a large headless answer. Equality is unchanged."""

    __slots__ = ()

    def __hash__(self) -> int:
        cached: int = self._hash  # type: ignore[attr-defined]
        return cached


class _A(_HashOnce, dns.rdtypes.IN.A.A):
    __slots__ = ("_hash",)

    def __init__(self, rdclass: int, rdtype: int, address: str) -> None:
        super().__init__(rdclass, rdtype, address)  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_hash", dns.rdtypes.IN.A.A.__hash__(self))


class _AAAA(_HashOnce, dns.rdtypes.IN.AAAA.AAAA):
    __slots__ = ("_hash",)

    def __init__(self, rdclass: int, rdtype: int, address: str) -> None:
        super().__init__(rdclass, rdtype, address)  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_hash", dns.rdtypes.IN.AAAA.AAAA.__hash__(self))


@lru_cache(maxsize=1 << 16)  # rdata are immutable; building one re-parses the address
def address(qtype: int, ip: str) -> dns.rdata.Rdata:
    if qtype == A:
        return _A(IN, A, ip_text(ip))
    return _AAAA(IN, AAAA, ip_text(ip))


def rrsets(records: Sequence[tuple[dns.name.Name, int, dns.rdata.Rdata]]
            ) -> tuple[dns.rrset.RRset, ...]:
    """Group records into RRsets by (owner, type), keeping first-seen order."""
    sets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
    # Owners are mostly one Name object repeated: look them up by identity first, so a Name
    # (whose hash lower-cases every label) is hashed once per object, not once per record.
    by_id: dict[tuple[int, int], dns.rrset.RRset] = {}
    for name, ttl, rd in records:
        rdtype = rd.rdtype
        rrset = by_id.get((id(name), rdtype))
        if rrset is None:
            key = (name, rdtype)
            rrset = sets.get(key)
            if rrset is None:
                rrset = sets[key] = dns.rrset.RRset(name, IN, rdtype)
            by_id[(id(name), rdtype)] = rrset
        rrset.add(rd, ttl)
    return tuple(sets.values())
