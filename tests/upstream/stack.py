"""kdns in front of the two real upstreams: knotd (zone example.test) and the fault-injecting one.

The cache and forward tests ask both through one kdns: names under example.test go to knotd,
the rest to ``FakeUpstream``, whose name labels (``servfail``, ``delay-500``...) pick a fault.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from tests.kdnsproc import KdnsProcess
from tests.upstream.fakeupstream import FakeUpstream
from tests.upstream.kdns import kdns
from tests.upstream.knot import run_knot


@contextmanager
def kdns_over_upstreams(corefile: str, fake: FakeUpstream) -> Iterator[KdnsProcess]:
    """Start knotd, then kdns running ``corefile``, where ``{knot}`` and ``{fake}`` stand for
    the two upstreams' addresses and ``{port}`` for kdns's own."""
    with run_knot() as knot:
        text = corefile.replace("{knot}", knot.addr).replace("{fake}", fake.addr)
        with kdns(text) as k:
            yield k


def uniq(prefix: str) -> str:
    """A fresh name under ``prefix`` (the fault label), so the fake's per-name counts start at 0."""
    return f"{prefix}.u{secrets.token_hex(4)}.example."
