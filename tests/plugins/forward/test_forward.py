"""forward in the real kdns process, against knotd and the fault-injecting upstream."""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import signal
import socket
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.kdnsproc import KdnsProcess, dig, free_port, rrtext
from tests.upstream.fakeupstream import FakeUpstream
from tests.upstream.kdns import kdns
from tests.upstream.stack import uniq, upstream_fixtures

COREFILE = """\
example.test:{port} {
    forward . {knot}
}
.:{port} {
    forward . {fake} {
        health_check 200ms
    }
}
"""

fake, kd = upstream_fixtures(COREFILE)


# --- a real upstream ----------------------------------------------------------------------

@pytest.mark.parametrize("tcp", [False, True])
def test_names_resolve_through_knot(kd: KdnsProcess, tcp: bool) -> None:
    r = kd.query("www.example.test", "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert rrtext(r) == ["www.example.test. 300 A 192.0.2.10"]
    r = kd.query("www.example.test", "AAAA", tcp=tcp)
    assert rrtext(r) == ["www.example.test. 300 AAAA 2001:db8::10"]
    r = kd.query("alias.example.test", "A", tcp=tcp)
    assert rrtext(r) == ["alias.example.test. 300 CNAME www.example.test.",
                         "www.example.test. 300 A 192.0.2.10"]
    r = kd.query("x.wild.example.test", "A", tcp=tcp)
    assert rrtext(r) == ["x.wild.example.test. 300 A 192.0.2.99"]


def test_nxdomain_from_knot_keeps_the_soa(kd: KdnsProcess) -> None:
    r = kd.query("nope.example.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert rrtext(r, "authority") == [
        "example.test. 60 SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 60"]


def test_dig_echoes_mixed_case_and_edns(kd: KdnsProcess) -> None:
    out = dig(kd.port, "TxT.ExAmPlE.tEsT", "TXT")
    assert "status: NOERROR" in out
    assert ";TxT.ExAmPlE.tEsT.\t\tIN\tTXT" in out
    assert '"hello from knot"' in out
    assert "udp: 1232" in out


# --- faults ---------------------------------------------------------------------------------

def test_spoof_burst_never_reaches_the_client(kd: KdnsProcess, fake: FakeUpstream) -> None:
    for _ in range(10):
        r = kd.query(uniq("spoof-50"), "A", timeout=3)
        assert rrtext(r)[0].endswith("A 192.0.2.1")  # the forgeries carry 6.6.6.6


def test_truncated_upstream_reply_is_retried_over_tcp(kd: KdnsProcess,
                                                      fake: FakeUpstream) -> None:
    name = uniq("tc")
    r = kd.query(name, "A")
    assert not r.flags & dns.flags.TC and rrtext(r)[0].endswith("A 192.0.2.1")
    assert [s.proto for s in fake.queries(name)] == ["udp", "tcp"]


def test_oversize_answer_is_truncated_for_a_small_client_then_served_over_tcp(
        kd: KdnsProcess) -> None:
    name = uniq("big-100")
    r = kd.query(name, "A", use_edns=False)
    assert r.flags & dns.flags.TC
    assert len(r.to_wire()) <= 512
    full = kd.query(name, "A", tcp=True)
    assert len(full.answer[0]) == 100


def test_duplicate_upstream_replies_give_one_client_reply(kd: KdnsProcess) -> None:
    q = dns.message.make_query(uniq("dup"), "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(q.to_wire(), ("127.0.0.1", kd.port))
        first = dns.message.from_wire(s.recv(4096))
        assert first.id == q.id and first.answer
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(4096)


def test_long_cname_chain_passes_through(kd: KdnsProcess) -> None:
    r = kd.query(uniq("cname-20"), "A")
    assert r.rcode() == 0 and len(r.answer) == 21


def test_upstream_servfail_and_refused_pass_through(kd: KdnsProcess) -> None:
    assert kd.query(uniq("servfail")).rcode() == dns.rcode.SERVFAIL
    assert kd.query(uniq("refused")).rcode() == dns.rcode.REFUSED


def test_slow_upstream_within_the_deadline_is_answered(kd: KdnsProcess) -> None:
    start = time.monotonic()
    r = kd.query(uniq("delay-1500"), "A", timeout=5)
    assert r.rcode() == 0 and r.answer
    assert 1.4 < time.monotonic() - start < 2.5


def test_only_bad_replies_give_servfail_by_the_deadline(kd: KdnsProcess) -> None:
    start = time.monotonic()
    r = kd.query(uniq("garbage"), "A", timeout=8)
    elapsed = time.monotonic() - start
    assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
    # Two attempts of 2 s (max_connect_attempts defaults to 2 x upstreams, as CoreDNS 1.14.7),
    # the bad datagrams ignored all along; never beyond the 5 s deadline.
    assert 3.9 < elapsed < 5.1


def test_wrong_id_replies_move_to_tcp_and_never_answer(kd: KdnsProcess,
                                                       fake: FakeUpstream) -> None:
    name = uniq("wrongid")
    start = time.monotonic()
    r = kd.query(name, "A", timeout=8)
    assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
    assert time.monotonic() - start < 1.0  # TCP shows the upstream broken: no 2 s waits
    assert [s.proto for s in fake.queries(name)] == ["udp", "tcp", "udp", "tcp"]


def test_identical_concurrent_queries_make_one_upstream_query(kd: KdnsProcess,
                                                              fake: FakeUpstream) -> None:
    name = uniq("delay-500")
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(200)]
    try:
        queries = [dns.message.make_query(name, "A") for _ in socks]
        for s, q in zip(socks, queries, strict=True):  # all sent before the first answer
            s.sendto(q.to_wire(), ("127.0.0.1", kd.port))
        for s, q in zip(socks, queries, strict=True):
            s.settimeout(3)
            r = dns.message.from_wire(s.recv(4096))
            assert r.id == q.id and r.rcode() == 0 and r.answer
    finally:
        for s in socks:
            s.close()
    assert fake.count(name) == 1


def test_upstream_sees_random_ids_and_ports(kd: KdnsProcess, fake: FakeUpstream) -> None:
    names = [uniq("ok") for _ in range(100)]
    for n in names:
        kd.query(n, "A")
    seen = [fake.queries(n)[0] for n in names]
    assert len({s.id for s in seen}) >= 97
    assert len({s.src[1] for s in seen}) >= 90


# --- outages (own kdns instances) -----------------------------------------------------------

def test_blackholed_upstream_is_skipped_once_marked_down() -> None:
    with FakeUpstream() as dead, FakeUpstream() as alive:
        dead.mode = "blackhole"
        corefile = ".:{port} {\n" f"  forward . {dead.addr} {alive.addr} {{\n" \
                   "    policy sequential\n    max_fails 1\n    health_check 200ms\n  }\n}\n"
        with kdns(corefile) as k:
            start = time.monotonic()
            r = k.query("first.example.", timeout=5)
            assert r.rcode() == 0 and 1.9 < time.monotonic() - start < 3.0  # dead, then alive
            time.sleep(1.5)  # probes to the dead one keep failing: it is now down
            for i in range(20):
                start = time.monotonic()
                r = k.query(f"n{i}.example.", timeout=2)
                assert r.rcode() == 0 and time.monotonic() - start < 0.2
            assert dead.count("n0.example.") == 0


def test_all_upstreams_down_servfail_fast_then_recover() -> None:
    with FakeUpstream() as up:
        up.mode = "blackhole"
        corefile = ".:{port} {\n" f"  forward . {up.addr} {{\n" \
                   "    failfast_all_unhealthy_upstreams\n    health_check 100ms\n  }\n}\n"
        with kdns(corefile) as k:
            fds = fd_count(k.proc.pid)
            with concurrent.futures.ThreadPoolExecutor(50) as pool:  # an outage under load
                rcodes = list(pool.map(lambda i: k.query(f"a{i}.example.", timeout=8).rcode(),
                                       range(100)))
            assert set(rcodes) == {dns.rcode.SERVFAIL}
            time.sleep(0.5)
            start = time.monotonic()
            for i in range(10):
                assert k.query(f"b{i}.example.").rcode() == dns.rcode.SERVFAIL
            assert (time.monotonic() - start) / 10 < 0.1  # marked down: no 2 s attempt
            up.mode = ""  # the upstream comes back
            time.sleep(1.5)
            r = k.query("c.example.", timeout=3)
            assert r.rcode() == 0 and r.answer
            assert fd_count(k.proc.pid) <= fds + 10  # no sockets left behind by the outage


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_max_concurrent_refuses_excess_queries() -> None:
    with FakeUpstream() as up:
        corefile = ".:{port} {\n" f"  forward . {up.addr} {{\n    max_concurrent 5\n  }}\n}}\n"
        with kdns(corefile) as k:
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(
                    lambda i: k.query(f"delay-500.m{i}.example.", timeout=3), range(20)))
            rcodes = sorted(r.rcode() for r in replies)
            assert rcodes.count(dns.rcode.NOERROR) >= 5
            assert rcodes.count(dns.rcode.REFUSED) >= 10
            assert len(up.queries()) <= 10


