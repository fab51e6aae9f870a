"""The weighted policy (CoreDNS plugin/loadbalance/weighted.go): weight file parsing and selection.

Weight file::

    # comment
    www.example.com
    100.64.1.1 3
    100.64.1.2 1

For A, AAAA and SRV questions, one address record is picked at random with probability
proportional to its weight (1 when not listed) and moved to the top of the addresses; the other
records keep their order.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections.abc import Mapping
from dataclasses import dataclass

import dns.message
import dns.rdata
import dns.rdatatype

from .reorder import Section, copy_message, with_rdatas

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Weights = Mapping[str, Mapping[IPAddress, int]]  # owner fqdn (lower) -> address -> 1..255

_WEIGHTED_QTYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV})
_ADDRESS = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})


class WeightFileError(ValueError):
    """The weight file has a line that cannot be used."""


def parse_weights(text: str, filename: str) -> Weights:
    """Parse weight file text; raises WeightFileError naming the file and the bad line."""
    domains: dict[str, dict[IPAddress, int]] = {}
    current: dict[IPAddress, int] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"{filename}:{lineno}"
        if len(fields) == 1:
            if _address(fields[0]) is not None:
                raise WeightFileError(f"wrong domain name:\"{fields[0]}\" in weight file {where}."
                                      " (Maybe a missing weight value?)")
            name = fields[0].lower()
            name = name if name.endswith(".") else name + "."
            current = domains.setdefault(name, {})
        elif len(fields) == 2:
            addr = _address(fields[0])
            if addr is None:
                raise WeightFileError(f"wrong IP address:\"{fields[0]}\" in weight file {where}")
            if not fields[1].isdigit() or not 1 <= int(fields[1]) <= 255:
                raise WeightFileError(f"wrong weight value:\"{fields[1]}\" in weight file {where}")
            if current is None:
                raise WeightFileError(f"missing domain name in weight file {where}")
            current[addr] = int(fields[1])
        else:
            raise WeightFileError(f"could not parse weight line:\"{line}\" in weight file {where}")
    return domains


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def digest(data: bytes) -> bytes:
    """Change detection only (CoreDNS uses md5 the same way), not security."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class _Candidate:
    rrset_index: int
    rdata: dns.rdata.Rdata
    weight: int


def _top(address: Section, weights: Weights, rng: random.Random) -> _Candidate | None:
    cands: list[_Candidate] = []
    for i, rrset in enumerate(address):
        ws = weights.get(rrset.name.to_text().lower(), {})
        for rd in rrset:
            addr = ipaddress.ip_address(rd.address)
            cands.append(_Candidate(i, rd, ws.get(addr, 1)))
    if not cands:
        return None
    cands.sort(key=lambda c: -c.weight)  # stable: CoreDNS sorts heaviest first, then draws
    v = rng.randrange(sum(c.weight for c in cands))
    acc = 0
    for c in cands:
        acc += c.weight
        if v < acc:
            return c
    return None  # unreachable: v < the sum of the weights


def weighted_section(section: Section, weights: Weights, rng: random.Random) -> Section:
    """CNAMEs, other types, addresses (the drawn one first), MX: CoreDNS's weightedRoundRobin."""
    cname: Section = []
    rest: Section = []
    address: Section = []
    mx: Section = []
    for rrset in section:
        t = rrset.rdtype
        if t == dns.rdatatype.CNAME:
            cname.append(rrset)
        elif t in _ADDRESS:
            address.append(rrset)
        elif t == dns.rdatatype.MX:
            mx.append(rrset)
        else:
            rest.append(rrset)
    top = _top(address, weights, rng)
    if top is None:
        return section
    chosen = address[top.rrset_index]
    rdatas = list(chosen)
    j = rdatas.index(top.rdata)
    rdatas[0], rdatas[j] = rdatas[j], rdatas[0]  # a swap, as CoreDNS does, not a rotation
    address[top.rrset_index] = address[0]
    address[0] = with_rdatas(chosen, rdatas) if j else chosen
    return cname + rest + address + mx


def weighted(msg: dns.message.Message, weights: Weights, rng: random.Random) -> dns.message.Message:
    if not msg.question or msg.question[0].rdtype not in _WEIGHTED_QTYPES:
        return msg
    out = copy_message(msg)
    out.answer = weighted_section(msg.answer, weights, rng)
    out.additional = weighted_section(msg.additional, weights, rng)
    return out

