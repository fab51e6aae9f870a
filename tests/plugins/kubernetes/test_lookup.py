"""Pure engine tests: the reference table through Store + Resolver, plus rules the table
cannot show (fallthrough, sync state, options)."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.plugins.kubernetes.lookup import Outcome, Resolver
from tests.plugins.kubernetes.cluster import CASES, Case, check, cluster_objects
from tests.plugins.kubernetes.engine import as_message, config, load_store, resolve


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    cfg = config()
    return Resolver(cfg, load_store(cluster_objects(), cfg=cfg))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reference_table(resolver: Resolver, case: Case) -> None:
    res = resolve(resolver, case.qname, case.qtype)
    check(as_message(res, case.qname, case.qtype), case)


def test_out_of_zone_goes_to_next(resolver: Resolver) -> None:
    assert resolve(resolver, "example.org.", "A").outcome is Outcome.NEXT


_LABELS = ["svc", "pod", "testns", "svc1", "hdls1", "external", "_http", "_tcp", "tcp", "*",
           "dns-version", "ns", "dns", "10-0-0-1", "fd00--1", "in-addr", "arpa", "ip6", "1",
           "0", "10", "172", "a" * 63, "A\\.B", "\\000", "dup-name", "_zone", "pin", "x y"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_LABELS), max_size=8),
       st.sampled_from(["cluster.local.", "in-addr.arpa.", "ip6.arpa.", "CLUSTER.local.", "org."]),
       st.sampled_from([1, 2, 5, 6, 12, 15, 16, 28, 33, 99, 252, 251, 255, 65, 64, 13]))
def test_any_name_and_type_gets_an_answer_without_errors(labels: list[str], zone: str,
                                                         qtype: int) -> None:
    cfg = config(pods="insecure", zonal=True)
    r = _FUZZ.setdefault("r", Resolver(cfg, load_store(cluster_objects(), cfg=cfg)))
    try:
        name = dns.name.from_text(".".join([*labels, zone]) if labels else zone)
    except dns.exception.DNSException:
        return
    res = r.resolve(name, qtype)
    assert res.outcome in (Outcome.REPLY, Outcome.NEXT, Outcome.REFUSED)
    if res.outcome is Outcome.REPLY:
        as_message(res, name.to_text(), dns.rdatatype.to_text(qtype)).to_wire()


_FUZZ: dict[str, Resolver] = {}