def test_except_names_are_not_forwarded() -> None:
    with FakeUpstream() as up:
        corefile = ".:{port} {\n" f"  forward example. {up.addr} {{\n    except in.example.\n" \
                   "  }\n}\n"
        with kdns(corefile) as k:
            assert k.query("ok.example.").answer
            assert k.query("ok.in.example.").rcode() == dns.rcode.SERVFAIL  # no next plugin
            assert k.query("ok.other.").rcode() == dns.rcode.SERVFAIL
            assert up.count("ok.in.example.") == 0 and up.count("ok.other.") == 0


@pytest.mark.root
def test_resolv_conf_file_as_upstream(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to bind port 53 on a 127.x address")
    host = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.53"
    with FakeUpstream(host=host, port=53) as up:
        rc = tmp_path / "resolv.conf"
        rc.write_text(f"search svc.cluster.local\nnameserver {host}\noptions ndots:5\n")
        with kdns(".:{port} {\n" f"  forward . {rc}\n}}\n") as k:
            assert k.query("ok.example.").answer
            assert up.count("ok.example.") == 1


def test_upstream_port_closed_gives_servfail_quickly() -> None:
    port = free_port()
    with kdns(".:{port} {\n" f"  forward . 127.0.0.1:{port}\n}}\n") as k:
        start = time.monotonic()
        assert k.query("x.example.", timeout=6).rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - start < 0.5  # ICMP port unreachable: no waiting, no spinning


def test_reload_switches_upstreams_and_keeps_queries_in_flight() -> None:
    with FakeUpstream() as a, FakeUpstream() as b:
        with kdns(".:{port} {\n" f"  forward . {a.addr}\n}}\n") as k:
            assert k.query("ok.before.example.").answer
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                slow = pool.submit(k.query, "delay-1000.inflight.example.", "A", timeout=4)
                time.sleep(0.3)  # the slow query is now in flight to a
                k.corefile_path.write_text(
                    ".:{port} {\n".replace("{port}", str(k.port)) + f"  forward . {b.addr}\n}}\n")
                k.signal(signal.SIGUSR1)
                k.wait_for_line("Reloading complete", timeout=10)
                r = slow.result()
            assert r.rcode() == 0 and r.answer  # the old chain finished it before stopping
            assert k.query("ok.after.example.").answer
            assert b.count("ok.after.example.") == 1 and a.count("ok.after.example.") == 0
