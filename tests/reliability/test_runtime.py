"""P1-P4, P7: Python runtime robustness (reliability.md section 9.3 E)."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.rrset
import pytest

from kdns.chain import Chain, Listener
from kdns.k8s.client import ApiClient
from kdns.k8s.config import ApiConfig
from kdns.k8s.objects import reduce_service
from kdns.k8s.reflector import Reflector, ReflectorTiming
from kdns.k8s.resources import SERVICES
from kdns.metrics import ServerStats
from kdns.plugin import Request
from kdns.query import QueryProcessor
from tests.fakeapi import objects as k8s
from tests.fakeapi.app import FakeApi
from tests.kdnsproc import free_port, run_kdns
from tests.reliability.helpers import metric_value, query_wire, rss_kib, wait_status

ROOT = Path(__file__).resolve().parents[2]


# --- P1 ----------------------------------------------------------------------------------

class FaultyPlugin:
    """Answers every name, but raises (a plugin bug) for ``boom.test.``."""

    name = "faulty"

    async def serve(self, req: Request) -> dns.message.Message:
        if req.qname == "boom.test.":
            raise RuntimeError("injected fault in record synthesis")
        r = req.reply(aa=True, by=self.name)
        r.answer.append(dns.rrset.from_text(req.name, 5, "IN", "A", "10.0.0.1"))
        return r


async def test_p1_exception_isolation(caplog: pytest.LogCaptureFixture) -> None:
    """A query whose handling raises gets SERVFAIL at once (<= 5 ms), counted as a panic; the
    next 10,000 queries are unaffected; 200 faults in a burst log at most 1 line/s."""
    lst = Listener("dns", 53)
    plugin = FaultyPlugin()
    lst.zones["."] = Chain((".",), plugin, [plugin], [plugin.name])  # type: ignore[list-item]
    stats = ServerStats()
    p = QueryProcessor(lst, stats=stats)
    caplog.set_level(logging.ERROR, logger="kdns")
    t0 = time.perf_counter()
    out = await p.process(query_wire("boom.test."), ("127.0.0.1", 1), "udp")
    took = time.perf_counter() - t0
    assert out is not None and out[3] & 0xF == dns.rcode.SERVFAIL
    assert stats.panics == 1
    good = 0
    for i in range(10_000):
        wire = query_wire(f"n{i}.test.")
        out = p.fast(wire, ("127.0.0.1", 1), "udp") or await p.process(
            wire, ("127.0.0.1", 1), "udp")
        good += out is not None and out[3] & 0xF == dns.rcode.NOERROR
    assert good == 10_000
    caplog.clear()
    t1 = time.monotonic()
    for _ in range(200):
        await p.process(query_wire("boom.test."), ("127.0.0.1", 1), "udp")
    elapsed = time.monotonic() - t1
    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    print(f"P1 SERVFAIL in {took * 1000:.2f} ms, 10,000 after it OK, panics {stats.panics}, "
          f"{len(lines)} log lines for 200 faults in {elapsed:.2f}s")
    assert took <= 0.005
    assert stats.panics == 201
    assert len(lines) <= 1 + int(elapsed)


# --- P2 ----------------------------------------------------------------------------------

class FlakySink:
    """A store whose upsert raises once (a bug in the consumer of watch events)."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.raised = False

    def replace(self, items: dict[str, Any]) -> None:
        self.items = dict(items)

    def upsert(self, key: str, item: Any) -> None:
        if not self.raised:
            self.raised = True
            raise RuntimeError("injected fault in the watch consumer")
        self.items[key] = item

    def delete(self, key: str) -> None:
        self.items.pop(key, None)


async def test_p2_watch_loop_survives_a_crash() -> None:
    """An exception inside the watch loop does not kill the reflector: it restarts (<= 1 s,
    then backoff), relists (counted as kdns_k8s_relists{reason="error"}) and ends with the
    right data (the object whose event crashed it included)."""
    from kdns.k8s import metrics as k8s_metrics
    relists = k8s_metrics.RELISTS.labels("services", "error")
    before = relists._value.get()
    async with FakeApi(bookmark_interval=0.5) as api:
        api.put(k8s.namespace("ns"))
        client = ApiClient(ApiConfig(base_url=api.url))
        sink = FlakySink()
        r: Reflector[Any] = Reflector(client, SERVICES, reduce_service, sink,
                                      timing=ReflectorTiming(backoff_initial=0.2))
        task = asyncio.create_task(r.run())
        try:
            await asyncio.wait_for(r.synced.wait(), 5)
            t0 = time.monotonic()
            api.put(k8s.service("ns", "a", cluster_ip="10.0.0.1"))
            api.put(k8s.service("ns", "b", cluster_ip="10.0.0.2"))
            while {"ns/a", "ns/b"} - set(sink.items):
                assert not task.done(), f"reflector died: {task.exception()!r}"
                assert time.monotonic() - t0 < 3, sink.items
                await asyncio.sleep(0.02)
            took = time.monotonic() - t0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
    print(f"P2 reflector recovered from a crash in {took:.2f}s")
    assert sink.raised
    assert took <= 1.5
    assert relists._value.get() == before + 1


