"""T1-T8: TCP timeouts, slowloris, connection caps, pipelining, non-reading and garbage TCP
clients, UDP floods - against the real kdns process (reliability.md section 9.3 B).

Scaled for CI where noted (connection counts, flood length); the criteria are the plan's.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.reliability.helpers import (
    fd_count,
    metric_value,
    query_wire,
    rss_kib,
    udp_probe,
)
from tests.reliability.vip import ROOT, in_netns
from tests.upstream.fakeupstream import FakeUpstream

COREFILE = """\
canary.test:{port} {
    whoami
}
.:{port} {
    prometheus 127.0.0.1:%(metrics)d
    forward . %(upstream)s {
        max_concurrent 1000
    }
}
"""
TCP_CAP = 1000  # kdns.server.tcp.MAX_CONNECTIONS
PER_SOURCE_CAP = 64  # kdns.server.tcp.MAX_CONNECTIONS_PER_SOURCE


class Server:
    def __init__(self, k: KdnsProcess, metrics: int, upstream: FakeUpstream) -> None:
        self.k = k
        self.port = k.port
        self.pid = k.proc.pid
        self.metrics = metrics
        self.upstream = upstream

    def canary(self, tcp: bool = False, timeout: float = 2.0) -> float:
        """Seconds a canary query took; asserts NOERROR."""
        t0 = time.monotonic()
        r = self.k.query("canary.test.", "A", tcp=tcp, timeout=timeout)
        assert r.rcode() == dns.rcode.NOERROR
        return time.monotonic() - t0


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with FakeUpstream() as up:
        mport = free_port()
        with run_kdns(COREFILE % {"metrics": mport, "upstream": up.addr}) as k:
            s = Server(k, mport, up)
            s.canary()
            yield s
            assert k.proc.poll() is None, k.output
            assert "Traceback" not in k.output, k.output


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_after(s: socket.socket, limit: float) -> float:
    """Seconds until the peer closes ``s`` (EOF or reset), reading and discarding replies."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(65535):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return float("inf")
    return time.monotonic() - t0


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def read_frame(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 2:
        chunk = s.recv(2 - len(head))
        assert chunk, "connection closed"
        head += chunk
    n = struct.unpack("!H", head)[0]
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk, "connection closed"
        body += chunk
    return body


# --- T1 -------------------------------------------------------------------------------------

def test_t1_tcp_timeouts(server: Server) -> None:
    """No first query: closed at 3 s ± 0.5; idle after a query: 10 s ± 1; a length prefix and
    then nothing: 2 s ± 0.5 after the first byte."""
    def silent() -> float:
        with connect(server.port) as s:
            return closed_after(s, 8)

    def idle() -> float:
        with connect(server.port) as s:
            s.sendall(framed(query_wire("canary.test.")))
            read_frame(s)
            return closed_after(s, 15)

    def stalled() -> float:
        with connect(server.port) as s:
            s.sendall(framed(query_wire("canary.test.")))
            read_frame(s)
            s.sendall(b"\x00\x30\x12")  # a prefix and one byte of a 48-byte message
            return closed_after(s, 15)

    with ThreadPoolExecutor(3) as pool:
        fs = [pool.submit(f) for f in (silent, idle, stalled)]
        t_silent, t_idle, t_stalled = (f.result() for f in fs)
    print(f"T1 silent {t_silent:.2f}s idle {t_idle:.2f}s stalled {t_stalled:.2f}s")
    assert 2.5 <= t_silent <= 3.5
    assert 9.0 <= t_idle <= 11.0
    assert 1.5 <= t_stalled <= 2.5


# --- T2 -------------------------------------------------------------------------------------

SLOWLORIS = 300  # the plan says 2,000; 300 keeps the test process's own work small


def test_t2_slowloris(server: Server) -> None:
    """Connections sending 1 byte/s: each closed <= 2.5 s after its first byte; kdns fds stay
    under the TCP cap + 100; the canary keeps answering (UDP and TCP)."""
    async def lori(i: int) -> float:
        await asyncio.sleep(i * 0.002)
        # 50 per source address, below the per-source cap, so every one of them is admitted
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=(f"127.6.{i // 50}.{i % 50 + 1}", 0))
        msg = framed(query_wire("canary.test."))
        first = time.monotonic()
        try:
            for b in msg:
                writer.write(bytes([b]))
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1), 1.0)
                except TimeoutError:
                    continue
                if not data:
                    break
            if not reader.at_eof():  # the whole message went through: kdns must still close
                data = await asyncio.wait_for(reader.read(1), 5.0)
                assert not data
        except (ConnectionError, OSError):
            pass
        writer.close()
        return time.monotonic() - first

    fds: list[int] = []
    canary: list[float] = []

    async def sample(stop: asyncio.Event) -> None:
        while not stop.is_set():
            fds.append(fd_count(server.pid))
            canary.append(await asyncio.to_thread(server.canary))
            canary.append(await asyncio.to_thread(server.canary, True))
            await asyncio.sleep(0.2)

    async def main() -> list[float]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
        lifetimes = await asyncio.gather(*(lori(i) for i in range(SLOWLORIS)))
        stop.set()
        await sampler
        return lifetimes

    lifetimes = asyncio.run(main())
    print(f"T2 max lifetime {max(lifetimes):.2f}s, max fds {max(fds)}, "
          f"canary max {max(canary) * 1000:.1f} ms")
    assert max(lifetimes) <= 2.5 + 1.0  # 2.5 s after the first byte, + 1 s read granularity
    assert max(fds) <= TCP_CAP + 100
    assert max(canary) < 1.0


