"""log in the real kdns: byte-exact lines for dig and dnspython queries, formats, filters."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.kdnsproc import KdnsProcess, free_port
from tests.plugins.kdnsports import run_kdns_ports

COREFILE = """\
.:{port} {
    log
    whoami
}
comb.:{port} {
    log . {combined}
    whoami
}
custom.:{port} {
    log . "{proto} Request: {name} {type} {>id} {rcode} {/log/class} {unknown}"
    whoami
}
errs.:{port} {
    log . {
        class error
    }
    whoami
}
fail.:{port} {
    log
}
errfail.:{port} {
    log . {
        class error
    }
}
denyfail.:{port} {
    log . {
        class denial success
    }
}
hosts.:{port} {
    log
    hosts {
        10.0.0.1 www.hosts.
    }
}
multi.:{port} {
    log a.multi "first {name}"
    log . "second {name}"
    whoami
}
"""
DURATION = r"(0|[1-9]\d*)(\.\d+)?s"


@pytest.fixture(scope="module")
def kdns():  # type: ignore[no-untyped-def]
    with run_kdns_ports(COREFILE) as (k, _):
        yield k


def udp_exchange(k: KdnsProcess, q: dns.message.Message) -> tuple[int, bytes]:
    """Send from a known source port; return (port, reply wire) so a line can be predicted."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        s.sendto(q.to_wire(), ("127.0.0.1", k.port))
        wire, _ = s.recvfrom(65535)
        return s.getsockname()[1], wire


def test_dig_query_line_is_byte_exact(kdns: KdnsProcess) -> None:
    sport = free_port()
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(kdns.port), "-b", f"127.0.0.1#{sport}",
                          "+time=2", "+tries=1", "Example.ORG", "A"],
                         capture_output=True, text=True, timeout=10).stdout
    qid = re.search(r"id: (\d+)", out)
    size = re.search(r"MSG SIZE\s+rcvd: (\d+)", out)
    assert qid and size and "status: NOERROR" in out, out
    line = kdns.wait_for_line(f"127.0.0.1:{sport} - ")
    # dig sends EDNS with a 1232 buffer and a cookie: 29 + 11 + 12 bytes.
    expected = (rf'\[INFO\] 127\.0\.0\.1:{sport} - {qid.group(1)} "A IN example\.org\. udp 52 '
                rf'false 1232" NOERROR qr,aa,rd {size.group(1)} {DURATION}')
    assert re.fullmatch(expected, line), line


@pytest.mark.parametrize("edns,payload,do", [(False, 0, False), (True, 4096, True)])
def test_dnspython_udp_line(kdns: KdnsProcess, edns: bool, payload: int, do: bool) -> None:
    q = dns.message.make_query("www.example.org.", "AAAA", use_edns=edns, payload=payload,
                               want_dnssec=do)
    sport, wire = udp_exchange(kdns, q)
    line = kdns.wait_for_line(f"127.0.0.1:{sport} - ")
    bufsize = payload if edns else 512
    expected = (rf'\[INFO\] 127\.0\.0\.1:{sport} - {q.id} "AAAA IN www\.example\.org\. udp '
                rf'{len(q.to_wire())} {str(do).lower()} {bufsize}" NOERROR qr,aa,rd {len(wire)} '
                rf'{DURATION}')
    assert re.fullmatch(expected, line), line


def test_tcp_line_has_65535_bufsize(kdns: KdnsProcess) -> None:
    q = dns.message.make_query("tcp.example.org.", "TXT", use_edns=0)
    with socket.create_connection(("127.0.0.1", kdns.port), timeout=3) as s:
        dns.query.send_tcp(s, q)
        r, _ = dns.query.receive_tcp(s)
        sport = s.getsockname()[1]
    line = kdns.wait_for_line(f"127.0.0.1:{sport} - ")
    assert re.fullmatch(rf'\[INFO\] 127\.0\.0\.1:{sport} - {q.id} "TXT IN tcp\.example\.org\. '
                        rf'tcp {len(q.to_wire())} false 65535" NOERROR qr,aa,rd '
                        rf'{len(r.to_wire())} {DURATION}', line), line


def test_combined_appends_opcode(kdns: KdnsProcess) -> None:
    q = dns.message.make_query("x.comb.", "A")
    sport, _ = udp_exchange(kdns, q)
    line = kdns.wait_for_line(f"127.0.0.1:{sport} - ")
    assert line.endswith('s "0"') and '"A IN x.comb. udp' in line


