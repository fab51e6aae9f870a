"""any against the real kdns: qtype ANY gets RFC 8482's HINFO, everything else passes on."""

from __future__ import annotations

from collections.abc import Iterator

import dns.flags
import pytest

from tests.kdnsproc import KdnsProcess, dig, rrtext, run_kdns

COREFILE = """\
.:{port} {
    any
    hosts hosts.txt {
        10.0.0.1 www.example.org
        reload 0
    }
}
"""


@pytest.fixture(scope="module")
def kdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    wd = tmp_path_factory.mktemp("any")
    (wd / "hosts.txt").write_text("")
    with run_kdns(COREFILE, workdir=wd) as k:
        yield k


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name", ["www.example.org", "Nope.Example.ORG"])
def test_any_answered_with_hinfo(kdns: KdnsProcess, tcp: bool, name: str) -> None:
    r = kdns.query(name, "ANY", tcp=tcp)
    assert r.rcode() == 0
    assert rrtext(r) == [f'{name}. 8482 HINFO "ANY obsoleted" "See RFC 8482"']
    assert r.question[0].name.to_text() == f"{name}."
    assert not r.flags & dns.flags.AA  # CoreDNS does not set AA on this synthesized answer


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_other_qtypes_pass_on(kdns: KdnsProcess, tcp: bool) -> None:
    r = kdns.query("www.example.org", "A", tcp=tcp)
    assert rrtext(r) == ["www.example.org. 3600 A 10.0.0.1"]
    assert kdns.query("nope.example.org", "A", tcp=tcp).rcode() == 3  # hosts' NXDOMAIN


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dig(kdns: KdnsProcess, tcp: bool) -> None:
    out = dig(kdns.port, *(["+tcp"] if tcp else []), "www.example.org", "ANY")
    assert "status: NOERROR" in out
    assert 'www.example.org.\t8482\tIN\tHINFO\t"ANY obsoleted" "See RFC 8482"' in out
