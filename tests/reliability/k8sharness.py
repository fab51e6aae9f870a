"""A kdns process serving a fake cluster (tests/fakeapi) and forwarding to a fake upstream, with
a background prober that checks every answer against the expected state."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.message
import dns.rcode

from tests.fakeapi import objects as k8s
from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.reliability.helpers import http_status, wait_status
from tests.upstream.fakeupstream import FakeUpstream

NS = "rel"
RBAC_ALLOWED = {(verb, group, resource) for verb in ("list", "watch")
                for group, resource in (("", "services"), ("", "namespaces"),
                                        ("discovery.k8s.io", "endpointslices"))}
COREFILE = """\
%(cluster_block)s
.:{port} {
    errors
    health 127.0.0.1:%(health)d {
        lameduck %(lameduck)s
    }
    ready 127.0.0.1:%(ready)d
    prometheus 127.0.0.1:%(metrics)d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %(api)s
        startup_timeout %(startup)s
    }
    forward . %(upstream)s
    %(cache)s
}
"""


CLUSTER_BLOCK = """\
cluster.local:{port} {
    kubernetes {
        endpoint %(api)s
    }
    cache 30
}"""


def svc_ip(i: int) -> str:
    return f"10.97.{i // 250}.{i % 250 + 1}"


def svc_name(i: int) -> str:
    return f"svc{i}.{NS}.svc.cluster.local."


def base_objects(n: int) -> list[dict[str, object]]:
    return [k8s.namespace(NS)] + [k8s.service(NS, f"svc{i}", cluster_ip=svc_ip(i))
                                  for i in range(n)]


@dataclass
class Cluster:
    api: FakeApiServer
    upstream: FakeUpstream
    k: KdnsProcess
    health: int
    ready: int
    metrics: int

    @property
    def port(self) -> int:
        return self.k.port

    def ready_status(self) -> int | None:
        return http_status(f"http://127.0.0.1:{self.ready}/ready")

    def health_status(self, timeout: float = 2.0) -> int | None:
        return http_status(f"http://127.0.0.1:{self.health}/health", timeout=timeout)


@contextmanager
def cluster(n_services: int = 20, *, lameduck: str = "0s", startup: str = "1s",
            api_down: bool = False, wait: bool = True, cache: bool = True,
            cluster_block: bool = False) -> Iterator[Cluster]:
    """``cache=False`` drops ``cache 30`` (which, as in CoreDNS, keeps a cluster answer up to
    its 5 s TTL, so a change is seen by a client only after that: tests of how fast kdns's own
    state follows the API turn it off). ``cluster_block=True`` serves cluster.local from its
    own server block (kubernetes + cache), so kdns's metrics separate its latency."""
    with FakeApiServer(bookmark_interval=0.5) as api, FakeUpstream() as up:
        api.put_many(base_objects(n_services))
        if api_down:
            api.down()
        ports = {"health": free_port(), "ready": free_port(), "metrics": free_port()}
        text = COREFILE % {**ports, "lameduck": lameduck, "api": api.url, "startup": startup,
                           "upstream": up.addr, "cache": "cache 30" if cache else "",
                           "cluster_block": CLUSTER_BLOCK % {"api": api.url} if cluster_block
                           else ""}
        with run_kdns(text, wait=wait) as k:
            c = Cluster(api, up, k, **ports)
            if wait:  # the side HTTP servers are bound after the DNS listeners
                wait_status(f"http://127.0.0.1:{c.metrics}/metrics", 200)
            yield c
            assert "Traceback" not in k.output, k.output
        # S3: the RBAC audit of every API request this kdns made.
        records = api.requests()
        assert {r.method for r in records} <= {"GET"}
        assert {r.rbac for r in records} <= RBAC_ALLOWED, {r.rbac for r in records}


@dataclass
class ProbeStats:
    sent: int = 0
    wrong: list[str] = field(default_factory=list)  # unexpected rcode or address
    timeouts: int = 0
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(len(s) * q))] if s else float("nan")


class Prober:
    """Paced UDP queries for ``svc<i>`` (i in ``indexes``) in a thread; any answer that is
    not NOERROR with the service's ClusterIP is recorded as wrong."""

    def __init__(self, port: int, indexes: list[int], qps: float = 500) -> None:
        self.port = port
        self.indexes = indexes
        self.qps = qps
        self.stats = ProbeStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        st = self.stats
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", self.port))
            s.settimeout(1.0)
            start = time.monotonic()
            n = 0
            while not self._stop.is_set():
                slot = start + n / self.qps
                now = time.monotonic()
                if slot > now:
                    time.sleep(slot - now)
                i = self.indexes[n % len(self.indexes)]
                n += 1
                q = dns.message.make_query(svc_name(i), "A")
                q.id = random.randrange(65536)
                t0 = time.monotonic()
                s.send(q.to_wire())
                st.sent += 1
                while True:
                    try:
                        data = s.recv(65535)
                    except TimeoutError:
                        st.timeouts += 1
                        break
                    if struct.unpack_from("!H", data)[0] != q.id:
                        continue
                    st.latencies.append(time.monotonic() - t0)
                    r = dns.message.from_wire(data)
                    got = [rd.address for rr in r.answer for rd in rr]
                    if r.rcode() != dns.rcode.NOERROR or got != [svc_ip(i)]:
                        st.wrong.append(f"{svc_name(i)} {dns.rcode.to_text(r.rcode())} {got}")
                    break