def test_custom_format_metadata_and_unknown_placeholder(kdns: KdnsProcess) -> None:
    q = dns.message.make_query("Y.Custom.", "SRV")
    udp_exchange(kdns, q)
    line = kdns.wait_for_line("Request: y.custom.")
    assert line == f"[INFO] udp Request: y.custom. SRV {q.id} NOERROR success {{unknown}}"


def test_class_filter(kdns: KdnsProcess) -> None:
    assert kdns.query("ok.errs.", "A").rcode() == dns.rcode.NOERROR  # success: filtered out
    assert kdns.query("bad.errfail.", "A").rcode() == dns.rcode.SERVFAIL  # error: logged
    assert kdns.query("bad.denyfail.", "A").rcode() == dns.rcode.SERVFAIL  # error: filtered out
    kdns.wait_for_line('"A IN bad.errfail. udp')
    kdns.query("later.", "A")  # a line from the catch-all block: the writer has caught up
    kdns.wait_for_line('"A IN later. udp')
    assert not [x for x in kdns.lines if "ok.errs." in x or "bad.denyfail." in x]


def test_failed_chain_is_logged_with_the_servfail_reply(kdns: KdnsProcess) -> None:
    q = dns.message.make_query("Z.fail.", "A")
    sport, wire = udp_exchange(kdns, q)
    r = dns.message.from_wire(wire)
    assert r.rcode() == dns.rcode.SERVFAIL
    line = kdns.wait_for_line(f"127.0.0.1:{sport} - ")
    assert re.fullmatch(rf'\[INFO\] 127\.0\.0\.1:{sport} - {q.id} "A IN z\.fail\. udp '
                        rf'{len(q.to_wire())} false 512" SERVFAIL qr,rd {len(wire)} {DURATION}',
                        line), line


def test_several_log_lines_first_matching_rule_wins(kdns: KdnsProcess) -> None:
    kdns.query("q.a.multi.", "A")
    kdns.query("q.b.multi.", "A")
    kdns.wait_for_line("second q.b.multi.")
    assert "[INFO] first q.a.multi." in kdns.lines
    assert "[INFO] second q.a.multi." not in kdns.lines


def test_burst_of_queries_all_logged_in_order(kdns: KdnsProcess) -> None:
    names = [f"n{i}.burst.example." for i in range(200)]
    for n in names:
        kdns.query(n, "A")
    kdns.wait_for_line(f"{names[-1]} udp")
    logged = [x for x in kdns.lines if ".burst.example. udp" in x]
    assert [x.split('"A IN ')[1].split(" ")[0] for x in logged] == names


def start_unread(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """kdns with log, its stdout a pipe nobody reads; a new port if the first one was taken."""
    for _ in range(4):
        port = free_port()
        (tmp_path / "Corefile").write_text(f".:{port} {{\n    log\n    whoami\n}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "kdns", "-conf", "Corefile", "-quiet"],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return proc, port
            except OSError:
                assert time.monotonic() < deadline, "kdns did not start in 30 s"
                time.sleep(0.05)
        out = proc.communicate()[0].decode()
        assert "already in use" in out.lower(), out
    raise AssertionError("no free port after 4 attempts")


def test_blocked_stdout_does_not_stall_dns(tmp_path: Path) -> None:
    """Nobody reads kdns's stdout: the pipe fills (64 KiB), yet every query is answered."""
    proc, port = start_unread(tmp_path)
    try:
        n = 1500  # ~100 bytes per line: well past the pipe's capacity
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            for i in range(n):
                q = dns.message.make_query(f"q{i}.blocked.example.", "A")
                s.sendto(q.to_wire(), ("127.0.0.1", port))
                assert dns.message.from_wire(s.recv(65535)).id == q.id
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logged = [x for x in out.decode().splitlines() if ".blocked.example. udp" in x]
    assert len(logged) == n


def test_every_query_is_logged_even_when_answers_are_replayable(kdns: KdnsProcess) -> None:
    """hosts marks its answers reusable for the wire fast path; log must still see each query."""
    ids = []
    for _ in range(5):
        q = dns.message.make_query("www.hosts.", "A")
        ids.append(q.id)
        r = kdns.send(q)
        assert [str(rd) for rrset in r.answer for rd in rrset] == ["10.0.0.1"]
    kdns.wait_for_line(f' - {ids[-1]} "A IN www.hosts. udp')
    logged = [x for x in kdns.lines if '"A IN www.hosts. udp' in x]
    assert len(logged) == 5
