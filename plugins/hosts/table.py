"""hosts data, pure: hosts(5) text -> an immutable table of ready RRsets (no I/O here).

The handler answers with one dict lookup into a ``HostsTable``; a reload builds a new table and
swaps it in with a single attribute assignment, so a query never sees half of a reload. The table
is the hand-off point for the wire fast path (performance.md §5): ``names`` and ``wildcards`` are
plain dicts of finished RRsets and ``generation`` changes on every swap. PTR RRsets are built on
first use and kept (reverse lookups are rare, and a block list maps 100,000 names to 0.0.0.0).

Rules (CoreDNS plugin/hosts, hostsfile.go): ``#`` starts a comment; a line is ``ADDRESS NAME...``;
an IPv6 zone (``%eth0``) is dropped; an IPv4-mapped IPv6 address serves as A (Go's ``To4``);
names are lower-cased and made fully qualified; names outside the plugin's zones are ignored;
``*.`` as the leftmost label matches exactly one label below its parent (never the parent itself)
and makes no PTR. Inline (Corefile) entries replace the file's entries for the same name. A PTR
RRset holds at most MAX_PTR_NAMES names (more could never fit in a reply, even over TCP).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

from kdns.plugin import in_zones

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_PTR_NAMES: Final = 1000
# Plain lower-case host names (the common case) skip dnspython's slower parser; anything else
# (escapes, non-ASCII, a leading hyphen) still goes through it.
_PLAIN_NAME = re.compile(r"(?:(?:\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)\.)+\Z")


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
    ptr_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # reverse fqdn ->
    ttl: int = 3600
    entries: int = 0  # CoreDNS's Len(): forward addresses plus reverse names
    generation: int = 0
    _ptrs: dict[str, dns.rrset.RRset] = field(default_factory=dict, compare=False, repr=False)

    def lookup(self, qname: str) -> NameRecords | None:
        """The records of a lower-case fqdn: the exact name first, then a one-label wildcard."""
        rec = self.names.get(qname)
        if rec is None and self.wildcards:
            _, _, parent = qname.partition(".")
            if parent:
                rec = self.wildcards.get(parent)
        return rec

    def ptr(self, qname: str) -> dns.rrset.RRset | None:
        """The PTR RRset of a lower-case reverse fqdn, built on first use."""
        rrset = self._ptrs.get(qname)
        if rrset is None:
            hosts = self.ptr_names.get(qname)
            if hosts is None:
                return None
            rrset = self._ptrs[qname] = _ptr_rrset(qname, self.ttl, hosts)
        return rrset


_ADDRESSES: dict[str, IPAddress | None] = {}


def parse_address(text: str) -> IPAddress | None:
    """An address as hosts(5) writes it; None when it is not one (block lists repeat a few)."""
    addr = _ADDRESSES.get(text)
    if addr is None:
        addr = _parse_address(text)
        if len(_ADDRESSES) >= 4096:
            _ADDRESSES.clear()
        _ADDRESSES[text] = addr
    return addr


def _parse_address(text: str) -> IPAddress | None:
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
    plain = text.lower()
    if not plain.endswith("."):
        plain += "."
    if len(plain) <= 254 and _PLAIN_NAME.match(plain):
        return plain
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


class _Builder:
    """Shares Name and rdata objects between the RRsets of one table (build cost, memory)."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._names: dict[str, dns.name.Name] = {}
        self._rdatas: dict[IPAddress, dns.rdata.Rdata] = {}
        # Hashing an rdata renders it to wire, every time; a copied dict keeps its hashes.
        self._items: dict[tuple[IPAddress, ...], dict[dns.rdata.Rdata, None]] = {}

    def name(self, text: str) -> dns.name.Name:
        name = self._names.get(text)
        if name is None:
            if "\\" in text:  # escaped labels: let dnspython read them
                name = dns.name.from_text(text)
            else:
                name = dns.name.Name([label.encode() for label in text.split(".")])
            self._names[text] = name
        return name

    def rrset(self, owner: str, rdtype: dns.rdatatype.RdataType,
              addrs: Iterable[IPAddress]) -> dns.rrset.RRset:
        key = tuple(addrs)
        items = self._items.get(key)
        if items is None:
            rdatas = []
            for addr in key:
                rd = self._rdatas.get(addr)
                if rd is None:
                    cls = dns.rdtypes.IN.A.A if addr.version == 4 else dns.rdtypes.IN.AAAA.AAAA
                    rd = self._rdatas[addr] = cls(dns.rdataclass.IN, rdtype, str(addr))
                rdatas.append(rd)
            items = self._items[key] = dict.fromkeys(rdatas)
        rrset = dns.rrset.RRset(self.name(owner), dns.rdataclass.IN, rdtype)
        rrset.update_ttl(self.ttl)
        rrset.items = items.copy()  # unique already: skip add()'s per-record checks
        return rrset


def _ptr_rrset(owner: str, ttl: int, hosts: Iterable[str]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(dns.name.from_text(owner), dns.rdataclass.IN, dns.rdatatype.PTR)
    rrset.update_ttl(ttl)
    for host in hosts:
        rrset.add(dns.rdtypes.ANY.PTR.PTR(dns.rdataclass.IN, dns.rdatatype.PTR,
                                          dns.name.from_text(host)))
    return rrset


def build_table(file_lines: Iterable[HostLine], inline: Sequence[HostLine],
                origins: Sequence[str], ttl: int, reverse: bool,
                generation: int = 0) -> HostsTable:
    """Compile hosts lines into ready RRsets; inline entries replace the file's for a name."""
    col = _Collector(origins, reverse)
    overridden = frozenset(n for line in inline for n in line.names)
    col.add(file_lines, overridden)
    col.add(inline)
    b = _Builder(ttl)
    names: dict[str, NameRecords] = {}
    wildcards: dict[str, NameRecords] = {}
    entries = 0
    for name in dict.fromkeys([*col.v4, *col.v6]):
        v4, v6 = col.v4.get(name, {}), col.v6.get(name, {})
        entries += len(v4) + len(v6)
        wild = name.startswith("*.")
        rec = NameRecords(
            b.rrset(name, dns.rdatatype.A, v4) if v4 else None,
            b.rrset(name, dns.rdatatype.AAAA, v6) if v6 else None,
            wild,
        )
        if wild:
            wildcards[name[2:]] = rec
        else:
            names[name] = rec
    ptr_names: dict[str, tuple[str, ...]] = {}
    for addr, hosts in col.by_addr.items():
        entries += len(hosts)
        ptr_names[addr.reverse_pointer + "."] = tuple(hosts)[:MAX_PTR_NAMES]
    return HostsTable(names, wildcards, ptr_names, ttl, entries, generation)
