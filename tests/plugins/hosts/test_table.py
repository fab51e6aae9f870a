"""hosts table building, pure: hosts text -> ready RRsets."""

from __future__ import annotations

import ipaddress

import dns.rrset
import pytest

from kdns.plugins.hosts.table import (
    HostLine,
    HostsTable,
    build_table,
    parse_address,
    parse_hosts,
    parse_line,
)

HOSTS = """\
# comment line
127.0.0.1 localhost localhost.domain
::1 localhost localhost.domain   # trailing comment
10.0.0.1 example.org
::FFFF:10.0.0.2 example.com
10.0.0.3 Mixed.Example.ORG
fe80::1%eth0 link.example.org
10.0.0.10 *.apps.example.com
10.0.0.11 aa.apps.example.com
10.0.0.1 example.org
"""


def _table(text: str = HOSTS, inline: str = "", origins: tuple[str, ...] = (".",),
           reverse: bool = True) -> HostsTable:
    lines, bad = parse_hosts(text)
    assert bad == []
    inl, bad = parse_hosts(inline)
    assert bad == []
    return build_table(lines, inl, origins, 3600, reverse)


def _ptr(table: HostsTable, name: str) -> dns.rrset.RRset:
    rrset = table.ptr(name)
    assert rrset is not None, name
    return rrset


def _addrs(table: HostsTable, name: str, rdtype: str) -> list[str]:
    rec = table.lookup(name)
    assert rec is not None, name
    rrset = rec.a if rdtype == "A" else rec.aaaa
    return [] if rrset is None else [rd.to_text() for rd in rrset]


@pytest.mark.parametrize("line,want", [
    ("10.0.0.1 a b.c.", HostLine(ipaddress.ip_address("10.0.0.1"), ("a.", "b.c."))),
    ("  ::1\tA.B  # c", HostLine(ipaddress.ip_address("::1"), ("a.b.",))),
    ("::ffff:1.2.3.4 x", HostLine(ipaddress.ip_address("1.2.3.4"), ("x.",))),
    ("", None),
    ("   # only a comment", None),
    ("10.0.0.1", "an address needs at least one name"),
    ("bogus name", "'bogus' is not an IP address"),
    ("010.0.0.1 leading.zero", "'010.0.0.1' is not an IP address"),
    ("10.0.0.1 ok bad..name", "'bad..name' is not a valid host name"),
    ("10.0.0.1 " + "x" * 64, f"'{'x' * 64}' is not a valid host name"),
])
def test_parse_line(line: str, want: object) -> None:
    assert parse_line(line) == want


def test_malformed_lines_are_reported_not_raised() -> None:
    lines, bad = parse_hosts("10.0.0.1 ok\nnot-an-ip x\n\n10.0.0.2\n\xff\xfe garbage\n")
    assert [str(x.address) for x in lines] == ["10.0.0.1"]
    assert [(b.lineno, b.reason) for b in bad] == [
        (2, "'not-an-ip' is not an IP address"),
        (4, "an address needs at least one name"),
        (5, "'\xff\xfe' is not an IP address"),
    ]


def test_parse_address_drops_zone_and_unmaps() -> None:
    assert str(parse_address("fe80::1%eth0")) == "fe80::1"
    assert str(parse_address("::ffff:10.1.2.3")) == "10.1.2.3"
    assert parse_address("1.2.3") is None


def test_forward_records() -> None:
    t = _table()
    assert _addrs(t, "localhost.", "A") == ["127.0.0.1"]
    assert _addrs(t, "localhost.domain.", "AAAA") == ["::1"]
    assert _addrs(t, "example.org.", "A") == ["10.0.0.1"]  # duplicate line collapses
    assert _addrs(t, "example.org.", "AAAA") == []
    assert _addrs(t, "example.com.", "A") == ["10.0.0.2"]  # IPv4-mapped serves as A
    assert _addrs(t, "mixed.example.org.", "A") == ["10.0.0.3"]
    assert _addrs(t, "link.example.org.", "AAAA") == ["fe80::1"]
    rec = t.lookup("example.org.")
    assert rec is not None and rec.a is not None and rec.a.ttl == 3600
    assert t.lookup("nope.example.org.") is None


