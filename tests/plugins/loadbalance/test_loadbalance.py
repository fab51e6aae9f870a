"""loadbalance against the real kdns, composed with hosts, over UDP and TCP."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kdnsproc import KdnsProcess, dig, free_port, run_kdns

ADDRS = [f"10.0.0.{i}" for i in range(1, 6)]

HOSTS = "".join(f"{a} www.rr.test\n" for a in ADDRS) + """\
10.0.0.1 www.pref.test
192.168.1.1 www.pref.test
10.1.0.1 www.pref.test
10.0.0.2 www.pref.test
fd00::1 www.pref.test
fd00:1::1 www.pref.test
10.0.0.1 www.w.test
10.0.0.2 www.w.test
10.0.0.3 www.w.test
10.0.0.1 www.plain.test
10.0.0.2 www.plain.test
10.0.0.3 www.plain.test
"""

WEIGHTS = """\
www.w.test
10.0.0.3 255
"""

COREFILE = """\
rr.test:{port} {
    hosts hosts
    loadbalance
}
pref.test:{port} {
    hosts hosts
    loadbalance round_robin {
        prefer 10.1.0.0/16 192.168.0.0/16 fd00:1::/32
    }
}
w.test:{port} {
    hosts hosts
    loadbalance weighted weights {
        reload 0
    }
}
plain.test:{port} {
    hosts hosts
}
"""


@pytest.fixture(scope="module")
def kdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    wd = tmp_path_factory.mktemp("loadbalance")
    (wd / "hosts").write_text(HOSTS)
    (wd / "weights").write_text(WEIGHTS)
    with run_kdns(COREFILE, workdir=wd) as k:
        yield k


def _order(k: KdnsProcess, name: str, qtype: str = "A", tcp: bool = False) -> tuple[str, ...]:
    r = k.query(name, qtype, tcp=tcp)
    assert r.rcode() == 0
    return tuple(rd.to_text() for rrset in r.answer for rd in rrset)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_round_robin_order_varies(kdns: KdnsProcess, tcp: bool) -> None:
    orders = [_order(kdns, "www.rr.test", tcp=tcp) for _ in range(30)]
    assert all(sorted(o) == ADDRS for o in orders)
    assert len(set(orders)) > 3
    assert len({o[0] for o in orders}) > 2  # the first address changes, not only the tail


def test_without_loadbalance_order_is_stable(kdns: KdnsProcess) -> None:
    orders = {_order(kdns, "www.plain.test") for _ in range(10)}
    assert orders == {("10.0.0.1", "10.0.0.2", "10.0.0.3")}


def test_round_robin_with_dig(kdns: KdnsProcess) -> None:
    firsts = set()
    for i in range(12):
        out = dig(kdns.port, *(["+tcp"] if i % 2 else []), "+short", "www.rr.test", "A")
        lines = out.split()
        assert sorted(lines) == ADDRS
        firsts.add(lines[0])
    assert len(firsts) > 1


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_prefer_puts_preferred_subnets_first_in_prefer_order(kdns: KdnsProcess,
                                                             tcp: bool) -> None:
    rest = set()
    for _ in range(15):
        order = _order(kdns, "www.pref.test", tcp=tcp)
        assert order[:2] == ("10.1.0.1", "192.168.1.1")
        rest.add(order[2:])
        v6 = _order(kdns, "www.pref.test", "AAAA", tcp=tcp)
        assert v6 == ("fd00:1::1", "fd00::1")
    assert {frozenset(r) for r in rest} == {frozenset({"10.0.0.1", "10.0.0.2"})}
    assert len(rest) == 2  # the non-preferred tail is still shuffled


def test_weighted_moves_heavy_address_to_top(kdns: KdnsProcess) -> None:
    tops = Counter(_order(kdns, "www.w.test")[0] for _ in range(40))
    # 10.0.0.3 weighs 255, the others 1 each: P(top) = 255/257
    assert tops["10.0.0.3"] >= 34, tops


def test_weighted_missing_file_without_reload_fails_startup(tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(". {\n    loadbalance weighted nope.txt {\n        reload 0\n    }\n"
                        "    whoami\n}\n")
    out = subprocess.run([sys.executable, "-m", "kdns", "-conf", str(corefile), "-dns.port",
                          str(free_port())], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    assert (f"plugin/loadbalance: weight file open error: {tmp_path}/nope.txt: "
            "No such file or directory") in out.stderr


def test_weighted_bad_file_fails_startup_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "w").write_text("a.test\n10.0.0.1 300\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(". {\n    loadbalance weighted w\n    whoami\n}\n")
    out = subprocess.run([sys.executable, "-m", "kdns", "-conf", str(corefile), "-dns.port",
                          str(free_port())], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    assert f'wrong weight value:"300" in weight file {tmp_path}/w:2' in out.stderr
