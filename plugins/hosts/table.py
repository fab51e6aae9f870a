"""hosts data, pure: hosts(5) text -> an immutable table of ready RRsets (no I/O here).

The handler answers with one dict lookup into a ``HostsTable``; a reload builds a new table and
swaps it in with a single attribute assignment, so a query never sees half of a reload. The table
is the hand-off point for the wire fast path (performance.md §5): ``names``/``wildcards``/``ptrs``
are plain dicts of finished RRsets and ``generation`` changes on every swap.

Rules (CoreDNS plugin/hosts, hostsfile.go): ``#`` starts a comment; a line is ``ADDRESS NAME...``;
an IPv6 zone (``%eth0``) is dropped; an IPv4-mapped IPv6 address serves as A (Go's ``To4``);
names are lower-cased and made fully qualified; names outside the plugin's zones are ignored;
``*.`` as the leftmost label matches exactly one label below its parent (never the parent itself)
and makes no PTR. Inline (Corefile) entries replace the file's entries for the same name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.reversename
import dns.rrset

from kdns.plugin import in_zones

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class HostLine:
    """One usable hosts line: an address and its (normalized, fully qualified) names."""

    address: IPAddress
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A hosts line that was skipped, kept for one summary log line per reload."""

    lineno: int
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class NameRecords:
    """Everything a name has: its A and AAAA RRsets (either may be None, not both)."""

    a: dns.rrset.RRset | None
    aaaa: dns.rrset.RRset | None
    wildcard: bool = False  # owner is "*.parent": the answer must be re-owned to the qname


@dataclass(frozen=True, slots=True)
class HostsTable:
    """An immutable snapshot; never mutate it or the RRsets in it (they are shared by replies)."""

    names: Mapping[str, NameRecords] = field(default_factory=dict)
    wildcards: Mapping[str, NameRecords] = field(default_factory=dict)  # key: parent fqdn
    ptrs: Mapping[str, dns.rrset.RRset] = field(default_factory=dict)  # key: reverse fqdn
    entries: int = 0  # CoreDNS's Len(): forward addresses plus reverse names
    generation: int = 0

    def lookup(self, qname: str) -> NameRecords | None:
        """The records of a lower-case fqdn: the exact name first, then a one-label wildcard."""
        rec = self.names.get(qname)
        if rec is None and self.wildcards:
            _, _, parent = qname.partition(".")
            if parent:
                rec = self.wildcards.get(parent)
        return rec


def parse_address(text: str) -> IPAddress | None:
    """An address as hosts(5) writes it; None when it is not one."""
    text = text.split("%", 1)[0]  # an IPv6 zone id names an interface, not an address
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def normalize_name(text: str) -> str | None:
    """Lower-case fqdn text of a host name; None when it is not a valid DNS name."""
    try:
        name = dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError, UnicodeError):
        return None
    return name.to_text().lower()


def parse_line(text: str) -> HostLine | str | None:
    """One line: a HostLine, None for blank/comment lines, or the reason it is malformed."""
    fields = text.split("#", 1)[0].split()
    if not fields:
        return None
    if len(fields) < 2:
        return "an address needs at least one name"
    addr = parse_address(fields[0])
    if addr is None:
        return f"'{fields[0]}' is not an IP address"
    names = []
    for f in fields[1:]:
        name = normalize_name(f)
        if name is None:
            return f"'{f}' is not a valid host name"
        names.append(name)
    return HostLine(addr, tuple(names))


def parse_hosts(text: str) -> tuple[list[HostLine], list[Malformed]]:
    """Parse hosts file text; malformed lines are returned separately, never raised."""
    lines: list[HostLine] = []
    bad: list[Malformed] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        parsed = parse_line(raw)
        if isinstance(parsed, HostLine):
            lines.append(parsed)
        elif parsed is not None:
            bad.append(Malformed(lineno, raw.strip()[:200], parsed))
    return lines, bad


class _Collector:
    """Accumulates name -> addresses and address -> names, in first-seen order."""

    def __init__(self, origins: Sequence[str], reverse: bool) -> None:
        self.origins = origins
        self.reverse = reverse
        self.v4: dict[str, dict[IPAddress, None]] = {}
        self.v6: dict[str, dict[IPAddress, None]] = {}
        self.by_addr: dict[IPAddress, dict[str, None]] = {}

    def add(self, lines: Iterable[HostLine], skip: frozenset[str] = frozenset()) -> None:
        for line in lines:
            fam = self.v4 if line.address.version == 4 else self.v6
            for name in line.names:
                if name in skip or in_zones(name, self.origins) is None:
                    continue
                fam.setdefault(name, {})[line.address] = None
                if self.reverse and not name.startswith("*."):
                    self.by_addr.setdefault(line.address, {})[name] = None


def _rrset(owner: str, ttl: int, rdtype: dns.rdatatype.RdataType,
           addrs: Iterable[IPAddress]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(dns.name.from_text(owner), dns.rdataclass.IN, rdtype)
    rrset.update_ttl(ttl)
    for addr in addrs:
        if rdtype == dns.rdatatype.A:
            rrset.add(dns.rdtypes.IN.A.A(dns.rdataclass.IN, rdtype, str(addr)))
        else:
            rrset.add(dns.rdtypes.IN.AAAA.AAAA(dns.rdataclass.IN, rdtype, str(addr)))
    return rrset


def build_table(file_lines: Iterable[HostLine], inline: Sequence[HostLine],
                origins: Sequence[str], ttl: int, reverse: bool,
                generation: int = 0) -> HostsTable:
    """Compile hosts lines into ready RRsets; inline entries replace the file's for a name."""
    col = _Collector(origins, reverse)
    overridden = frozenset(n for line in inline for n in line.names)
    col.add(file_lines, overridden)
    col.add(inline)
    names: dict[str, NameRecords] = {}
    wildcards: dict[str, NameRecords] = {}
    entries = 0
    for name in dict.fromkeys([*col.v4, *col.v6]):
        v4, v6 = col.v4.get(name, {}), col.v6.get(name, {})
        entries += len(v4) + len(v6)
        wild = name.startswith("*.")
        rec = NameRecords(
            _rrset(name, ttl, dns.rdatatype.A, v4) if v4 else None,
            _rrset(name, ttl, dns.rdatatype.AAAA, v6) if v6 else None,
            wild,
        )
        if wild:
            wildcards[name[2:]] = rec
        else:
            names[name] = rec
    ptrs: dict[str, dns.rrset.RRset] = {}
    for addr, hosts in col.by_addr.items():
        owner = dns.reversename.from_address(str(addr))
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.PTR)
        rrset.update_ttl(ttl)
        for host in hosts:
            rrset.add(dns.rdtypes.ANY.PTR.PTR(dns.rdataclass.IN, dns.rdatatype.PTR,
                                              dns.name.from_text(host)))
        ptrs[owner.to_text().lower()] = rrset
        entries += len(hosts)
    return HostsTable(names, wildcards, ptrs, entries, generation)