def test_wildcard_matches_exactly_one_label_and_explicit_names_win() -> None:
    t = _table()
    assert _addrs(t, "x.apps.example.com.", "A") == ["10.0.0.10"]
    rec = t.lookup("x.apps.example.com.")
    assert rec is not None and rec.wildcard
    assert _addrs(t, "aa.apps.example.com.", "A") == ["10.0.0.11"]
    assert t.lookup("apps.example.com.") is None  # the parent itself is not matched
    assert t.lookup("deep.x.apps.example.com.") is None  # only one label


def test_ptr_records() -> None:
    t = _table()
    ptr = t.ptr("1.0.0.127.in-addr.arpa.")
    assert ptr is not None and ptr.ttl == 3600
    assert t.ptr("1.0.0.127.in-addr.arpa.") is ptr  # built once, then kept
    assert [rd.to_text() for rd in ptr] == ["localhost.", "localhost.domain."]
    assert [rd.to_text() for rd in _ptr(t, "1.0.0.10.in-addr.arpa.")] == ["example.org."]
    v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
    assert [rd.to_text() for rd in _ptr(t, v6)] == ["localhost.", "localhost.domain."]
    assert t.ptr("10.0.0.10.in-addr.arpa.") is None  # wildcards make no PTR
    assert _table(reverse=False).ptr_names == {}


def test_entries_count_forward_addresses_and_reverse_names() -> None:
    t = _table("10.0.0.1 a b\n::1 a\n")
    # forward: a(A), b(A), a(AAAA) = 3; reverse: 10.0.0.1 -> a, b; ::1 -> a = 3
    assert t.entries == 6


def test_names_outside_origins_are_ignored() -> None:
    t = _table(origins=("example.org.",))
    assert t.lookup("example.org.") is not None
    assert t.lookup("localhost.") is None
    assert t.ptr("1.0.0.127.in-addr.arpa.") is None


def test_inline_entries_replace_file_entries_for_the_same_name() -> None:
    t = _table("10.0.0.1 over.example.org\n::1 over.example.org\n10.0.0.2 keep.example.org\n",
               inline="10.9.9.9 over.example.org\n")
    assert _addrs(t, "over.example.org.", "A") == ["10.9.9.9"]
    assert _addrs(t, "over.example.org.", "AAAA") == []
    assert _addrs(t, "keep.example.org.", "A") == ["10.0.0.2"]
    assert t.ptr("1.0.0.10.in-addr.arpa.") is None
    assert [rd.to_text() for rd in _ptr(t, "9.9.9.10.in-addr.arpa.")] == ["over.example.org."]


def test_ptr_names_are_capped_but_counted() -> None:
    text = "".join(f"0.0.0.0 ad{i}.example.org\n" for i in range(1500))
    t = _table(text)
    assert len(_ptr(t, "0.0.0.0.in-addr.arpa.")) == 1000
    assert t.entries == 3000  # every forward address and every reverse name still counts
    assert _addrs(t, "ad1499.example.org.", "A") == ["0.0.0.0"]


@pytest.mark.parametrize("name,owner", [
    ("-lead.example.org", "-lead.example.org."),  # dnspython's parser, not the fast regex
    ("a\\.b.example.org", "a\\.b.example.org."),  # an escaped dot inside a label
    ("bücher.example.org", "xn--bcher-kva.example.org."),
])
def test_unusual_names(name: str, owner: str) -> None:
    t = _table(f"10.0.0.1 {name}\n")
    rec = t.lookup(owner)
    assert rec is not None and rec.a is not None
    assert rec.a.name.to_text() == owner
    assert [rd.to_text() for rd in _ptr(t, "1.0.0.10.in-addr.arpa.")] == [owner]
