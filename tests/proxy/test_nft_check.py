"""The kernel accepts what the renderer writes: ``nft -c`` on every golden, and partial syncs
that leave a table identical to a fresh full sync (root; a scratch network namespace)."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdns.proxy import names, transaction
from kdns.proxy.model import FAMILIES, Endpoint, ServicePort
from kdns.proxy.render import RenderConfig, render
from tests.proxy import scenarios as sc
from tests.proxy.netns import sh

pytestmark = pytest.mark.root
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def scratch() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, nftables)")
    name = f"kpx{os.getpid()}{secrets.token_hex(2)}-nft"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def nft(ns: str, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=stdin,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("golden", sorted(p.name for p in GOLDEN.glob("*.nft")))
def test_golden_passes_nft_check(scratch: str, golden: str) -> None:
    nft(scratch, "-c", "-f", str(GOLDEN / golden))


def _listing(ns: str, table: str) -> str:
    # Chain/set order in listings follows creation order; compare sorted lines.
    out = "".join(nft(ns, "list", "table", f, table) for f in FAMILIES)
    return "\n".join(sorted(line.strip() for line in out.splitlines()))


def test_partial_syncs_converge_to_full_sync(scratch: str) -> None:
    steps: list[tuple[ServicePort, ...]] = [(), *sc.SCENARIOS.values(), ()]
    steps.insert(3, tuple(p for s in sc.SCENARIOS.values() for p in s))  # everything at once
    via_partial, via_full = f"kpx-p-{os.getpid()}", f"kpx-f-{os.getpid()}"
    try:
        prev = {f: render([], _cfg(via_partial), f) for f in FAMILIES}
        for f in FAMILIES:
            nft(scratch, "-f", "-", stdin=transaction.full(prev[f]))
        for ports in steps:
            for f in FAMILIES:
                new = render(ports, _cfg(via_partial), f)
                stale = prev[f].chains.keys() - new.chains.keys()
                nft(scratch, "-f", "-", stdin=transaction.partial(prev[f], new) or "\n")
                nft(scratch, "-f", "-", stdin=transaction.partial(new, new, stale) or "\n")
                fresh = render(ports, _cfg(via_full), f)
                nft(scratch, "-f", "-", stdin=transaction.cleanup(f, via_full))
                nft(scratch, "-f", "-", stdin=transaction.full(fresh))
                prev[f] = new
            assert _listing(scratch, via_partial).replace(via_partial, "T") == _listing(
                scratch, via_full).replace(via_full, "T")
    finally:
        for f in FAMILIES:
            for t in (via_partial, via_full):
                nft(scratch, "-f", "-", stdin=transaction.cleanup(f, t))


def _cfg(table: str) -> RenderConfig:
    return dataclasses.replace(sc.CFG, table=table)


def test_longest_names_fit_the_kernel(scratch: str) -> None:
    table = f"kpx-l-{os.getpid()}"
    long = ServicePort("n" * 63, "s" * 63, "p" * 63, "sctp", 1, ("10.96.0.1", "fd00:96::1"),
                       node_port=30001, affinity_timeout=60,
                       endpoints=(Endpoint("fd00:1111:2222:3333:4444:5555:6666:7777", 65535),
                                  Endpoint("10.244.255.255", 65535)))
    try:
        longest = 0
        for f in FAMILIES:
            rs = render([long], _cfg(table), f)
            longest = max(longest, *(len(n) for n in [*rs.chains, *rs.sets]))
            nft(scratch, "-f", "-", stdin=transaction.full(rs))
        assert longest == names.NAME_LENGTH_MAX  # truncated exactly to the kernel's limit
    finally:
        for f in FAMILIES:
            nft(scratch, "-f", "-", stdin=transaction.cleanup(f, table))
