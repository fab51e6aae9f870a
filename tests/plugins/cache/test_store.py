"""Wire-level cache entries: TTL offsets, patched replies, keys, plain-query parsing, capacity."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.plugins.cache.store import (
    Entry,
    Store,
    make_entry,
    make_key,
    name_in_zones,
    parse_simple_query,
    strip_opt,
    ttl_offsets,
)


def upstream_reply(name: str = "www.example.org.", n: int = 3) -> dns.message.Message:
    q = dns.message.make_query(name, "A", want_dnssec=False)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA | dns.flags.AD
    r.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "target.example.org."))
    r.answer.append(dns.rrset.from_text("target.example.org.", 200, "IN", "A",
                                        *[f"192.0.2.{i}" for i in range(1, n + 1)]))
    r.authority.append(dns.rrset.from_text("example.org.", 100, "IN", "NS", "ns.example.org."))
    r.additional.append(dns.rrset.from_text("ns.example.org.", 50, "IN", "A", "192.0.2.53"))
    return r


def entry(msg: dns.message.Message | None = None, ttl: int = 30, now: float = 1000.0) -> Entry:
    return make_entry(msg or upstream_reply(), ttl, now, "success")


def question(name: str, qtype: int = 1) -> bytes:
    """Question bytes as a client spells them."""
    return dns.name.from_text(name).to_wire() + qtype.to_bytes(2, "big") + b"\x00\x01"


def test_offsets_cover_every_record_and_no_opt() -> None:
    e = entry()
    assert len(e.offsets) == 6  # CNAME + 3 A + NS + glue A
    patched = e.render(0x1234, 0x0100, question("www.example.org."), 17, edns=True, do=False)
    m = dns.message.from_wire(patched)
    assert {rr.ttl for rr in [*m.answer, *m.authority, *m.additional]} == {17}
    assert m.edns == 0 and m.payload == 1232


def test_render_uses_the_clients_id_flags_and_spelling() -> None:
    e = entry()
    wire = e.render(0xBEEF, dns.flags.RD | dns.flags.CD, question("WWW.Example.ORG."), 5,
                    edns=False, do=False)
    m = dns.message.from_wire(wire)
    assert m.id == 0xBEEF
    assert m.flags & dns.flags.QR and m.flags & dns.flags.AA
    assert m.flags & dns.flags.RD and m.flags & dns.flags.CD and m.flags & dns.flags.RA
    assert not m.flags & dns.flags.AD  # client set neither DO nor AD
    assert m.edns == -1  # no OPT for a client that sent none
    assert m.question[0].name.to_text() == "WWW.Example.ORG."
    assert m.answer[0].name.to_text() == "WWW.Example.ORG."  # owner compressed to the question
    with_do = dns.message.from_wire(e.render(1, 0, question("www.example.org."), 5, edns=True,
                                             do=True))
    assert with_do.flags & dns.flags.AD and with_do.ednsflags & dns.flags.DO


def test_ttl_countdown_from_stored_time() -> None:
    e = entry(ttl=30, now=1000.0)
    assert e.ttl(1000.0) == 30
    assert e.ttl(1000.9) == 30
    assert e.ttl(1002.1) == 28
    assert e.ttl(1030.0) == 0
    assert e.ttl(1031.5) == -1


def test_body_is_memoised_per_ttl() -> None:
    e = entry()
    b1 = e.body(10)
    assert e.body(10) is b1
    assert e.body(9) != b1


def test_key_folds_case_and_separates_type_class_do_cd() -> None:
    w = dns.name.from_text("ExAmple.org.").to_wire()
    base = make_key(w, 1, 1, False, False)
    assert base == make_key(w.lower(), 1, 1, False, False)
    others = {make_key(w, 28, 1, False, False), make_key(w, 1, 3, False, False),
              make_key(w, 1, 1, True, False), make_key(w, 1, 1, False, True)}
    assert base not in others and len(others) == 4


def test_parse_simple_query() -> None:
    q = dns.message.make_query("A.example.org.", "AAAA", use_edns=0, want_dnssec=True)
    q.flags |= dns.flags.CD
    sq = parse_simple_query(q.to_wire())
    assert sq is not None
    assert (sq.qid, sq.edns, sq.do, sq.max_size) == (q.id, True, True, 1232)
    assert sq.question == dns.name.from_text("A.example.org.").to_wire() + b"\x00\x1c\x00\x01"
    assert sq.key == make_key(sq.name_wire, 28, 1, True, True)
    plain = dns.message.make_query("a.example.org.", "A", use_edns=False)
    assert parse_simple_query(plain.to_wire()).max_size == 512  # type: ignore[union-attr]


def test_parse_simple_query_refuses_anything_unusual() -> None:
    q = dns.message.make_query("a.example.org.", "A", use_edns=0)
    wire = q.to_wire()
    cookie = dns.message.make_query("a.example.org.", "A", use_edns=0,
                                    options=[dns.edns.GenericOption(10, b"12345678")]).to_wire()
    resp = dns.message.make_response(q).to_wire()
    assert parse_simple_query(cookie) is None
    assert parse_simple_query(resp) is None  # QR=1
    assert parse_simple_query(wire + b"\x00") is None  # trailing byte
    assert parse_simple_query(wire[:5] + b"\x02" + wire[6:]) is None  # QDCOUNT 2
    pointer = wire[:12] + b"\xc0\x0c" + wire[-15:]
    assert parse_simple_query(pointer) is None
    assert parse_simple_query(b"\x00" * 11) is None


def test_store_capacity_and_eviction() -> None:
    s = Store(10_000)
    assert s.capacity == 9984
    small = Store(1)  # minimum shard size 4 -> 1024
    assert small.capacity == 1024
    one = entry()
    evicted = sum(small.put(i.to_bytes(4, "big"), one) for i in range(5000))
    assert len(small) <= 1024 and evicted == 5000 - len(small)
    k = (1).to_bytes(4, "big")
    small.put(k, entry())
    n = len(small)
    assert small.put(k, entry()) is False and len(small) == n  # replacing never evicts


def test_name_in_zones() -> None:
    zones = (dns.name.from_text("example.org.").to_wire(),)
    assert name_in_zones(dns.name.from_text("a.b.example.org.").to_wire(), zones)
    assert name_in_zones(dns.name.from_text("example.org.").to_wire(), zones)
    assert not name_in_zones(dns.name.from_text("badexample.org.").to_wire(), zones)
    assert name_in_zones(b"\x01a\x00", (b"\x00",))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b.a", "c"]), st.integers(0, 2**31 - 1)),
                min_size=1, max_size=12),
       st.integers(0, 2**31 - 1))
def test_every_ttl_is_patched(records: list[tuple[str, int]], new_ttl: int) -> None:
    r = dns.message.make_response(dns.message.make_query("a.example.", "TXT"))
    for i, (owner, ttl) in enumerate(records):
        section = [r.answer, r.authority, r.additional][i % 3]
        section.append(dns.rrset.from_text(f"{owner}.example.", ttl, "IN", "TXT", f'"{i}"'))
    e = make_entry(r, 60, 0.0, "success")
    qend, offsets = ttl_offsets(e.wire)
    assert qend == e.qend and len(offsets) == len(records)
    m = dns.message.from_wire(e.render(7, 0, question("A.example.", 16), new_ttl, edns=True,
                                       do=False))
    assert all(rr.ttl == new_ttl for rr in [*m.answer, *m.authority, *m.additional])


def test_entry_from_upstream_bytes_matches_the_rendered_one() -> None:
    msg = upstream_reply()
    msg.use_edns(0, 0, 1232)
    wire = msg.to_wire()
    parsed = dns.message.from_wire(wire)
    raw = make_entry(parsed, 30, 0.0, "success", wire)
    rendered = make_entry(parsed, 30, 0.0, "success")
    assert raw.wire[:2] == b"\x00\x00" and raw.wire.endswith(msg.to_wire()[-30:-11])  # no OPT
    q = question("www.example.org.")
    a = dns.message.from_wire(raw.render(9, 0x100, q, 12, edns=True, do=False))
    b = dns.message.from_wire(rendered.render(9, 0x100, q, 12, edns=True, do=False))
    assert a == b and a.flags == b.flags and a.edns == b.edns
    assert raw.sections(12) == rendered.sections(12)


def test_strip_opt() -> None:
    msg = upstream_reply()
    plain = msg.to_wire()
    assert strip_opt(plain) == b"\x00\x00" + plain[2:]
    msg.use_edns(0, 0, 1232)
    with_opt = msg.to_wire()
    stripped = strip_opt(with_opt)
    assert stripped is not None and len(stripped) == len(with_opt) - 11
    assert dns.message.from_wire(stripped).edns == -1
    # An OPT that is not the last record: not handled here (the caller renders instead).
    glue = dns.name.from_text("x.example.org.").to_wire() + bytes.fromhex("0001000100000005"
                                                                          "0004c0000209")
    moved = with_opt[:10] + (with_opt[10] * 256 + with_opt[11] + 1).to_bytes(2, "big") \
        + with_opt[12:] + glue
    assert dns.message.from_wire(moved).additional
    assert strip_opt(moved) is None
    assert strip_opt(with_opt[:-3]) is None
    assert strip_opt(b"\x00" * 5) is None