# --- P3 ----------------------------------------------------------------------------------

REQUEST_PATH = ["kdns/query.py", "kdns/chain.py", "kdns/plugin.py", "kdns/wire",
                "kdns/server/udp.py", "kdns/server/tcp.py"] + [
    f"plugins/{p}/handler.py" for p in ("any", "cache", "errors", "forward", "hosts",
                                        "kubernetes", "loadbalance", "log", "loop", "whoami")]
BLOCKING = re.compile(r"\btime\.sleep\(|^\s*import requests|\brequests\.(get|post|Session)\b|"
                      r"\bsocket\.getaddrinfo\(|\bsubprocess\.|\burllib\.request\b|\bopen\(")
# Reviewed file reads that do not run on the event loop while serving.
OFF_LOOP = {
    "plugins/hosts/handler.py": "_read_and_build runs in a worker thread (asyncio.to_thread)",
    "plugins/loadbalance/handler.py": "update_weights: weight file re-read at start/reload",
}


def test_p3_no_blocking_calls_in_request_path() -> None:
    """Static lint: no time.sleep, requests, getaddrinfo, subprocess, urllib or open() in the
    modules a query goes through."""
    hits = []
    for rel in REQUEST_PATH:
        path = ROOT / rel
        for f in ([path] if path.is_file() else sorted(path.glob("*.py"))):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if BLOCKING.search(code) and not (
                        "open(" in code and str(f.relative_to(ROOT)) in OFF_LOOP):
                    hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []


def test_p3_loop_lag_during_relist_and_reload() -> None:
    """Max loop lag < 50 ms while 3,000 services are relisted and while the Corefile is
    reloaded, seen as the worst latency of a 200 qps canary of memoised cluster names (this
    includes the client's own scheduling on a shared machine)."""
    from tests.reliability.k8sharness import Prober, cluster, svc_ip, svc_name
    with cluster(n_services=3000, cache=False) as c:
        deadline = time.monotonic() + 30
        while c.k.query(svc_name(2999)).rcode() != dns.rcode.NOERROR:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert [rd.address for rr in c.k.query(svc_name(5)).answer for rd in rr] == [svc_ip(5)]
        relists0 = metric_value(c.metrics, "kdns_k8s_relists_total")
        with Prober(c.port, list(range(20)), qps=200) as p:
            time.sleep(0.5)
            for _ in range(3):
                c.api.expire_watches()
                time.sleep(1.5)
            c.k.corefile_path.write_text(c.k.corefile_path.read_text() + "\n")
            c.k.signal(10)  # SIGUSR1: reload
            c.k.wait_for_line("Reloading complete", timeout=20)
            time.sleep(1.0)
        relists = metric_value(c.metrics, "kdns_k8s_relists_total") - relists0
        st = p.stats
    worst = max(st.latencies)
    print(f"P3 {relists:.0f} relists + 1 reload under a 200 qps canary: {st.sent} probes, "
          f"{len(st.wrong)} wrong, p99 {st.p(0.99) * 1000:.1f} ms, worst {worst * 1000:.1f} ms")
    assert relists >= 3
    assert st.wrong == [] and st.timeouts == 0
    assert worst < 0.050


# --- P4 ----------------------------------------------------------------------------------

P4_SECONDS = 15.0  # the plan says 60 s
P4_COREFILE = """\
.:{port} {
    prometheus 127.0.0.1:%(metrics)d
    hosts {
        10.0.0.1 known.test
        fallthrough
    }
    cache 30 {
        success 1000
        denial 1000
    }
    forward . %(upstream)s
}
"""


