"""P6 soak: the paced query mix and the check of every answer (see soak.py).

Per 20 queries: 12 cluster names (6 stable ClusterIP services, 3 headless services whose
endpoints churn, 3 ClusterIP services deleted and re-created), 6 external names (forwarded,
then cached), 1 cluster name that never exists and 1 external NXDOMAIN. Queries go over 20
long-lived connected UDP sockets; every 50th is a stable-service query over a new TCP
connection (fd churn inside kdns). A query not answered within ``TIMEOUT_S`` is lost.
"""

from __future__ import annotations

import random
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import dns.message
import dns.rdatatype

from tests.reliability.soakmodel import (
    N_CHURN,
    N_HEADLESS,
    N_STABLE,
    ClusterModel,
    churn_name,
    headless_name,
    missing_name,
    stable_name,
)

TIMEOUT_S = 5.0  # glibc's default resolver timeout
SOCKETS = 20
TCP_EVERY = 50
EXTERNAL_NAMES = 2000
UPSTREAM_ADDR = "192.0.2.1"  # what tests/upstream/fakeupstream.py answers for ext<i>.example.
KINDS = ("cluster", "cluster_nx", "external", "external_nx")
MAX_EXAMPLES = 20


@dataclass
class KindStats:
    sent: int = 0
    answered: int = 0
    lost: int = 0
    rcodes: Counter[int] = field(default_factory=Counter)


@dataclass
class LoadStats:
    kinds: dict[str, KindStats] = field(default_factory=lambda: {k: KindStats() for k in KINDS})
    wrong: int = 0
    stale: int = 0
    external_wrong: int = 0
    examples: list[str] = field(default_factory=list)
    # (cluster?, seconds) since the sampler last took them
    latencies: list[tuple[bool, float]] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)

    def total(self, attr: str) -> int:
        return sum(int(getattr(k, attr)) for k in self.kinds.values())

    def take_latencies(self) -> list[tuple[bool, float]]:
        out, self.latencies = self.latencies, []
        return out


@dataclass
class Pending:
    sent: float
    name: str
    kind: str


def pick(n: int, rng: random.Random) -> tuple[str, str]:
    """(kind, name) of query number ``n``."""
    slot = n % 20
    if slot < 6:
        return "cluster", stable_name(rng.randrange(N_STABLE))
    if slot < 9:
        return "cluster", headless_name(rng.randrange(N_HEADLESS))
    if slot < 12:
        return "cluster", churn_name(rng.randrange(N_CHURN))
    if slot < 18:
        return "external", f"ext{rng.randrange(EXTERNAL_NAMES)}.example."
    if slot == 18:
        return "cluster_nx", missing_name(rng.randrange(1000))
    return "external_nx", f"nxdomain-30-30.n{rng.randrange(500)}.example."


class Load:
    """Sends the mix at ``qps`` to 127.0.0.1:``port`` and judges each reply."""

    def __init__(self, port: int, qps: float, model: ClusterModel) -> None:
        self.target = ("127.0.0.1", port)
        self.qps = qps
        self.model = model
        self.stats = LoadStats()
        self.rng = random.Random(66)
        self._templates: dict[str, bytes] = {}
        self._pending: dict[tuple[int, int], Pending] = {}
        self._sel = selectors.DefaultSelector()
        self._socks = []
        for _ in range(SOCKETS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(self.target)
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ)
            self._socks.append(s)

    def close(self) -> None:
        for s in self._socks:
            self._sel.unregister(s)
            s.close()
        self._sel.close()

    def _wire(self, name: str, qid: int) -> bytes:
        t = self._templates.get(name)
        if t is None:
            t = self._templates[name] = dns.message.make_query(name, "A").to_wire()
        return struct.pack("!H", qid) + t[2:]

    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Send for ``seconds`` (or until ``stop.is_set()``), then wait for the stragglers."""
        start = time.monotonic()
        n = 0
        last_expiry = start
        while True:
            now = time.monotonic()
            done = now - start >= seconds or (stop is not None and stop.is_set())
            if done and not self._pending:
                break
            while not done and start + n / self.qps <= now:
                self._send(n)
                n += 1
            for key, _ in self._sel.select(timeout=0.002):
                self._drain(key.fileobj)  # type: ignore[arg-type]
            if now - last_expiry > 0.1:
                self._expire(now)
                last_expiry = now

    def _send(self, n: int) -> None:
        kind, name = pick(n, self.rng)
        if n % TCP_EVERY == TCP_EVERY - 1:
            self._tcp_query(stable_name(self.rng.randrange(N_STABLE)))
            return
        s = self._socks[n % SOCKETS]
        qid = self.rng.randrange(65536)
        while (s.fileno(), qid) in self._pending:  # one in-flight query per (socket, ID)
            qid = self.rng.randrange(65536)
        self.stats.kinds[kind].sent += 1
        try:
            s.send(self._wire(name, qid))
        except OSError:
            pass  # counted as lost when it times out
        self._pending[(s.fileno(), qid)] = Pending(time.monotonic(), name, kind)

    def _drain(self, s: socket.socket) -> None:
        while True:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:  # kdns gone: the queries time out
                continue
            if len(data) < 12:
                continue
            p = self._pending.pop((s.fileno(), struct.unpack_from("!H", data)[0]), None)
            if p is not None:
                self._judge(p, data, time.monotonic())

    def _expire(self, now: float) -> None:
        old = []
        for key, p in self._pending.items():  # insertion order = send order
            if now - p.sent <= TIMEOUT_S:
                break
            old.append(key)
        for key in old:
            self.stats.kinds[self._pending.pop(key).kind].lost += 1

    def _tcp_query(self, name: str) -> None:
        ks = self.stats.kinds["cluster"]
        ks.sent += 1
        t0 = time.monotonic()
        wire = self._wire(name, self.rng.randrange(65536))
        try:
            with socket.create_connection(self.target, timeout=2.0) as t:
                t.sendall(struct.pack("!H", len(wire)) + wire)
                head = t.recv(2, socket.MSG_WAITALL)
                data = t.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
        except (OSError, struct.error):
            ks.lost += 1
            return
        self._judge(Pending(t0, name, "cluster"), data, time.monotonic())

    def _judge(self, p: Pending, data: bytes, at: float) -> None:
        st = self.stats
        ks = st.kinds[p.kind]
        ks.answered += 1
        st.latencies.append((p.kind.startswith("cluster"), at - p.sent))
        try:
            r = dns.message.from_wire(data)
        except Exception as exc:  # a reply we cannot parse is a wrong answer
            st.wrong += 1
            st.note(f"{p.name}: unparsable reply ({exc})")
            return
        rcode = r.rcode()
        ks.rcodes[rcode] += 1
        if not r.question or r.question[0].name.to_text().lower() != p.name.lower():
            st.wrong += 1
            st.note(f"{p.name}: reply for another question {r.question}")
            return
        addrs = [rd.address for rr in r.answer if rr.rdtype == dns.rdatatype.A for rd in rr]
        if p.kind.startswith("cluster"):
            v = self.model.judge(p.name, rcode, addrs, at)
            if v.wrong:
                st.wrong += 1
                st.note(f"wrong: {v.wrong}")
            elif v.stale:
                st.stale += 1
                st.note(f"stale: {v.stale}")
        elif p.kind == "external" and rcode == 0 and addrs != [UPSTREAM_ADDR]:
            st.external_wrong += 1
            st.note(f"external: {p.name} -> {addrs}")
        elif p.kind == "external_nx" and rcode == 0:
            st.external_wrong += 1
            st.note(f"external: {p.name} NOERROR, wanted NXDOMAIN")
