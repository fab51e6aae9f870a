"""rr: address rdata that hash once and behave like dnspython's; RRset grouping by owner."""

from __future__ import annotations

import pickle

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA

from kdns.plugins.kubernetes.rr import address, rrsets

IN, A, AAAA = dns.rdataclass.IN, dns.rdatatype.A, dns.rdatatype.AAAA


def test_address_rdata_equal_and_hash_like_dnspython() -> None:
    for qtype, ip, cls in ((A, "10.244.1.7", dns.rdtypes.IN.A.A),
                           (AAAA, "fd00::7", dns.rdtypes.IN.AAAA.AAAA)):
        ours, theirs = address(qtype, ip), cls(IN, qtype, ip)
        assert ours == theirs and hash(ours) == hash(theirs)
        assert {theirs: 1}[ours] == 1
        assert pickle.loads(pickle.dumps(ours)) == theirs
        assert ours.to_wire() == theirs.to_wire() and ours.to_text() == theirs.to_text()
        assert ours.replace(address=ip) == theirs


def test_rrsets_group_by_owner_value_and_type_in_first_seen_order() -> None:
    a = dns.name.from_text("hl.demo.svc.cluster.local.")
    a_again = dns.name.from_text("HL.demo.svc.cluster.local.")  # equal, another object
    b = dns.name.from_text("x.demo.svc.cluster.local.")
    records = [(a, 30, address(A, "10.0.0.1")), (b, 30, address(A, "10.0.0.9")),
               (a_again, 30, address(A, "10.0.0.2")), (a, 30, address(AAAA, "fd00::1")),
               (a, 30, address(A, "10.0.0.1"))]  # a duplicate record collapses
    out = rrsets(records)
    assert [(r.name, r.rdtype, [rd.to_text() for rd in r]) for r in out] == [
        (a, A, ["10.0.0.1", "10.0.0.2"]), (b, A, ["10.0.0.9"]), (a, AAAA, ["fd00::1"])]
