"""Reordering, pure: round_robin, prefer and weighted never mutate the message they get."""

from __future__ import annotations

import copy
import ipaddress
import random
from collections import Counter

import dns.message
import dns.rrset
import pytest

from kdns.plugins.loadbalance.reorder import PreferOrder, prefer, round_robin
from kdns.plugins.loadbalance.weights import WeightFileError, parse_weights, weighted
from kdns.wire.render import render


def _msg(*rrsets: dns.rrset.RRset, qtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query("www.example.org", qtype)
    r = dns.message.make_response(q)
    r.answer = list(rrsets)
    return r


def _rr(name: str, rdtype: str, *values: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, 60, "IN", rdtype, *values)


def _flat(section: list[dns.rrset.RRset]) -> list[str]:
    return [f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)} {rd}" for rr in section for rd in rr]


def _snapshot(m: dns.message.Message) -> list[list[str]]:
    return [_flat(s) for s in m.sections]


ADDRS = [f"10.0.0.{i}" for i in range(1, 6)]


def test_round_robin_shuffles_addresses_and_keeps_the_input_intact() -> None:
    m = _msg(_rr("www.example.org.", "A", *ADDRS))
    before = _snapshot(m)
    rrset_before = list(m.answer[0])
    rng = random.Random(1)
    orders = set()
    for _ in range(200):
        out = round_robin(m, rng)
        assert out is not m and out.answer is not m.answer
        got = [rd.to_text() for rd in out.answer[0]]
        assert sorted(got) == ADDRS
        assert out.answer[0].ttl == 60 and out.id == m.id and out.question == m.question
        orders.add(tuple(got))
    assert len(orders) > 50  # 120 permutations exist; a rotation would give only 5
    assert Counter(o[0] for o in orders).keys() == set(ADDRS)
    assert _snapshot(m) == before and list(m.answer[0]) == rrset_before


def test_round_robin_puts_cnames_first_then_others_then_addresses_then_mx() -> None:
    m = _msg(_rr("a.example.org.", "MX", "10 mx1.example.org.", "20 mx2.example.org."),
             _rr("www.example.org.", "A", *ADDRS),
             _rr("www.example.org.", "TXT", '"t"'),
             _rr("alias.example.org.", "CNAME", "www.example.org."))
    rng = random.Random(2)
    mx_orders = set()
    for _ in range(50):
        out = round_robin(m, rng)
        types = [dns.rdatatype.to_text(rr.rdtype) for rr in out.answer]
        assert types == ["CNAME", "TXT", "A", "MX"]
        mx_orders.add(tuple(rd.to_text() for rd in out.answer[3]))
    assert len(mx_orders) == 2


def test_round_robin_shuffles_each_section_and_leaves_other_types_alone() -> None:
    m = _msg(_rr("www.example.org.", "SRV", "0 0 1 a.", "0 0 2 b.", "0 0 3 c."))
    m.additional = [_rr("a.", "A", *ADDRS), _rr("b.", "AAAA", "fd00::1", "fd00::2")]
    rng = random.Random(3)
    firsts = set()
    for _ in range(50):
        out = round_robin(m, rng)
        assert _flat(out.answer) == _flat(m.answer)  # SRV order is kept
        firsts.add(_flat(out.additional)[0])
        assert sorted(_flat(out.additional)) == sorted(_flat(m.additional))
    assert len(firsts) > 2


@pytest.mark.parametrize("nets,want_first", [
    (["192.168.0.0/16"], ["192.168.1.1", "192.168.1.2"]),
    (["10.0.0.3/32", "192.168.0.0/16"], ["10.0.0.3", "192.168.1.1", "192.168.1.2"]),
    (["172.16.0.0/12"], []),
])
def test_prefer_orders_by_the_prefer_list(nets: list[str], want_first: list[str]) -> None:
    m = _msg(_rr("alias.example.org.", "CNAME", "www.example.org."),
             _rr("www.example.org.", "A", "10.0.0.1", "192.168.1.1", "10.0.0.3",
                 "192.168.1.2"))
    before = _snapshot(m)
    out = prefer(m, PreferOrder([ipaddress.ip_network(n) for n in nets]))
    assert _snapshot(m) == before
    assert [dns.rdatatype.to_text(rr.rdtype) for rr in out.answer] == ["CNAME", "A"]
    got = [rd.to_text() for rd in out.answer[1]]
    assert got[:len(want_first)] == want_first
    assert sorted(got) == sorted(["10.0.0.1", "192.168.1.1", "10.0.0.3", "192.168.1.2"])
    if not want_first:
        assert got == ["10.0.0.1", "192.168.1.1", "10.0.0.3", "192.168.1.2"]


