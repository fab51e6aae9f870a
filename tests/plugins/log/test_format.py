"""The replacer port (CoreDNS's replacer_test.go tables), duration text, response classes."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from kdns.plugin import Request
from kdns.plugins.log.classify import classify, typify
from kdns.plugins.log.format import (
    LABEL,
    LITERAL,
    METADATA,
    LineData,
    compile_format,
    compile_line,
    render_line,
    seconds_text,
)
from kdns.plugins.log.handler import line_data
from kdns.plugins.log.parse import COMBINED_FORMAT, COMMON_FORMAT
from kdns.wire.render import render

L, B, M = LITERAL, LABEL, METADATA


@pytest.mark.parametrize("fmt,nodes", [
    ("", []),
    ("A", [(L, "A")]),
    ("A {A}", [(L, "A {A}")]),
    ("{{remote}}", [(L, "{"), (B, "{remote}"), (L, "}")]),
    ("{ A {remote} A }", [(L, "{ A "), (B, "{remote}"), (L, " A }")]),
    ("{remote}}", [(B, "{remote}"), (L, "}")]),
    ("{{remote}", [(L, "{"), (B, "{remote}")]),
    ("Foo } {remote}", [(L, "Foo }"), (L, " "), (B, "{remote}")]),
    ("{ Foo", [(L, "{ Foo")]),
    ("} Foo", [(L, "}"), (L, " Foo")]),
    ("A { {remote} {type} {/meta1} } B", [(L, "A { "), (B, "{remote}"), (L, " "),
                                          (B, "{type}"), (L, " "), (M, "meta1"), (L, " }"),
                                          (L, " B")]),
])
def test_compile_format(fmt: str, nodes: list[tuple[int, str]]) -> None:
    assert list(compile_format(fmt)) == nodes


@pytest.mark.parametrize("ns,text", [
    (0, "0s"), (76_310, "0.00007631s"), (1_000_000_000, "1s"), (1_500_000_000, "1.5s"),
    (37_990_251, "0.037990251s"), (1, "0.000000001s"), (120_000_000_000, "120s"),
])
def test_seconds_text_is_go_shortest_fixed(ns: int, text: str) -> None:
    assert seconds_text(ns) == text


def data(**kw: object) -> LineData:
    base: dict[str, object] = dict(
        qtype="A", name="example.org.", qclass="IN", proto="udp", size=29, remote="10.240.0.1",
        port=40212, local="127.0.0.1", id=1053, opcode=0, do=False, bufsize=512,
        rcode="NOERROR", rsize=29, duration_ns=76_310, flags=0x8000 | 0x0100 | 0x0020 | 0x0010)
    base.update(kw)
    return LineData(**base)  # type: ignore[arg-type]


def test_common_and_combined_lines() -> None:
    d = data()
    assert render_line(compile_line(COMMON_FORMAT), d) == (
        '10.240.0.1:40212 - 1053 "A IN example.org. udp 29 false 512" NOERROR qr,rd,ad,cd 29 '
        '0.00007631s')
    assert render_line(compile_line(COMBINED_FORMAT), d).endswith(' 0.00007631s "0"')


@pytest.mark.parametrize("fmt,kw,text", [
    ("{remote} {local}", {"remote": "::1", "local": "fd00::53"}, "[::1] [fd00::53]"),
    ("{local}", {"local": ""}, "-"),
    ("{>rflags}", {"flags": None}, "-"),
    ("{>rflags}", {"flags": 0x87F0}, "qr,aa,tc,rd,ra,z,ad,cd"),
    ("{>rflags}|", {"flags": 0}, "|"),
    ("{>do} {>bufsize} {>opcode}", {"do": True, "bufsize": 65535, "opcode": 4}, "true 65535 4"),
    ("{/log/class} {/other}", {"metadata": {"log/class": "success"}}, "success -"),
    ("{unknown} {>ID}", {}, "{unknown} {>ID}"),
])
def test_placeholders(fmt: str, kw: dict[str, object], text: str) -> None:
    assert render_line(compile_line(fmt), data(**kw)) == text


def reply(rcode: int = 0, qtype: str = "A", answer: str = "", authority: str = "",
          do: bool = False) -> dns.message.Message:
    q = dns.message.make_query("example.org.", qtype, want_dnssec=do)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if answer:
        r.answer.append(dns.rrset.from_text("example.org.", 60, "IN", *answer.split(" ", 1)))
    if authority:
        r.authority.append(dns.rrset.from_text("example.org.", 60, "IN",
                                               *authority.split(" ", 1)))
    return r


SOA = "SOA ns. host. 1 2 3 4 5"


@pytest.mark.parametrize("msg,rtype,cls", [
    (reply(answer="A 10.0.0.1"), "NOERROR", "success"),
    (reply(answer="CNAME other.org."), "NODATA", "denial"),
    (reply(qtype="MX", answer="CNAME other.org."), "NOERROR", "success"),
    (reply(authority=SOA), "NODATA", "denial"),
    (reply(dns.rcode.NXDOMAIN, authority=SOA), "NXDOMAIN", "denial"),
    (reply(dns.rcode.NXDOMAIN), "OTHERERROR", "error"),
    (reply(dns.rcode.SERVFAIL), "SERVERERROR", "error"),
    (reply(dns.rcode.NOTIMP), "SERVERERROR", "error"),
    (reply(dns.rcode.REFUSED), "OTHERERROR", "error"),
    (reply(authority="NS ns1.example.org."), "DELEGATION", "success"),
    (reply(), "NOERROR", "success"),
    (reply(qtype="AXFR"), "META", "error"),
    (None, "OTHERERROR", "error"),
])
def test_typify_and_classify(msg: dns.message.Message | None, rtype: str, cls: str) -> None:
    assert typify(msg) == rtype
    assert classify(rtype) == cls


@pytest.mark.parametrize("proto,payload,bufsize", [
    ("udp", None, 512), ("udp", 4096, 4096), ("udp", 256, 512), ("tcp", 1232, 65535),
])
def test_line_data_bufsize(proto: str, payload: int | None, bufsize: int) -> None:
    q = dns.message.make_query("Example.ORG.", "A", use_edns=payload is not None,
                               payload=payload or 512)
    req = Request(q, ("192.0.2.1", 1234), proto, size=len(q.to_wire()))
    r = req.reply(aa=True)
    wire = render(r, req.max_size)
    d = line_data(req, r, wire, 5, {})
    assert (d.bufsize, d.name, d.rsize, d.size) == (bufsize, "example.org.", len(wire),
                                                     len(q.to_wire()))
    assert d.flags is not None and d.flags & dns.flags.AA
