"""Answer reordering, pure: round_robin shuffle, prefer-subnet ordering, copying helpers.

CoreDNS (plugin/loadbalance/loadbalance.go, prefer.go) works on a flat list of RRs. dnspython
groups records into RRsets, and an RRset must stay whole (the renderer truncates by RRset), so
here records are shuffled inside each RRset and whole RRsets are reordered within their group.
For the usual answer (one owner per type) the result is the same as CoreDNS's.

Nothing here mutates its input: reordered RRsets are new objects, untouched ones are shared.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from collections.abc import Callable, Sequence

import dns.message
import dns.rdata
import dns.rdatatype
import dns.rrset

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Section = list[dns.rrset.RRset]

_A, _AAAA = dns.rdatatype.A, dns.rdatatype.AAAA
_CNAME, _MX = dns.rdatatype.CNAME, dns.rdatatype.MX
_ADDRESS = frozenset({_A, _AAAA})


def copy_message(msg: dns.message.Message) -> dns.message.Message:
    """A copy whose section lists can be replaced without touching ``msg``."""
    out = copy.copy(msg)
    out.sections = [list(s) for s in msg.sections]
    out.index = {}
    return out


def with_rdatas(rrset: dns.rrset.RRset, rdatas: Sequence[dns.rdata.Rdata]) -> dns.rrset.RRset:
    """A copy of ``rrset`` holding the same records in the given order."""
    out: dns.rrset.RRset = rrset.copy()
    out.items = dict.fromkeys(rdatas)  # same records, already unique: skip add()'s checks
    return out


def _shuffled(rrset: dns.rrset.RRset, rng: random.Random) -> dns.rrset.RRset:
    if len(rrset) < 2:
        return rrset
    rdatas = list(rrset)
    rng.shuffle(rdatas)
    return with_rdatas(rrset, rdatas)


def round_robin_section(section: Section, rng: random.Random) -> Section:
    """CNAMEs first, then other types, then A/AAAA (shuffled), then MX (shuffled)."""
    if len(section) == 1:
        only = section[0]
        if only.rdtype in _ADDRESS or only.rdtype == _MX:
            return [_shuffled(only, rng)]
        return section
    cname: Section = []
    rest: Section = []
    address: Section = []
    mx: Section = []
    for rrset in section:
        t = rrset.rdtype
        if t == _CNAME:
            cname.append(rrset)
        elif t in _ADDRESS:
            address.append(_shuffled(rrset, rng))
        elif t == _MX:
            mx.append(_shuffled(rrset, rng))
        else:
            rest.append(rrset)
    rng.shuffle(address)
    rng.shuffle(mx)
    return cname + rest + address + mx


def round_robin(msg: dns.message.Message, rng: random.Random) -> dns.message.Message:
    """Shuffle answer, authority and additional independently (CoreDNS's randomShuffle)."""
    out = copy_message(msg)
    out.answer = round_robin_section(msg.answer, rng)
    out.authority = round_robin_section(msg.authority, rng)
    out.additional = round_robin_section(msg.additional, rng)
    return out


def _rank(rd: dns.rdata.Rdata, nets: Sequence[Network]) -> int:
    """Index of the first preferred subnet holding the address, len(nets) for none."""
    addr = ipaddress.ip_address(rd.address)  # type: ignore[attr-defined]
    for i, net in enumerate(nets):
        if addr in net:
            return i
    return len(nets)


def _preferred(rrset: dns.rrset.RRset, nets: Sequence[Network]) -> tuple[int, dns.rrset.RRset]:
    ranked = sorted(((_rank(rd, nets), i, rd) for i, rd in enumerate(rrset)),
                    key=lambda x: (x[0], x[1]))
    best = ranked[0][0] if ranked else len(nets)
    if all(r[1] == i for i, r in enumerate(ranked)):
        return best, rrset
    return best, with_rdatas(rrset, [r[2] for r in ranked])


def prefer_section(section: Section, nets: Sequence[Network]) -> Section:
    """CNAMEs, then addresses in the order of the prefer list (stable), then MX, then the rest."""
    cname: Section = []
    ranked: list[tuple[int, int, dns.rrset.RRset]] = []
    mx: Section = []
    rest: Section = []
    for i, rrset in enumerate(section):
        t = rrset.rdtype
        if t == _CNAME:
            cname.append(rrset)
        elif t in _ADDRESS:
            best, rr = _preferred(rrset, nets)
            ranked.append((best, i, rr))
        elif t == _MX:
            mx.append(rrset)
        else:
            rest.append(rrset)
    ranked.sort(key=lambda x: (x[0], x[1]))
    return cname + [r[2] for r in ranked] + mx + rest


def prefer(msg: dns.message.Message, nets: Sequence[Network]) -> dns.message.Message:
    """Preferred subnets first in answer and additional (CoreDNS's reorderPreferredSubnets)."""
    out = copy_message(msg)
    out.answer = prefer_section(msg.answer, nets)
    out.additional = prefer_section(msg.additional, nets)
    return out


Reorder = Callable[[dns.message.Message], dns.message.Message]
