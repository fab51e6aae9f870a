"""A bounded DNS load generator with exact per-query accounting (for the rolling-update test).

``python -m tests.reliability.loadgen --target 127.0.0.10:53 --qps 5000 --seconds 20`` sends
queries at a fixed rate over ``--sockets`` long-lived connected UDP sockets (glibc-like
connect()), plus every ``--fresh-every``-th query on a new UDP socket and every
``--tcp-every``-th over a new TCP connection; each query is answered, SERVFAILed or lost (no
answer within ``--timeout``). Prints one JSON object: counts, rcodes, and the answers of the
``who.test`` probe names by time (which backend answered when).
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass

import dns.message
import dns.rdatatype


@dataclass
class Pending:
    sent: float
    name: str
    sock: socket.socket
    fresh: bool


BURST = 200


def build(name: str, qid: int) -> bytes:
    q = dns.message.make_query(name, dns.rdatatype.A)
    q.id = qid
    return q.to_wire()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--qps", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sockets", type=int, default=20)
    ap.add_argument("--fresh-every", type=int, default=10)
    ap.add_argument("--tcp-every", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--names", default="web.demo.svc.cluster.local.,db.demo.svc.cluster.local.")
    ap.add_argument("--probe", default="who.test.")
    args = ap.parse_args(argv)
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    names = args.names.split(",")
    sel = selectors.DefaultSelector()
    shared = []
    for _ in range(args.sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(target)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        shared.append(s)
    pending: dict[tuple[int, int], Pending] = {}  # (fileno, id)
    order: deque[tuple[tuple[int, int], float]] = deque()  # (key, sent) in sending order
    counts = {"sent": 0, "answered": 0, "lost": 0, "tcp": 0, "tcp_failed": 0, "errors": 0}
    rcodes: dict[str, int] = {}
    probes: list[tuple[float, str]] = []
    lost_at: list[float] = []
    start = time.monotonic()
    n = 0
    total = int(args.qps * args.seconds)

    def answered(p: Pending, data: bytes) -> None:
        counts["answered"] += 1
        rc = str(data[3] & 0xF)
        rcodes[rc] = rcodes.get(rc, 0) + 1
        if p.name == args.probe and data[3] & 0xF == 0:
            ip = socket.inet_ntoa(data[-4:])
            probes.append((round(p.sent - start, 3), ip))

    while n < total or pending:
        now = time.monotonic()
        burst = 0
        # At most BURST sends between reads: a generator that fell behind (a busy machine)
        # must not fire thousands of queries without reading, or its own receive buffers
        # overflow and the loss is the generator's.
        while n < total and start + n / args.qps <= now and burst < BURST:
            burst += 1
            name = args.probe if n % 5 == 0 else names[n % len(names)]  # fresh ones too
            qid = random.randrange(65536)
            s = shared[n % len(shared)]
            while (s.fileno(), qid) in pending:  # one in-flight query per (socket, ID)
                qid = random.randrange(65536)
            wire = build(name, qid)
            counts["sent"] += 1
            if args.tcp_every and n % args.tcp_every == 1:
                counts["tcp"] += 1
                try:
                    with socket.create_connection(target, timeout=args.timeout) as t:
                        t.sendall(struct.pack("!H", len(wire)) + wire)
                        head = t.recv(2, socket.MSG_WAITALL)
                        body = t.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                        answered(Pending(now, name, t, False), body)
                except (OSError, struct.error):
                    counts["tcp_failed"] += 1
                    counts["lost"] += 1
                    lost_at.append(round(now - start, 3))
            else:
                fresh = bool(args.fresh_every) and n % args.fresh_every == 5
                if fresh:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.connect(target)
                    s.setblocking(False)
                    sel.register(s, selectors.EVENT_READ)
                else:
                    s = shared[n % len(shared)]
                try:
                    s.send(wire)
                except OSError:
                    counts["errors"] += 1
                pending[(s.fileno(), qid)] = Pending(now, name, s, fresh)
                order.append(((s.fileno(), qid), now))
            n += 1
        for key, _ in sel.select(timeout=0.001):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            while True:
                try:
                    data = s.recv(65535)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:  # ICMP port unreachable from a dead backend
                    counts["errors"] += 1
                    continue
                if len(data) < 12:
                    continue
                p = pending.pop((s.fileno(), struct.unpack_from("!H", data)[0]), None)
                if p is None:
                    continue
                answered(p, data)
                if p.fresh:
                    sel.unregister(s)
                    s.close()
                    break
        now = time.monotonic()
        # Oldest first (a scan of every pending query per loop is O(n^2) once behind).
        while order and now - order[0][1] > args.timeout:
            key, sent = order.popleft()
            p = pending.get(key)
            if p is None or p.sent != sent:
                continue  # answered (or the key was reused by a later query)
            del pending[key]
            counts["lost"] += 1
            lost_at.append(round(p.sent - start, 4))
            if p.fresh:
                sel.unregister(p.sock)
                p.sock.close()
    counts["elapsed"] = round(time.monotonic() - start, 3)  # type: ignore[assignment]
    json.dump({"t0": start, "counts": counts, "rcodes": rcodes, "probes": probes,
               "lost_at": lost_at[:100]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
