"""The reference table through the real kdns process, over UDP and TCP, against the fake API
server (the conformance set-up: ``kubernetes cluster.local in-addr.arpa ip6.arpa { endpoint
URL }``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest

from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, dig, run_kdns
from tests.plugins.kubernetes.cluster import CASES, Case, check, cluster_objects

COREFILE = """.:{port} {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %s
    }
}
"""


def wait_answer(k: KdnsProcess, qname: str, rdtype: str = "A", rcode: int = dns.rcode.NOERROR,
                timeout: float = 10.0, **kw: object) -> dns.message.Message:
    """Query until the answer has ``rcode`` (and, for NOERROR, an answer section)."""
    deadline = time.monotonic() + timeout
    while True:
        r = k.query(qname, rdtype, **kw)
        if r.rcode() == rcode and (rcode != dns.rcode.NOERROR or r.answer):
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{qname} {rdtype}: still {r}\n{k.output}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        server.put_many(cluster_objects())
        yield server


@pytest.fixture(scope="module")
def kdns(api: FakeApiServer) -> Iterator[KdnsProcess]:
    with run_kdns(COREFILE % api.url) as k:
        wait_answer(k, "svc1.testns.svc.cluster.local.")
        yield k


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reference_table(kdns: KdnsProcess, case: Case, tcp: bool) -> None:
    r = kdns.query(case.qname, case.qtype, tcp=tcp, use_edns=0, payload=1232)
    check(r, case)
    assert r.flags & dns.flags.AA or case.rcode == "REFUSED"
    assert not r.flags & dns.flags.RA


def test_dig_shows_authoritative_answer(kdns: KdnsProcess) -> None:
    out = dig(kdns.port, "svc1.testns.svc.cluster.local", "A")
    assert "status: NOERROR" in out
    assert "flags: qr aa rd;" in out
    assert "svc1.testns.svc.cluster.local. 5 IN\tA\t10.0.0.1" in out


def test_out_of_zone_without_next_plugin_is_servfail(kdns: KdnsProcess) -> None:
    r = kdns.query("example.org.", "A")
    assert r.rcode() == dns.rcode.SERVFAIL
    assert not r.flags & dns.flags.AA