def test_prefer_across_address_rrsets() -> None:
    m = _msg(_rr("www.example.org.", "AAAA", "2001:db8::1"),
             _rr("www.example.org.", "A", "10.0.0.1"))
    out = prefer(m, PreferOrder([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::/0")]))
    assert _flat(out.answer) == ["www.example.org. A 10.0.0.1", "www.example.org. AAAA 2001:db8::1"]


WEIGHTS = """\
# comment
www.example.org
10.0.0.1 200
10.0.0.2 1

other.example.org.
fd00::1 3
"""


def test_parse_weights() -> None:
    w = parse_weights(WEIGHTS, "w.txt")
    assert w == {
        "www.example.org.": {ipaddress.ip_address("10.0.0.1"): 200,
                             ipaddress.ip_address("10.0.0.2"): 1},
        "other.example.org.": {ipaddress.ip_address("fd00::1"): 3},
    }


@pytest.mark.parametrize("text,msg", [
    ("10.0.0.1\n", 'wrong domain name:"10.0.0.1" in weight file w:1. (Maybe a missing weight '
     'value?)'),
    ("a.org\nnope 3\n", 'wrong IP address:"nope" in weight file w:2'),
    ("a.org\n10.0.0.1 0\n", 'wrong weight value:"0" in weight file w:2'),
    ("a.org\n10.0.0.1 256\n", 'wrong weight value:"256" in weight file w:2'),
    ("10.0.0.1 3\n", "missing domain name in weight file w:1"),
    ("a.org\n10.0.0.1 3 4\n", 'could not parse weight line:"10.0.0.1 3 4" in weight file w:2'),
])
def test_parse_weights_errors(text: str, msg: str) -> None:
    with pytest.raises(WeightFileError) as e:
        parse_weights(text, "w")
    assert str(e.value) == msg


def test_weighted_moves_a_drawn_address_to_the_top_by_weight() -> None:
    w = parse_weights(WEIGHTS, "w.txt")
    m = _msg(_rr("www.example.org.", "A", "10.0.0.2", "10.0.0.1", "10.0.0.3"))
    before = _snapshot(m)
    rng = random.Random(4)
    tops = Counter(weighted(m, w, rng).answer[0][0].to_text() for _ in range(2020))
    assert _snapshot(m) == before
    # weights 200 : 1 : 1 (10.0.0.3 is not listed: weight 1)
    assert tops["10.0.0.1"] > 1900 and tops["10.0.0.2"] > 3 and tops["10.0.0.3"] > 3
    out = weighted(m, w, random.Random(5))
    assert sorted(rd.to_text() for rd in out.answer[0]) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_weighted_ignores_other_qtypes() -> None:
    m = _msg(_rr("www.example.org.", "MX", "1 a.", "2 b."), qtype="MX")
    assert weighted(m, {}, random.Random(6)) is m


def test_copy_keeps_the_original_message_usable() -> None:
    m = _msg(_rr("www.example.org.", "A", *ADDRS))
    m2 = copy.deepcopy(m)
    out = round_robin(m, random.Random(7))
    out.answer.append(_rr("x.", "A", "1.1.1.1"))
    assert render(m) == render(m2)  # dnspython's own to_wire() shuffles; render() does not


def test_prefer_order_ranks_and_bounded_cache() -> None:
    order = PreferOrder([ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00::/8")])
    rr = _rr("x.", "A", "10.1.2.3", "10.2.0.1")
    assert [order.rank(rd) for rd in rr] == [0, 2]
    assert order.rank(next(iter(_rr("x.", "AAAA", "fd00::5")))) == 1
    for i in range(PreferOrder.MAX_CACHED + 10):
        order.rank(next(iter(_rr("x.", "A", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))))
    assert len(order._ranks) <= PreferOrder.MAX_CACHED