# --- T3 -------------------------------------------------------------------------------------

def test_t3_connection_caps(server: Server) -> None:
    """1,500 idle connections from 40 sources: the total cap and the per-source cap hold
    (fds <= cap + 100), connections over a cap are closed in < 100 ms, UDP canary answers, and
    after release a new TCP query succeeds within 1 s."""
    base_fds = fd_count(server.pid)
    socks: list[socket.socket] = []
    over_cap_close: list[float] = []
    try:
        # One source tries 100: the per-source cap admits 64.
        for _ in range(100):
            socks.append(connect(server.port, "127.3.0.1"))
        time.sleep(0.3)
        kept = sum(1 for s in socks if not _is_closed(s))
        assert kept == PER_SOURCE_CAP, kept
        # Many sources: the total cap.
        for i in range(1400):
            socks.append(connect(server.port, f"127.4.{i // 35}.{i % 35 + 1}"))
            if i % 200 == 0:
                server.canary()
        time.sleep(0.5)
        fds = fd_count(server.pid)
        assert fds <= base_fds + TCP_CAP + 100, fds
        open_count = sum(1 for s in socks if not _is_closed(s))
        assert open_count <= TCP_CAP, open_count
        # A connection over the cap is closed at once.
        for _ in range(5):
            s = connect(server.port, "127.5.0.1")
            over_cap_close.append(closed_after(s, 2))
            s.close()
        server.canary()
    finally:
        for s in socks:
            s.close()
    t0 = time.monotonic()
    while True:
        try:
            server.canary(tcp=True, timeout=0.5)
            break
        except Exception:
            assert time.monotonic() - t0 < 1.0, "TCP not usable 1 s after release"
    print(f"T3 over-cap close max {max(over_cap_close) * 1000:.1f} ms, fds peak {fds}, "
          f"recovered in {(time.monotonic() - t0) * 1000:.0f} ms")
    assert max(over_cap_close) < 0.1


def _is_closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        s.setblocking(True)


# --- T4 -------------------------------------------------------------------------------------

def test_t4_pipelining_out_of_order(server: Server) -> None:
    """100 queries on one connection, one forwarded to a 1.5 s upstream: all answered with
    matching IDs, the 99 fast ones within 100 ms and before the slow one."""
    ids = random.sample(range(65536), 100)
    slow_id = ids[37]
    payload = b""
    for qid in ids:
        name = "delay-1500.example." if qid == slow_id else "canary.test."
        payload += framed(query_wire(name, qid=qid))
    with connect(server.port) as s:
        s.settimeout(5)
        t0 = time.monotonic()
        s.sendall(payload)
        order: list[tuple[int, float]] = []
        for _ in ids:
            reply = read_frame(s)
            order.append((struct.unpack_from("!H", reply)[0], time.monotonic() - t0))
    got = [qid for qid, _ in order]
    assert sorted(got) == sorted(ids)
    assert got[-1] == slow_id
    fast_times = [t for qid, t in order if qid != slow_id]
    print(f"T4 fast answers within {max(fast_times) * 1000:.1f} ms, slow at {order[-1][1]:.2f}s")
    assert max(fast_times) < 0.1
    assert order[-1][1] >= 1.4


