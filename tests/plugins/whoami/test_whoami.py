from __future__ import annotations

import pytest

from tests.chainbuild import build_error
from tests.kdnsproc import dig, rrtext, run_kdns

COREFILE = ".:{port} {\n    whoami\n}\n"


@pytest.fixture(scope="module")
def kdns():  # type: ignore[no-untyped-def]
    with run_kdns(COREFILE) as k:
        yield k


@pytest.mark.parametrize("tcp", [False, True])
def test_whoami_reports_client_address_and_port(kdns, tcp: bool) -> None:  # type: ignore[no-untyped-def]
    r = kdns.query("example.org", "A", tcp=tcp)
    assert r.rcode() == 0
    assert r.answer == []
    extra = rrtext(r, "additional")
    assert len(extra) == 2
    assert "example.org. 0 A 127.0.0.1" in extra
    proto = "tcp" if tcp else "udp"
    srv = [line for line in extra if "SRV" in line]
    assert srv[0].startswith(f"_{proto}.example.org. 0 SRV 0 0 ")
    assert srv[0].endswith(" .")


def test_whoami_with_dig_echoes_case(kdns) -> None:  # type: ignore[no-untyped-def]
    out = dig(kdns.port, "ExAmPle.ORG", "AAAA")
    assert "status: NOERROR" in out
    assert "ExAmPle.ORG.\t\t0\tIN\tA\t127.0.0.1" in out


@pytest.mark.parametrize("corefile,err", [
    (". {\n whoami extra\n}\n", "Corefile:2 - Error during parsing: Wrong argument count"),
])
def test_whoami_parse_errors(corefile: str, err: str) -> None:
    assert err in build_error(corefile)
