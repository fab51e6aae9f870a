"""RFC edges of the core against the real kdns serving hosts entries, over UDP and TCP.

A table of malformed and unusual packets, each with the expected outcome (silence or an rcode),
and after every one of them the server must still answer a valid query on the same transport.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.kdnsproc import KdnsProcess, dig, run_kdns

BIG = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(200)]  # 200 A records, ~3.2 KB
MEDIUM = [f"10.2.0.{i}" for i in range(1, 41)]  # 40 A records, ~690 bytes

COREFILE = """\
example.org:{port} 10.in-addr.arpa:{port} {
    hosts hosts {
        reload 0
    }
}
whoami.test:{port} {
    whoami
}
"""

HOSTS = "10.0.0.1 www.example.org\n" + "".join(f"{a} big.example.org\n" for a in BIG) + "".join(
    f"{a} medium.example.org\n" for a in MEDIUM)


@pytest.fixture(scope="module")
def kdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    wd: Path = tmp_path_factory.mktemp("wire-edges")
    (wd / "hosts").write_text(HOSTS)
    with run_kdns(COREFILE, workdir=wd) as k:
        yield k


# --- raw transport helpers ------------------------------------------------------------------

def udp_exchange(port: int, data: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (TimeoutError, ConnectionResetError):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def tcp_read_frame(s: socket.socket) -> bytes | None:
    head = _recv_exact(s, 2)
    if head is None:
        return None
    return _recv_exact(s, struct.unpack("!H", head)[0])


def tcp_exchange(port: int, data: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack("!H", len(data)) + data)
        return tcp_read_frame(s)


def exchange(port: int, data: bytes, tcp: bool) -> bytes | None:
    return tcp_exchange(port, data) if tcp else udp_exchange(port, data)


# --- packets --------------------------------------------------------------------------------

def query(name: str = "www.example.org", rdtype: str = "A", **kw: object) -> bytes:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    q.id = 0x4B44
    return q.to_wire()


def patch(wire: bytes, offset: int, value: bytes) -> bytes:
    return wire[:offset] + value + wire[offset + len(value):]


def with_opcode(opcode: int) -> bytes:
    wire = query()
    flags = struct.unpack_from("!H", wire, 2)[0] & ~0x7800 | (opcode << 11)
    return patch(wire, 2, struct.pack("!H", flags))


def edns_version(version: int) -> bytes:
    wire = query(use_edns=0)
    # OPT is the last RR: owner(1) type(2) class(2) ext-rcode(1) version(1) flags(2) rdlen(2)
    return patch(wire, len(wire) - 11 + 6, bytes([version]))


@dataclass(frozen=True)
class Edge:
    name: str
    packet: bytes
    rcode: int | None  # None: the server must stay silent
    udp_only: bool = False


PLAIN = query()
EDGES = [
    Edge("runt-0", b"", None, udp_only=True),
    Edge("runt-1", b"\x12", None),
    Edge("runt-11", PLAIN[:11], None),
    Edge("qr-set", patch(PLAIN, 2, bytes([PLAIN[2] | 0x80])), None),
    Edge("qr-set-garbage", b"\x00\x01\x80" + b"\xff" * 30, None),
    Edge("qdcount-0", patch(PLAIN, 4, b"\x00\x00")[:12], dns.rcode.FORMERR),
    Edge("qdcount-2", patch(PLAIN, 4, b"\x00\x02") + PLAIN[12:], dns.rcode.FORMERR),
    Edge("qdcount-2-one-question", patch(PLAIN, 4, b"\x00\x02"), dns.rcode.FORMERR),
    Edge("truncated-question", PLAIN[:20], dns.rcode.FORMERR),
    Edge("truncated-qtype", PLAIN[:-3], dns.rcode.FORMERR),
    Edge("trailing-junk", PLAIN + b"\xde\xad\xbe\xef", dns.rcode.FORMERR),
    Edge("label-too-long", PLAIN[:12] + b"\x50" + b"a" * 80 + b"\x00\x00\x01\x00\x01",
         dns.rcode.FORMERR),
    Edge("pointer-loop", PLAIN[:12] + b"\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),
    Edge("answer-in-query", patch(PLAIN, 6, b"\x00\x01"), dns.rcode.FORMERR),
    Edge("opcode-status", with_opcode(dns.opcode.STATUS), dns.rcode.NOTIMP),
    Edge("opcode-notify", with_opcode(dns.opcode.NOTIFY), dns.rcode.NOTIMP),
    Edge("opcode-update", with_opcode(dns.opcode.UPDATE), dns.rcode.NOTIMP),
    Edge("opcode-iquery", with_opcode(dns.opcode.IQUERY), dns.rcode.NOTIMP),
    Edge("edns-version-1", edns_version(1), dns.rcode.BADVERS),
    Edge("edns-version-255", edns_version(255), dns.rcode.BADVERS),
    Edge("two-opt-records", patch(query(use_edns=0), 10, b"\x00\x02") + query(use_edns=0)[-11:],
         dns.rcode.FORMERR),
    Edge("class-chaos", query("version.bind", "TXT", rdclass=dns.rdataclass.CH),
         dns.rcode.REFUSED),
    Edge("class-hesiod", query("www.example.org", "A", rdclass=dns.rdataclass.HS),
         dns.rcode.REFUSED),
    Edge("outside-every-zone", query("www.example.net"), dns.rcode.REFUSED),
    Edge("outside-root", query("."), dns.rcode.REFUSED),
    # Unusual but valid: answered normally (options we do not implement are ignored).
    Edge("edns-cookie", query(use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]),
         dns.rcode.NOERROR),
    Edge("edns-nsid-padding-unknown", query(use_edns=0, options=[
        dns.edns.GenericOption(3, b""), dns.edns.GenericOption(12, b"\x00" * 20),
        dns.edns.GenericOption(65001, b"x")]), dns.rcode.NOERROR),
    Edge("edns-payload-0", query(use_edns=0, payload=0), dns.rcode.NOERROR),
    Edge("class-any", query(rdclass=dns.rdataclass.ANY), dns.rcode.NOERROR),
    Edge("qtype-0", query(rdtype=0), dns.rcode.NOERROR),  # hosts: NODATA for the name
    Edge("qtype-65535", query(rdtype=65535), dns.rcode.NOERROR),
    Edge("id-0-no-rd", patch(patch(PLAIN, 0, b"\x00\x00"), 2, b"\x00"), dns.rcode.NOERROR),
]


def _rcode(reply: bytes) -> int:
    """The full rcode (extended bits from OPT included) without trusting the parser."""
    msg = dns.message.from_wire(reply)
    return int(msg.rcode())


def assert_still_serving(k: KdnsProcess, tcp: bool) -> None:
    r = k.query("www.example.org", "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert [rd.to_text() for rrset in r.answer for rd in rrset] == ["10.0.0.1"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("edge", EDGES, ids=[e.name for e in EDGES])
def test_edge(kdns: KdnsProcess, edge: Edge, tcp: bool) -> None:
    if tcp and edge.udp_only:
        pytest.skip("a zero-length TCP frame is a framing error, covered by test_tcp_framing")
    reply = exchange(kdns.port, edge.packet, tcp)
    if edge.rcode is None:
        assert reply is None, f"expected silence, got {reply!r}"
    else:
        assert reply is not None, "expected an answer, got silence"
        assert reply[:2] == edge.packet[:2], "the reply must carry the query's ID"
        assert reply[2] & 0x80, "QR must be set"
        assert _rcode(reply) == edge.rcode, dns.rcode.to_text(_rcode(reply))
        if edge.rcode == dns.rcode.BADVERS:
            assert dns.message.from_wire(reply).edns == 0  # the reply's OPT says version 0
    assert_still_serving(kdns, tcp)


def test_opcode_is_echoed_in_notimp(kdns: KdnsProcess) -> None:
    for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS):
        reply = udp_exchange(kdns.port, with_opcode(opcode))
        assert reply is not None
        assert (reply[2] >> 3) & 0x0F == opcode


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("do,cd", [(True, True), (True, False), (False, True), (False, False)])
def test_edns_do_and_cd_echoed(kdns: KdnsProcess, tcp: bool, do: bool, cd: bool) -> None:
    q = dns.message.make_query("www.example.org", "A", use_edns=0, want_dnssec=do)
    if cd:
        q.flags |= dns.flags.CD
    r = kdns.send(q, tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.edns == 0 and r.payload == 1232
    assert bool(r.ednsflags & dns.flags.DO) == do
    assert bool(r.flags & dns.flags.CD) == cd
    assert r.flags & dns.flags.RD  # copied from the query


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_no_opt_in_reply_without_opt_in_query(kdns: KdnsProcess, tcp: bool) -> None:
    r = kdns.query("www.example.org", "A", tcp=tcp, use_edns=False)
    assert r.edns == -1


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name", ["WwW.ExAmPlE.OrG", "WWW.EXAMPLE.ORG", "1.0.0.10.IN-ADDR.arpa"])
def test_0x20_question_echoed_byte_for_byte(kdns: KdnsProcess, tcp: bool, name: str) -> None:
    qtype = "PTR" if "ADDR" in name else "A"
    for edns in (False, True):  # plain queries may be served by the fast path, EDNS ones too
        for _ in range(3):
            wire = query(name, qtype, use_edns=0 if edns else False)
            reply = exchange(kdns.port, wire, tcp)
            assert reply is not None
            qend = 12 + len(dns.name.from_text(name).to_wire()) + 4
            assert reply[12:qend] == wire[12:qend]
            msg = dns.message.from_wire(reply)
            assert msg.rcode() == dns.rcode.NOERROR and len(msg.answer) == 1
            assert msg.answer[0].name.to_text() == name + "."


def _answer_count(reply: bytes) -> int:
    return int(struct.unpack_from("!H", reply, 6)[0])


TC_CASES = [
    # name, EDNS payload (None: no OPT), truncated?
    ("big.example.org", None, True),
    ("big.example.org", 512, True),
    ("big.example.org", 1232, True),
    ("big.example.org", 4096, True),  # capped at our 1232
    ("big.example.org", 65535, True),
    ("medium.example.org", None, True),  # ~690 bytes > 512
    ("medium.example.org", 600, True),
    ("medium.example.org", 100, True),  # below 512 counts as 512
    ("medium.example.org", 1232, False),
    ("medium.example.org", 4096, False),
    ("www.example.org", None, False),
]


@pytest.mark.parametrize("name,payload,truncated", TC_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TC_CASES])
def test_udp_answer_fits_the_payload_never_a_partial_rrset(kdns: KdnsProcess, name: str,
                                                           payload: int | None,
                                                           truncated: bool) -> None:
    want = len(BIG) if name.startswith("big") else len(MEDIUM) if name.startswith("med") else 1
    for _ in range(2):  # the second may come from the fast path
        wire = query(name, use_edns=False if payload is None else 0,
                     payload=payload or 512)
        reply = udp_exchange(kdns.port, wire)
        assert reply is not None
        limit = 512 if payload is None else min(max(payload, 512), 1232)
        assert len(reply) <= limit
        tc = bool(reply[2] & 0x02)
        assert tc == truncated
        assert _answer_count(reply) == (0 if truncated else want)  # whole RRset or nothing
        msg = dns.message.from_wire(reply)
        assert msg.rcode() == dns.rcode.NOERROR
        assert (msg.edns == 0) == (payload is not None)


def test_tcp_gets_the_whole_big_answer(kdns: KdnsProcess) -> None:
    r = kdns.query("big.example.org", "A", tcp=True)
    assert not r.flags & dns.flags.TC
    assert sorted(rd.to_text() for rd in r.answer[0]) == sorted(BIG)


def test_dig_retries_truncated_answer_over_tcp(kdns: KdnsProcess) -> None:
    out = dig(kdns.port, "+bufsize=1232", "big.example.org", "A")
    assert "Truncated, retrying in TCP mode" in out
    assert out.count("\tIN\tA\t10.1.") == len(BIG)


def test_tcp_pipelining_several_queries_in_one_write(kdns: KdnsProcess) -> None:
    names = ["www.example.org", "big.example.org", "nope.example.org", "www.example.net",
             "medium.example.org", "1.0.0.10.in-addr.arpa"]
    qs = []
    for i, name in enumerate(names):
        q = dns.message.make_query(name, "PTR" if "arpa" in name else "A")
        q.id = 1000 + i
        qs.append(q)
    bad = b"\x00\x05\x00\x01\x02\x03\x04"  # a 5-byte frame (runt): closes the connection
    data = b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in qs[:3]))
    data += bad + b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in qs[3:]))
    with socket.create_connection(("127.0.0.1", kdns.port), timeout=2) as s:
        s.settimeout(3)
        s.sendall(data)
        got = {}
        for _ in qs[:3]:
            frame = tcp_read_frame(s)
            assert frame is not None, f"only {len(got)} of 3 answers"
            msg = dns.message.from_wire(frame)
            got[msg.id] = msg
        # reliability.md section 4: garbage on TCP closes the connection (after the answers
        # to what came before it); nothing after the runt is read.
        t0 = time.monotonic()
        assert tcp_read_frame(s) is None
        assert time.monotonic() - t0 < 2.0, "timed out instead of being closed"
    assert sorted(got) == [q.id for q in qs[:3]]
    want = {1000: dns.rcode.NOERROR, 1001: dns.rcode.NOERROR, 1002: dns.rcode.NXDOMAIN}
    assert {i: m.rcode() for i, m in got.items()} == want
    assert len(got[1001].answer[0]) == len(BIG)


def test_tcp_framing_errors_close_only_that_connection(kdns: KdnsProcess) -> None:
    for bad in (b"\x00\x00", b"\x00"):  # zero-length frame; half a length prefix then EOF
        with socket.create_connection(("127.0.0.1", kdns.port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(bad)
            if bad == b"\x00":
                s.shutdown(socket.SHUT_WR)
            t0 = time.monotonic()
            assert tcp_read_frame(s) is None
            assert time.monotonic() - t0 < 2.0, "timed out instead of being closed"
        assert_still_serving(kdns, tcp=True)
        assert_still_serving(kdns, tcp=False)


def test_tcp_query_split_across_writes(kdns: KdnsProcess) -> None:
    wire = query()
    framed = struct.pack("!H", len(wire)) + wire
    with socket.create_connection(("127.0.0.1", kdns.port), timeout=2) as s:
        s.settimeout(3)
        for i in range(len(framed)):
            s.sendall(framed[i:i + 1])
            time.sleep(0.002)
        frame = tcp_read_frame(s)
    assert frame is not None and dns.message.from_wire(frame).rcode() == dns.rcode.NOERROR


SendFn = Callable[[int, bytes], bytes | None]


# 255 octets on the wire: the longest valid name; "_udp." in front of it would not fit.
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 49, "whoami", "test"])


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_longest_name(kdns: KdnsProcess, tcp: bool) -> None:
    assert len(dns.name.from_text(LONGEST).to_wire()) == 255
    r = kdns.query(LONGEST, "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert [rr.rdtype for rr in r.additional] == [dns.rdatatype.A]  # the SRV cannot be named
    assert "panic" not in kdns.output
    assert kdns.query("x." + LONGEST[64:], "A", tcp=tcp).rcode() == dns.rcode.NOERROR
    assert len(kdns.query("x." + LONGEST[64:], "A", tcp=tcp).additional) == 2


def test_random_garbage_never_kills_the_server(kdns: KdnsProcess) -> None:
    import random

    rng = random.Random(8482)
    for i in range(300):
        n = rng.randrange(0, 80)
        pkt = bytes(rng.randrange(256) for _ in range(n))
        if i % 3 == 0 and n > 12:  # mostly-valid headers reach the parser
            pkt = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0) + pkt[12:]
        udp_exchange(kdns.port, pkt, timeout=0.05)
    assert_still_serving(kdns, tcp=False)
    assert_still_serving(kdns, tcp=True)
    assert kdns.proc.poll() is None
    assert "Traceback" not in kdns.output


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name,rdclass,rcode", [
    ("www.example.net", "IN", dns.rcode.REFUSED),  # outside every zone: no chain runs
    ("version.bind", "CH", dns.rcode.REFUSED),
    ("nope.example.org", "IN", dns.rcode.NXDOMAIN),  # hosts' own negative answer
])
def test_do_and_cd_echoed_on_negative_answers(kdns: KdnsProcess, tcp: bool, name: str,
                                              rdclass: str, rcode: int) -> None:
    q = dns.message.make_query(name, "TXT" if rdclass == "CH" else "A", rdclass,
                               use_edns=0, want_dnssec=True)
    q.flags |= dns.flags.CD
    r = kdns.send(q, tcp=tcp)
    assert r.rcode() == rcode
    assert r.edns == 0 and r.ednsflags & dns.flags.DO and r.flags & dns.flags.CD
    assert r.question[0].name == q.question[0].name
