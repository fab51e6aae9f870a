"""Answer reordering, pure: round_robin shuffle, prefer-subnet ordering, copying helpers.

CoreDNS (plugin/loadbalance/loadbalance.go, prefer.go) works on a flat list of RRs. dnspython
groups records into RRsets, and an RRset must stay whole (the renderer truncates by RRset), so
here records are shuffled inside each RRset and whole RRsets are reordered within their group.
For the usual answer (one owner per type) the result is the same as CoreDNS's.

Nothing here mutates its input: reordered RRsets are new objects, untouched ones are shared.
"""

from __future__ import annotations

import copy as _copy
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
    out = _copy.copy(msg)
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


def reorderable(msg: dns.message.Message) -> bool:
    """True when some section has two or more A/AAAA/MX records, i.e. an order to change."""
    for section in (msg.answer, msg.authority, msg.additional):
        n = 0
        for rrset in section:
            if rrset.rdtype in _ADDRESS or rrset.rdtype == _MX:
                n += len(rrset)
        if n > 1:
            return True
    return False


def round_robin(msg: dns.message.Message, rng: random.Random) -> dns.message.Message:
    """Shuffle answer, authority and additional independently (CoreDNS's randomShuffle)."""
    out = copy_message(msg)
    out.answer = round_robin_section(msg.answer, rng)
    out.authority = round_robin_section(msg.authority, rng)
    out.additional = round_robin_section(msg.additional, rng)
    return out


class PreferOrder:
    """Ranks addresses by a prefer list: the index of the first subnet holding the address, or
    len(nets) for none. Ranks are remembered (parsing an address costs more than the reorder)."""

    MAX_CACHED = 4096

    def __init__(self, nets: Sequence[Network]) -> None:
        self.nets = tuple(nets)
        self._ranks: dict[str, int] = {}

    def rank(self, rd: dns.rdata.Rdata) -> int:
        text: str = rd.address  # type: ignore[attr-defined]
        r = self._ranks.get(text)
        if r is None:
            addr = ipaddress.ip_address(text)
            r = next((i for i, net in enumerate(self.nets) if addr in net), len(self.nets))
            if len(self._ranks) >= self.MAX_CACHED:
                self._ranks.clear()
            self._ranks[text] = r
        return r


def uniform_rank(msg: dns.message.Message, order: PreferOrder) -> bool:
    """True when every address in answer and additional has the same rank: prefer changes
    nothing, so the reply may be replayed rotated like a plain round_robin one."""
    ranks = {order.rank(rd) for section in (msg.answer, msg.additional) for rrset in section
             if rrset.rdtype in _ADDRESS for rd in rrset}
    return len(ranks) <= 1


def _preferred(rrset: dns.rrset.RRset, order: PreferOrder) -> tuple[int, dns.rrset.RRset]:
    rdatas = list(rrset)
    ranks = [order.rank(rd) for rd in rdatas]
    best = min(ranks, default=len(order.nets))
    if ranks == sorted(ranks):
        return best, rrset
    idx = sorted(range(len(rdatas)), key=ranks.__getitem__)  # stable: ties keep their order
    return best, with_rdatas(rrset, [rdatas[i] for i in idx])


def prefer_section(section: Section, order: PreferOrder) -> Section:
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
            best, rr = _preferred(rrset, order)
            ranked.append((best, i, rr))
        elif t == _MX:
            mx.append(rrset)
        else:
            rest.append(rrset)
    ranked.sort(key=lambda x: (x[0], x[1]))
    return cname + [r[2] for r in ranked] + mx + rest


def prefer(msg: dns.message.Message, order: PreferOrder, *,
           copy: bool = True) -> dns.message.Message:
    """Preferred subnets first in answer and additional (CoreDNS's reorderPreferredSubnets).
    ``copy=False`` only for a message the caller built itself (it is then changed in place)."""
    out = copy_message(msg) if copy else msg
    out.answer = prefer_section(msg.answer, order)
    out.additional = prefer_section(msg.additional, order)
    return out


Reorder = Callable[[dns.message.Message], dns.message.Message]
