"""kdns in front of the two real upstreams: knotd (zone example.test) and the fault-injecting one.

The cache and forward tests ask both through one kdns: names under example.test go to knotd,
the rest to ``FakeUpstream``, whose name labels (``servfail``, ``delay-500``...) pick a fault.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

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


def upstream_fixtures(corefile: str) -> tuple[object, object]:
    """Module-scoped fixtures ``fake`` (the FakeUpstream) and ``kd`` (kdns over both upstreams
    running ``corefile``, see ``kdns_over_upstreams``).

    Bind them at module level, ``fake, kd = upstream_fixtures(COREFILE)``: pytest finds
    fixtures among a test module's names.
    """
    @pytest.fixture(scope="module")
    def fake() -> Iterator[FakeUpstream]:
        with FakeUpstream() as u:
            yield u

    @pytest.fixture(scope="module")
    def kd(fake: FakeUpstream) -> Iterator[KdnsProcess]:
        with kdns_over_upstreams(corefile, fake) as k:
            yield k

    return fake, kd


def uniq(prefix: str) -> str:
    """A fresh name under ``prefix`` (the fault label), so the fake's per-name counts start at 0."""
    return f"{prefix}.u{secrets.token_hex(4)}.example."
