"""Cache entries (sections with TTLs, copied per remaining second), keys and capacity."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.plugins.cache.store import Entry, Store, make_entry, make_key


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


def all_ttls(sections: tuple[list[dns.rrset.RRset], ...]) -> set[int]:
    return {rrset.ttl for section in sections for rrset in section}


def test_entry_keeps_every_record_with_the_stored_ttl() -> None:
    msg = upstream_reply()
    e = entry(msg, ttl=30)
    answer, authority, additional = e.sections(30)
    assert [r.to_text() for r in answer] == [r.to_text().replace(f" {r.ttl} ", " 30 ")
                                             for r in msg.answer]
    assert len(authority) == 1 and len(additional) == 1
    assert all_ttls(e.sections(30)) == {30}
    assert (e.flags & dns.flags.RA, e.rcode, e.kind, e.servfail) == (dns.flags.RA, 0,
                                                                     "success", False)


def test_entry_is_not_changed_by_later_changes_to_the_message() -> None:
    msg = upstream_reply()
    e = entry(msg)
    msg.answer[1].ttl = 1
    msg.answer.pop()
    assert len(e.sections(30)[0]) == 2 and all_ttls(e.sections(30)) == {30}


def test_sections_are_copied_once_per_ttl_value() -> None:
    e = entry()
    s10 = e.sections(10)
    assert e.sections(10) is s10
    assert all_ttls(s10) == {10}
    s9 = e.sections(9)
    assert s9 is not s10 and all_ttls(s9) == {9} and all_ttls(s10) == {10}
    assert all_ttls(e.stored_sections) == {30}  # the stored copy never changes


def test_servfail_entries_are_marked() -> None:
    r = dns.message.make_response(dns.message.make_query("x.example.", "A"))
    r.set_rcode(2)
    assert make_entry(r, 5, 0.0, "denial").servfail

def test_ttl_countdown_from_stored_time() -> None:
    e = entry(ttl=30, now=1000.0)
    assert e.ttl(1000.0) == 30
    assert e.ttl(1000.9) == 30
    assert e.ttl(1002.1) == 28
    assert e.ttl(1030.0) == 0
    assert e.ttl(1031.5) == -1


def test_key_folds_case_and_separates_type_class_do_cd() -> None:
    w = dns.name.from_text("ExAmple.org.").to_wire()
    base = make_key(w, 1, 1, False, False)
    assert base == make_key(w.lower(), 1, 1, False, False)
    others = {make_key(w, 28, 1, False, False), make_key(w, 1, 3, False, False),
              make_key(w, 1, 1, True, False), make_key(w, 1, 1, False, True)}
    assert base not in others and len(others) == 4


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


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b.a", "c"]), st.integers(0, 2**31 - 1)),
                min_size=1, max_size=12),
       st.integers(0, 2**31 - 1))
def test_every_ttl_is_set(records: list[tuple[str, int]], new_ttl: int) -> None:
    r = dns.message.make_response(dns.message.make_query("a.example.", "TXT"))
    for i, (owner, ttl) in enumerate(records):
        section = [r.answer, r.authority, r.additional][i % 3]
        section.append(dns.rrset.from_text(f"{owner}.example.", ttl, "IN", "TXT", f'"{i}"'))
    e = make_entry(r, 60, 0.0, "success")
    sections = e.sections(new_ttl)
    assert sum(len(s) for s in sections) == len(records)
    assert all_ttls(sections) == {new_ttl}
