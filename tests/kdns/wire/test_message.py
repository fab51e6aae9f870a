"""kdns.wire.message: the hand parser gives the same Message as dns.message.from_wire."""

from __future__ import annotations

import struct
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.wire.message import opt_rrset, parse_query

LABEL = st.binary(min_size=1, max_size=63)


def same(a: dns.message.Message, b: dns.message.Message) -> None:
    assert (a.id, int(a.flags), type(a.flags)) == (b.id, int(b.flags), type(b.flags))
    assert len(a.question) == len(b.question) == 1
    qa, qb = a.question[0], b.question[0]
    assert qa.name.labels == qb.name.labels  # exact case
    assert (qa.rdtype, qa.rdclass, type(qa.rdtype), type(qa.rdclass)) == (
        qb.rdtype, qb.rdclass, type(qb.rdtype), type(qb.rdclass))
    assert (a.edns, a.ednsflags, a.payload, a.options) == (b.edns, b.ednsflags, b.payload,
                                                          b.options)
    assert not a.answer and not a.authority and not a.additional
    assert a.to_wire() == b.to_wire()


@st.composite
def queries(draw: Any) -> bytes:
    labels = draw(st.lists(LABEL, min_size=0, max_size=6))
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    flags = draw(st.integers(0, 0xFFFF)) & ~0xF800  # QR=0, opcode QUERY
    head = struct.pack("!HHHHHH", draw(st.integers(0, 0xFFFF)), flags, 1, 0, 0,
                       draw(st.integers(0, 1)))
    q = name + struct.pack("!HH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))
    if head[11]:
        ttl = draw(st.integers(0, 0xFF)) << 24 | draw(st.integers(0, 0xFFFF))  # version 0
        q += b"\x00" + struct.pack("!HHIH", 41, draw(st.integers(0, 0xFFFF)), ttl, 0)
    return head + q


@settings(max_examples=1000, deadline=None)
@given(queries())
def test_plain_queries_parse_like_dnspython(wire: bytes) -> None:
    try:
        expected = dns.message.from_wire(wire, one_rr_per_rrset=True)
    except dns.exception.DNSException as e:
        with pytest.raises(type(e)):
            parse_query(wire)
        return
    same(parse_query(wire), expected)


def test_anything_else_goes_to_dnspython() -> None:
    cookie = dns.message.make_query("a.example.", "A", use_edns=0,
                                    options=[dns.edns.GenericOption(10, b"12345678")])
    got = parse_query(cookie.to_wire())
    assert got.options and got.options[0].otype == 10
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets
    wire = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + long_name + b"\x00\x01\x00\x01"
    with pytest.raises(dns.name.NameTooLong):
        parse_query(wire)


def test_opt_rrsets_are_independent_copies() -> None:
    a, b = opt_rrset(0, 1232), opt_rrset(dns.flags.DO, 1232)
    a.ttl |= 0x01000000  # set_rcode writes the extended rcode into the OPT TTL
    assert (a.ttl, b.ttl, opt_rrset(0, 1232).ttl) == (0x01000000, dns.flags.DO, 0)
    m = dns.message.Message()
    m.opt = opt_rrset(dns.flags.DO, 4096)
    assert (m.edns, m.payload, m.ednsflags, m.options) == (0, 4096, dns.flags.DO, ())
