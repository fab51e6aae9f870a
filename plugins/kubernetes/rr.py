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


@lru_cache(maxsize=1 << 16)  # rdata are immutable; building one re-parses the address
def address(qtype: int, ip: str) -> dns.rdata.Rdata:
    if qtype == A:
        return dns.rdtypes.IN.A.A(IN, A, ip_text(ip))
    return dns.rdtypes.IN.AAAA.AAAA(IN, AAAA, ip_text(ip))


def rrsets(records: Sequence[tuple[dns.name.Name, int, dns.rdata.Rdata]]
            ) -> tuple[dns.rrset.RRset, ...]:
    """Group records into RRsets by (owner, type), keeping first-seen order."""
    sets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
    for name, ttl, rd in records:
        key = (name, rd.rdtype)
        rrset = sets.get(key)
        if rrset is None:
            rrset = sets[key] = dns.rrset.RRset(name, IN, rd.rdtype)
        rrset.add(rd, ttl)
    return tuple(sets.values())