# --- T5 -------------------------------------------------------------------------------------

def test_t5_non_reading_client(server: Server) -> None:
    """Pipeline 100,000 queries and never read: the connection is closed, kdns RSS rises
    < 20 MiB, canary OK. Once kdns's own output buffer passes 256 KiB it stops reading and
    closes after WRITE_TIMEOUT (5 s); while the kernel's socket buffers still absorb the
    answers, the connection is closed by the idle timeout (10 s) instead - either way within
    11.5 s of the client's last byte. (The plan says 10,000 queries; their answers can fit in
    autotuned kernel buffers.)"""
    rss0 = rss_kib(server.pid)
    s = connect(server.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    one = framed(query_wire("canary.test."))
    payload = one * 100_000
    s.setblocking(False)
    sent = 0
    t0 = time.monotonic()
    closed_at = None
    last_sent = 0.0
    peak = rss0
    while time.monotonic() - t0 < 25:
        if sent < len(payload):
            try:
                sent += s.send(payload[sent:sent + 65536])
                last_sent = time.monotonic() - t0
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
        peak = max(peak, rss_kib(server.pid))
        if sent >= len(payload) or (sent and time.monotonic() - t0 > 1):
            # We never read: find out whether kdns has closed by its side's state.
            if _peer_gone(server.port, s):
                closed_at = time.monotonic() - t0
                break
        time.sleep(0.05)
    s.close()
    server.canary()
    print(f"T5 sent {sent} bytes (last at {last_sent:.2f} s), closed after {closed_at}s, "
          f"RSS +{(peak - rss0) / 1024:.1f} MiB")
    # Timed from the client's last byte: on a loaded machine the sending itself takes seconds.
    assert closed_at is not None and closed_at - last_sent < 11.5
    assert peak - rss0 < 20 * 1024


def _peer_gone(port: int, s: socket.socket) -> bool:
    """Whether kdns's side of ``s`` is gone (no ESTABLISHED entry for our local port)."""
    lport = s.getsockname()[1]
    lines: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # kdns's dual-stack socket: tcp6
        with open(table) as f:
            lines += f.readlines()[1:]
    if True:
        for line in lines:
            parts = line.split()
            local, remote, state = parts[1], parts[2], parts[3]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == lport:
                return state not in ("01",)  # 01 = ESTABLISHED
    return True


# --- T6 -------------------------------------------------------------------------------------

GARBAGE = {
    "runt": framed(b"\x12\x34\x01\x00\x00\x01"),
    "response": framed(dns.message.make_response(dns.message.make_query("a.test.", "A"))
                       .to_wire()),
    "zero-length": b"\x00\x00",
    "prefix-larger-than-data-then-eof": b"\x01\x00" + b"\x00" * 20,
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_t6_tcp_garbage_closes(server: Server, case: str) -> None:
    """Garbage on TCP: connection closed <= 1 s, slot freed (fds back to baseline ± 2 within
    2 s), process alive."""
    base = fd_count(server.pid)
    with connect(server.port) as s:
        s.sendall(GARBAGE[case])
        if case.endswith("then-eof"):
            s.shutdown(socket.SHUT_WR)
        took = closed_after(s, 3)
    deadline = time.monotonic() + 2
    while fd_count(server.pid) > base + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"T6 {case}: closed in {took * 1000:.0f} ms")
    assert took <= 1.0
    assert fd_count(server.pid) <= base + 2
    server.canary()
    server.canary(tcp=True)


def test_t6_half_close_during_reply_frees_slot(server: Server) -> None:
    """A client that half-closes right after a slow query still gets its answer, then the
    connection is closed and the slot freed."""
    base = fd_count(server.pid)
    with connect(server.port) as s:
        s.sendall(framed(query_wire("delay-300.example.")))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(3)
        reply = read_frame(s)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR
        assert closed_after(s, 2) < 1.0
    deadline = time.monotonic() + 2
    while fd_count(server.pid) > base + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fd_count(server.pid) <= base + 2


# --- T7 -------------------------------------------------------------------------------------

FLOOD_SECONDS = 10.0  # the plan says 60 s; 10 s shows the plateau on this machine


@dataclass
class Flood:
    sent: int
    answers: dict[int, int]
    rss_before: int
    rss_peak: int
    recovered: float | None  # seconds until the canary's p99 < 5 ms again


@pytest.fixture(scope="module")
def flood(server: Server) -> Flood:
    """Unique random names (all misses) toward a 200 ms upstream, at the maximum rate two
    sender threads reach, for FLOOD_SECONDS; then the canary is probed for up to 12 s."""
    rss0 = rss_kib(server.pid)
    stop = threading.Event()
    sent = [0]
    answers: dict[int, int] = {}

    def send(n: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            rnd = random.Random(n)
            while not stop.is_set():
                for _ in range(200):
                    name = f"delay-200.r{rnd.getrandbits(48):x}.flood.example."
                    try:
                        s.sendto(query_wire(name), ("127.0.0.1", server.port))
                        sent[0] += 1
                    except BlockingIOError:
                        break
                while True:
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        break
                    rc = data[3] & 0xF
                    answers[rc] = answers.get(rc, 0) + 1
                time.sleep(0.001)

    samples: list[int] = []
    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < FLOOD_SECONDS:
        samples.append(rss_kib(server.pid))
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    assert server.k.proc.poll() is None, server.k.output
    recovered = None
    t1 = time.monotonic()
    while time.monotonic() - t1 < 12:
        res = udp_probe(server.port, ["canary.test."], qps=100, duration=0.5, timeout=0.5)
        samples.append(rss_kib(server.pid))
        if res.failures == 0 and res.p(0.99) < 0.005:
            recovered = time.monotonic() - t1
            break
    f = Flood(sent[0], answers, rss0, max(samples), recovered)
    print(f"T7 sent {f.sent} in {FLOOD_SECONDS}s, replies by rcode {answers}, "
          f"RSS +{(f.rss_peak - rss0) / 1024:.1f} MiB, canary p99 < 5 ms after {recovered} s")
    return f


def test_t7_udp_flood_memory_bounded(server: Server, flood: Flood) -> None:
    """In-flight work is bounded: RSS <= baseline + 64 MiB at every sample, no crash, the
    overload is answered REFUSED (forward's max_concurrent) or shed, never queued unbounded."""
    assert flood.rss_peak - flood.rss_before < 64 * 1024
    # The excess was shed (in-flight cap, kernel queue) or REFUSED (forward's max_concurrent,
    # reached only when the offered rate exceeds 1,000 / 0.2 s): never queued without limit.
    assert sum(flood.answers.values()) < flood.sent
    shed = metric_value(server.metrics, "kdns_udp_dropped_total")
    refused = metric_value(server.metrics, "coredns_forward_max_concurrent_rejects_total")
    print(f"T7 counted: {shed:.0f} shed by kdns (queue timeout, in-flight cap), "
          f"{refused:.0f} REFUSED by forward's max_concurrent")
    assert shed + refused > 0
    server.canary()


def test_t7_canary_recovers_within_5s(flood: Flood) -> None:
    """The kernel queue holds ~10,000 flood datagrams (seconds of slow-path work): kdns drops
    slow-path queries that waited > 1 s in it before parsing them (kdns/server/udp.py), so the
    backlog a canary meets after the flood is at most ~1 s of work plus the in-flight queries."""
    assert flood.recovered is not None and flood.recovered <= 5.0


# --- T8 -------------------------------------------------------------------------------------

T8_FLOOD_SECONDS = 4.0
T8_SNDBUF = 4096  # the kernel doubles it and enforces a floor of ~4.6 KiB: a handful of replies
T8_ADDRS = ("10.253.8.1", "10.253.8.2")  # client side, kdns side of a veth pair
T8_COREFILE = """\
.:%(port)d {
    prometheus 127.0.0.1:%(metrics)d
    hosts {
%(records)s
    }
}
"""
MIB = 1024 * 1024


def _ns_sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """Namespaces (client, server) joined by a veth pair whose server side sends at 1 Mbit/s
    (tbf): replies wait in the qdisc, charged to kdns's tiny send buffer, so sendto blocks."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, tc)")
    tag = secrets.token_hex(3)
    cli, srv = f"kt8c-{tag}", f"kt8s-{tag}"
    _ns_sh("ip", "netns", "add", cli)
    try:
        _ns_sh("ip", "netns", "add", srv)
        try:
            _ns_sh("ip", "link", "add", f"t8c{tag}", "netns", cli, "type", "veth",
                   "peer", "name", f"t8s{tag}", "netns", srv)
            for ns, dev, addr in ((cli, f"t8c{tag}", T8_ADDRS[0]), (srv, f"t8s{tag}", T8_ADDRS[1])):
                _ns_sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
                _ns_sh("ip", "-n", ns, "link", "set", dev, "up")
                _ns_sh("ip", "-n", ns, "link", "set", "lo", "up")
            try:
                _ns_sh("tc", "-n", srv, "qdisc", "add", "dev", f"t8s{tag}", "root", "tbf",
                       "rate", "1mbit", "burst", "16kb", "limit", "64mb")
            except subprocess.CalledProcessError as e:
                pytest.skip(f"tc tbf unavailable: {e.stderr.decode().strip()}")
            yield cli, srv
        finally:
            subprocess.run(["ip", "netns", "delete", srv], check=False)
    finally:
        subprocess.run(["ip", "netns", "delete", cli], check=False)


@pytest.mark.root
def test_t8_send_buffer_pressure_bounded(veth_pair: tuple[str, str], tmp_path: Path) -> None:
    """kdns's UDP send buffer shrunk to a few replies (test-only KDNS_TEST_UDP_SNDBUF) behind a
    1 Mbit/s link, flooded with fast-path queries: the reply queue stays <= 1 MiB at every
    sample, the replies beyond it are dropped and counted, RSS stays bounded."""
    cli, srv = veth_pair
    port, metrics = 5300, 9153  # inside the server namespace: nothing else listens there
    records = "\n".join(f"        192.0.2.{i} big.t8.test" for i in range(1, 21))
    conf = tmp_path / "Corefile"
    conf.write_text(T8_COREFILE % {"port": port, "metrics": metrics, "records": records})
    proc = subprocess.Popen(
        ["ip", "netns", "exec", srv, sys.executable, "-m", "kdns", "-conf", str(conf)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", KDNS_TEST_UDP_SNDBUF=str(T8_SNDBUF)))
    try:
        def scrape() -> tuple[float, float]:
            return (metric_value(metrics, "kdns_udp_send_queue_bytes"),
                    metric_value(metrics, "kdns_udp_dropped_total", 'reason="send_buffer"'))

        def started() -> None:
            deadline = time.monotonic() + 15
            while True:
                try:
                    scrape()
                    return
                except OSError:
                    assert proc.poll() is None, "kdns exited"
                    assert time.monotonic() < deadline, "kdns did not start"
                    time.sleep(0.1)

        in_netns(srv, started)
        query = query_wire("big.t8.test.")
        server = (T8_ADDRS[1], port)

        def first_answer() -> int:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.sendto(query, server)
                return len(s.recv(4096))

        reply_size = in_netns(cli, first_answer)  # also stores it for the fast path
        rss0 = rss_kib(proc.pid)
        stop = threading.Event()
        sent = [0]

        def flood() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                while not stop.is_set():
                    for _ in range(100):
                        try:
                            s.sendto(query, server)
                            sent[0] += 1
                        except BlockingIOError:
                            time.sleep(0.001)

        samples: list[tuple[float, float, int]] = []

        def sample() -> None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < T8_FLOOD_SECONDS:
                queued, dropped = scrape()
                samples.append((queued, dropped, rss_kib(proc.pid)))
                time.sleep(0.05)

        sender = threading.Thread(target=lambda: in_netns(cli, flood))
        sender.start()
        try:
            in_netns(srv, sample)
        finally:
            stop.set()
            sender.join()
        assert proc.poll() is None, "kdns died"
        peak_queue = max(q for q, _, _ in samples)
        dropped = samples[-1][1]
        rss_peak = max(r for _, _, r in samples)
        print(f"T8 {sent[0]} queries of {reply_size}-byte replies in {T8_FLOOD_SECONDS}s, "
              f"{len(samples)} samples: reply queue peak {peak_queue / MIB:.2f} MiB, "
              f"{dropped:.0f} replies dropped, RSS +{(rss_peak - rss0) / 1024:.1f} MiB")
        assert peak_queue <= MIB
        assert peak_queue > MIB / 2, "the reply queue never filled: no send-buffer pressure"
        assert dropped > 0
        assert rss_peak - rss0 < 32 * 1024
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (proc.stdout.read() if proc.stdout else "")
