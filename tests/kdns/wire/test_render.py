"""kdns.wire.render against dnspython's Renderer: the same bytes for every message, and the
truncation rule (whole RRsets only, TC when something was left out, OPT always kept)."""

from __future__ import annotations

from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.renderer
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.wire.render import OPT_RR_SIZE, render


def reference(msg: dns.message.Message, max_size: int = 65535) -> bytes:
    """The same rule through dns.renderer (kdns's renderer before it was rewritten for speed)."""
    rcode = msg.rcode()
    flags = (msg.flags & ~0x000F) | (rcode & 0x000F)
    opt_size = OPT_RR_SIZE + sum(4 + len(o.to_wire() or b"") for o in msg.options)
    r = dns.renderer.Renderer(msg.id, flags, max(max_size, 12 + opt_size))
    has_opt = msg.edns >= 0
    if has_opt:
        r.reserve(opt_size)
    truncated = False
    try:
        for rrset in msg.question:
            r.add_question(rrset.name, rrset.rdtype, rrset.rdclass)
        for section, rrsets in ((dns.renderer.ANSWER, msg.answer),
                                (dns.renderer.AUTHORITY, msg.authority),
                                (dns.renderer.ADDITIONAL, msg.additional)):
            for rrset in rrsets:
                r.add_rrset(section, rrset, want_shuffle=False)
    except dns.exception.TooBig:
        truncated = True
    if has_opt:
        r.release_reserved()
        ednsflags = (msg.ednsflags & 0x00FF_FFFF) | ((rcode >> 4) << 24)
        r.add_edns(0, ednsflags & 0xFF00_FFFF, msg.payload, msg.options)
    if truncated:
        r.flags |= dns.flags.TC
    r.write_header()
    wire: bytes = r.get_wire()
    return wire


OWNERS = ["web.demo.svc.cluster.local.", "WeB.Demo.svc.cluster.local.", "cluster.local.",
          "_http._tcp.web.demo.svc.cluster.local.", "10.0.96.10.in-addr.arpa.",
          "x.example.org.", "EXAMPLE.org."]
RECORDS: list[tuple[str, list[str]]] = [
    ("A", ["10.96.0.1", "192.0.2.7", "10.244.1.3"]),
    ("AAAA", ["2001:db8::1", "fd00::a", "::1"]),
    ("CNAME", ["web.demo.svc.cluster.local.", "Target.Example.org."]),
    ("PTR", ["web.demo.svc.cluster.local.", "10-244-1-3.demo.pod.cluster.local."]),
    ("NS", ["ns.dns.cluster.local.", "ns1.example.org."]),
    ("SRV", ["0 100 80 web.demo.svc.cluster.local.", "10 50 443 x.example.org."]),
    ("MX", ["10 mail.example.org.", "20 web.demo.svc.cluster.local."]),
    ("SOA", ["ns.dns.cluster.local. hostmaster.cluster.local. 1765000000 7200 1800 86400 5"]),
    ("TXT", ['"hello world"', '"a" "b"']),
    ("HINFO", ['"ANY obsoleted" "See RFC 8482"']),
    ("CAA", ['0 issue "letsencrypt.org"']),
    ("DNAME", ["example.net."]),
]


@st.composite
def messages(draw: Any) -> dns.message.Message:
    qname = draw(st.sampled_from(OWNERS))
    q = dns.message.make_query(qname, draw(st.sampled_from(["A", "AAAA", "SRV", "TXT", "PTR"])),
                               use_edns=draw(st.sampled_from([False, 0])),
                               want_dnssec=draw(st.booleans()))
    r = dns.message.make_response(q)
    r.id = draw(st.integers(0, 0xFFFF))
    r.set_rcode(draw(st.sampled_from([0, 2, 3, 5, 16 if r.edns >= 0 else 0])))
    if r.edns >= 0 and draw(st.booleans()):
        r.use_edns(0, r.ednsflags, 1232, options=[dns.edns.EDEOption(18, "blocked")])
    for section in (r.answer, r.authority, r.additional):
        for _ in range(draw(st.integers(0, 3))):
            rdtype, texts = draw(st.sampled_from(RECORDS))
            rdatas = draw(st.lists(st.sampled_from(texts), min_size=1, max_size=len(texts),
                                   unique=True))
            owner = draw(st.sampled_from(OWNERS))
            section.append(dns.rrset.from_text(owner, draw(st.integers(0, 2**31 - 1)), "IN",
                                               rdtype, *rdatas))
    return r


@settings(max_examples=600, deadline=None)
@given(messages(), st.sampled_from([12, 100, 200, 300, 512, 1232, 65535]))
def test_same_bytes_as_dnspython(msg: dns.message.Message, max_size: int) -> None:
    assert render(msg, max_size) == reference(msg, max_size)


def test_truncation_keeps_whole_rrsets_and_the_opt() -> None:
    q = dns.message.make_query("big.example.org.", "A", use_edns=0)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("big.example.org.", 30, "IN", "A",
                                        *[f"192.0.2.{i}" for i in range(1, 101)]))
    small = dns.message.from_wire(render(r, 512))
    assert small.flags & dns.flags.TC and not small.answer and small.edns == 0
    full = dns.message.from_wire(render(r, 65535))
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 100


def test_extended_rcode_goes_into_the_opt() -> None:
    q = dns.message.make_query("x.example.org.", "A", use_edns=0)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.BADVERS)
    back = dns.message.from_wire(render(r))
    assert back.rcode() == dns.rcode.BADVERS


def test_relative_names_are_refused() -> None:
    r = dns.message.make_response(dns.message.make_query("x.example.org.", "A"))
    r.answer.append(dns.rrset.from_text(dns.name.from_text("rel", None), 5, "IN", "A",
                                        "192.0.2.1"))
    with pytest.raises(dns.name.NeedAbsoluteNameOrOrigin):
        render(r)
