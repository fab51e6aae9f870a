"""Pure engine tests: the reference table through Store + Resolver, plus rules the table
cannot show (fallthrough, sync state, options)."""

from __future__ import annotations

import pytest

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