def test_p4_random_name_flood_memory_bounded() -> None:
    """Unique random names from ~50,000 source addresses in 127.0.0.0/8 (one short-lived socket
    each) at the maximum rate for 15 s: cache entries <= capacity at every sample, RSS <=
    baseline + 64 MiB during and after 5 s idle."""
    import random
    import socket
    import threading

    from tests.upstream.fakeupstream import FakeUpstream
    with FakeUpstream() as up:
        mport = free_port()
        with run_kdns(P4_COREFILE % {"metrics": mport, "upstream": up.addr}) as k:
            wait_status(f"http://127.0.0.1:{mport}/metrics", 200)
            for i in range(200):  # warm up every code path before the baseline
                k.query(f"warm{i}.example.")
            rss0 = rss_kib(k.proc.pid)
            stop = threading.Event()
            sources: set[str] = set()

            def flood(seed: int) -> None:
                rnd = random.Random(seed)
                while not stop.is_set():
                    src = (f"127.{rnd.randrange(1, 255)}.{rnd.randrange(256)}."
                           f"{rnd.randrange(1, 255)}")
                    sources.add(src)
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.bind((src, 0))
                        for _ in range(4):
                            s.sendto(query_wire(f"r{rnd.getrandbits(64):x}.example."),
                                     ("127.0.0.1", k.port))

            threads = [threading.Thread(target=flood, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            rss: list[int] = []
            entries: list[float] = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < P4_SECONDS:
                rss.append(rss_kib(k.proc.pid))
                entries.append(metric_value(mport, "coredns_cache_entries"))
                time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join()
            time.sleep(5)
            rss_after = rss_kib(k.proc.pid)
            assert k.proc.poll() is None
            # Still serving; the kernel queue of flood datagrams drains at the slow-path rate
            # first (see T7's xfail), so allow it time.
            t1 = time.monotonic()
            while True:
                try:
                    assert k.query("known.test.", timeout=1.0).rcode() == dns.rcode.NOERROR
                    break
                except dns.exception.Timeout:
                    assert time.monotonic() - t1 < 30, "kdns stopped answering after the flood"
            drained = time.monotonic() - t1 + 5
            assert k.query("after.example.").rcode() == dns.rcode.NOERROR
    print(f"P4 {len(sources)} source addresses, cache entries max {max(entries):.0f}, RSS "
          f"{rss0 / 1024:.1f} -> max {max(rss) / 1024:.1f}, after idle {rss_after / 1024:.1f} MiB"
          f"; answering again {drained:.1f}s after the flood")
    assert 900 <= max(entries) <= 2000  # the cache filled up, and not beyond its capacity
    assert max(rss) - rss0 <= 64 * 1024
    assert rss_after - rss0 <= 64 * 1024


# --- P7 ----------------------------------------------------------------------------------

BAD_CONFIGS = {
    "invalid CIDR": ".:{port} {\n    kubernetes 10.0.0.0/33\n}\n",
    "unknown key": ".:{port} {\n    health {\n        bogus 1\n    }\n}\n",
    "negative duration": ".:{port} {\n    health {\n        lameduck -5s\n    }\n}\n",
    "bad duration": ".:{port} {\n    forward . 127.0.0.1 {\n        health_check 0.0.0s\n"
                    "    }\n}\n",
    "zero TTL": ".:{port} {\n    cache 0\n}\n",
    "huge port": ".:99999999999999999999 {\n    whoami\n}\n",
    "huge capacity": ".:{port} {\n    cache {\n        success 99999999999999999999999\n"
                     "    }\n}\n",
    "unknown directive": ".:{port} {\n    frobnicate\n}\n",
    "unclosed block": ".:{port} {\n    whoami\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_p7_invalid_config_refused_with_one_line(case: str, tmp_path: Path) -> None:
    """Invalid configs are refused at start: non-zero exit within 10 s, one error line, no
    traceback."""
    conf = tmp_path / "Corefile"
    conf.write_text(BAD_CONFIGS[case].replace("{port}", str(free_port())))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "kdns", "-conf", str(conf)], capture_output=True,
                         text=True, timeout=20)
    took = time.monotonic() - t0
    text = (out.stdout + out.stderr).strip()
    errors = [line for line in text.splitlines() if "rror" in line or "FATAL" in line]
    print(f"P7 {case}: exit {out.returncode} in {took:.2f}s: {text!r}")
    assert out.returncode != 0
    assert "Traceback" not in text
    assert len(errors) == 1, text
    assert took < 10
