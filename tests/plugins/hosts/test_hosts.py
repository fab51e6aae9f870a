"""hosts against the real kdns over UDP and TCP, with dnspython and dig."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.rcode
import pytest

from tests.kdnsproc import KdnsProcess, dig, rrtext, run_kdns

HOSTS = """\
10.0.0.1 www.example.org
10.0.0.2 www.example.org
fd00::1 www.example.org
10.0.0.3 v4only.example.org
10.0.0.4 over.example.org
10.0.0.5 *.apps.example.org
10.0.0.6 outside.example.net
this line is broken
"""

COREFILE = """\
.:{port} {
    hosts hosts example.org {
        10.0.0.99 inline.example.org
        10.0.0.98 over.example.org
        ttl 300
        fallthrough fall.example.org
    }
    whoami
}
"""


@pytest.fixture(scope="module")
def kdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    wd = tmp_path_factory.mktemp("hosts")
    (wd / "hosts").write_text(HOSTS)
    with run_kdns(COREFILE, workdir=wd) as k:
        yield k


CASES = [
    # name, qtype, rcode, answer lines (sorted), answered by whoami
    ("www.example.org", "A", "NOERROR",
     ["www.example.org. 300 A 10.0.0.1", "www.example.org. 300 A 10.0.0.2"], False),
    ("www.example.org", "AAAA", "NOERROR", ["www.example.org. 300 AAAA fd00::1"], False),
    ("v4only.example.org", "AAAA", "NOERROR", [], False),  # NODATA
    ("www.example.org", "MX", "NOERROR", [], False),  # NODATA for other qtypes
    ("nope.example.org", "A", "NXDOMAIN", [], False),
    ("inline.example.org", "A", "NOERROR", ["inline.example.org. 300 A 10.0.0.99"], False),
    ("over.example.org", "A", "NOERROR", ["over.example.org. 300 A 10.0.0.98"], False),
    ("x.apps.example.org", "A", "NOERROR", ["x.apps.example.org. 300 A 10.0.0.5"], False),
    ("a.b.apps.example.org", "A", "NXDOMAIN", [], False),
    ("1.0.0.10.in-addr.arpa", "PTR", "NOERROR",
     ["1.0.0.10.in-addr.arpa. 300 PTR www.example.org."], False),
    ("99.0.0.10.in-addr.arpa", "PTR", "NOERROR",
     ["99.0.0.10.in-addr.arpa. 300 PTR inline.example.org."], False),
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "PTR", "NOERROR",
     ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 300 PTR "
      "www.example.org."], False),
    ("7.7.7.7.in-addr.arpa", "PTR", "NOERROR", [], True),  # unknown PTR: passed on
    ("x.fall.example.org", "A", "NOERROR", [], True),  # fallthrough zone
    ("outside.example.net", "A", "NOERROR", [], True),  # outside the plugin's zones
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name,qtype,rcode,answer,whoami", CASES,
                         ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_answers(kdns: KdnsProcess, tcp: bool, name: str, qtype: str, rcode: str,
                 answer: list[str], whoami: bool) -> None:
    r = kdns.query(name, qtype, tcp=tcp)
    assert dns.rcode.to_text(r.rcode()) == rcode
    if whoami:  # whoami puts the client address in the additional section
        assert any("127.0.0.1" in line for line in rrtext(r, "additional"))
        return
    assert rrtext(r) == answer
    assert r.flags & dns.flags.AA
    assert r.additional == []


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dig(kdns: KdnsProcess, tcp: bool) -> None:
    extra = ["+tcp"] if tcp else []
    out = dig(kdns.port, *extra, "WwW.ExAmPlE.oRg", "A")
    assert "status: NOERROR" in out and "flags: qr aa rd;" in out
    assert "WwW.ExAmPlE.oRg.\t300\tIN\tA\t10.0.0.1" in out  # the query's case is echoed
    assert "WwW.ExAmPlE.oRg.\t300\tIN\tA\t10.0.0.2" in out
    out = dig(kdns.port, *extra, "-x", "10.0.0.3")
    assert "3.0.0.10.in-addr.arpa.\t300\tIN\tPTR\tv4only.example.org." in out
    out = dig(kdns.port, *extra, "nope.example.org")
    assert "status: NXDOMAIN" in out


def test_malformed_line_logged(kdns: KdnsProcess) -> None:
    kdns.wait_for_line("skipped 1 malformed line: line 8 'this line is broken'")


RELOAD_COREFILE = """\
example.org:{port} {
    hosts data/hosts {
        10.0.0.99 inline.example.org
        reload 200ms
    }
}
"""


def _wait_for(k: KdnsProcess, name: str, want: list[str], timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        got = [line.split()[-1] for line in rrtext(k.query(name, "A"))]
        if got == want:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{name}: still {got}, wanted {want}")


def test_file_reload_and_deletion(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    hosts = data / "hosts"  # relative to the Corefile's directory
    hosts.write_text("10.0.0.1 a.example.org\n")
    with run_kdns(RELOAD_COREFILE, workdir=tmp_path) as k:
        assert [x.split()[-1] for x in rrtext(k.query("a.example.org"))] == ["10.0.0.1"]
        hosts.write_text("10.0.0.2 a.example.org\n10.0.0.3 new.example.org\n")
        _wait_for(k, "new.example.org", ["10.0.0.3"])
        _wait_for(k, "a.example.org", ["10.0.0.2"])
        hosts.unlink()
        deadline = time.monotonic() + 5
        while k.query("a.example.org").rcode() != dns.rcode.NXDOMAIN:
            assert time.monotonic() < deadline, "file entries still served after deletion"
            time.sleep(0.05)
        _wait_for(k, "inline.example.org", ["10.0.0.99"])  # inline entries survive
        hosts.write_text("10.0.0.4 a.example.org\n")
        _wait_for(k, "a.example.org", ["10.0.0.4"])
        k.wait_for_line("File does not exist or cannot be read")


def test_default_reload_interval_picks_up_a_change(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("10.0.0.1 a.example.org\n")
    corefile = "example.org:{port} {\n    hosts hosts\n}\n"
    with run_kdns(corefile, workdir=tmp_path) as k:
        (tmp_path / "hosts").write_text("10.0.0.5 a.example.org\n")
        took = _wait_for(k, "a.example.org", ["10.0.0.5"], timeout=12.0)
        assert took < 9.0  # re-read every 5 s by default (slack for a loaded CI machine)


def test_metrics_exported_through_prometheus(tmp_path: Path) -> None:
    import urllib.request

    from tests.kdnsproc import free_port

    (tmp_path / "hosts").write_text("10.0.0.1 a.example.org b.example.org\n::1 a.example.org\n")
    mport = free_port()
    corefile = ("example.org:{port} {\n    prometheus 127.0.0.1:MPORT\n    hosts hosts {\n"
                "        10.0.0.9 in.example.org\n        reload 200ms\n    }\n}\n"
                ).replace("MPORT", str(mport))
    hostsfile = tmp_path / "hosts"

    def scrape() -> dict[str, float]:
        deadline = time.monotonic() + 10  # the side HTTP server starts after the DNS listeners
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                              timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "no /metrics"
                time.sleep(0.05)
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("coredns_hosts_") or line.startswith("coredns_dns_responses"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    with run_kdns(corefile, workdir=tmp_path) as k:
        assert k.query("a.example.org", "A").rcode() == 0
        m = scrape()
        label = f'{{hostsfile="{hostsfile}"}}'
        # forward: a(A), b(A), a(AAAA), in(A) = 4; reverse: 10.0.0.1 -> a, b; ::1 -> a;
        # 10.0.0.9 -> in = 4
        assert m[f"coredns_hosts_entries{label}"] == 8
        assert m[f"coredns_hosts_reload_timestamp_seconds{label}"] == pytest.approx(
            hostsfile.stat().st_mtime, abs=1e-3)
        assert any('plugin="hosts"' in key and 'rcode="NOERROR"' in key for key in m)
        hostsfile.write_text("10.0.0.1 a.example.org\n")
        deadline = time.monotonic() + 5
        while scrape().get(f"coredns_hosts_entries{label}") != 4:  # a + in, forward and reverse
            assert time.monotonic() < deadline, scrape()
            time.sleep(0.1)


def test_corefile_reload_swaps_hosts_instances(tmp_path: Path) -> None:
    import signal

    (tmp_path / "hosts").write_text("10.0.0.1 a.example.org\n")
    corefile = "example.org:{port} {\n    hosts hosts {\n        10.0.0.9 in.example.org\n" \
               "        reload 100ms\n    }\n}\n"
    with run_kdns(corefile, workdir=tmp_path) as k:
        _wait_for(k, "in.example.org", ["10.0.0.9"])
        k.corefile_path.write_text(k.corefile_path.read_text().replace("10.0.0.9", "10.0.0.8"))
        k.signal(signal.SIGUSR1)
        _wait_for(k, "in.example.org", ["10.0.0.8"])
        _wait_for(k, "a.example.org", ["10.0.0.1"])  # the new instance read the file too
        (tmp_path / "hosts").write_text("10.0.0.2 a.example.org\n")
        _wait_for(k, "a.example.org", ["10.0.0.2"])  # and its re-read task runs
        k.wait_for_line("Reloading complete")
    assert "Traceback" not in k.output and "failed to stop" not in k.output
