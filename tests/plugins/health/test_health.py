"""health in the real kdns: any method is 200 OK, the self-probe is recorded, and lameduck keeps
DNS answering (with /health 200 and /ready 503) for the whole window after SIGTERM."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import aiohttp
import dns.rcode
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import kdns.plugins.health.metrics
from kdns.plugins.health.handler import Health
from kdns.plugins.health.parse import HealthConfig
from tests.kdnsproc import KdnsProcess, free_port
from tests.plugins.kdnsports import run_kdns_ports


def http(method: str, url: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def kdns() -> Iterator[tuple[KdnsProcess, int, int]]:
    corefile = (".:{port} {\n    health 127.0.0.1:{http0}\n"
                "    prometheus 127.0.0.1:{http1}\n    whoami\n}\n")
    with run_kdns_ports(corefile, http=2) as (k, (hport, mport)):
        yield k, hport, mport


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_any_method_is_200_ok(kdns: tuple[KdnsProcess, int, int], method: str) -> None:
    _, hport, _ = kdns
    assert http(method, f"http://127.0.0.1:{hport}/health") == (200, b"OK")


def test_other_paths_are_not_health(kdns: tuple[KdnsProcess, int, int]) -> None:
    _, hport, _ = kdns
    assert http("GET", f"http://127.0.0.1:{hport}/ready")[0] == 404


def test_self_probe_is_recorded_every_second(kdns: tuple[KdnsProcess, int, int]) -> None:
    _, _, mport = kdns

    def count() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=3) as r:
            text = r.read().decode()
        values = {s.name: s.value for f in text_string_to_metric_families(text)
                  for s in f.samples if s.name.startswith("coredns_health_request_")}
        assert values["coredns_health_request_failures_total"] == 0
        return values["coredns_health_request_duration_seconds_count"]

    first = count()
    deadline = time.monotonic() + 8  # two probes take ~2 s; leave room for a loaded machine
    while count() - first < 2:
        assert time.monotonic() < deadline, "fewer than 2 self-probes recorded in 8 s"
        time.sleep(0.2)


async def test_probe_failure_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    h = Health(_NoNext(), HealthConfig(f"127.0.0.1:{port}"))
    failures = sample("coredns_health_request_failures_total")
    observed = sample("coredns_health_request_duration_seconds_count")
    async with aiohttp.ClientSession() as session:
        await h.probe(session)
    assert sample("coredns_health_request_failures_total") == failures + 1
    assert sample("coredns_health_request_duration_seconds_count") == observed + 1
    assert any(f'Local health request to "http://127.0.0.1:{port}/health" failed:'
               in r.getMessage() for r in caplog.records)


def sample(name: str) -> float:
    v = prometheus_client.REGISTRY.get_sample_value(name)
    assert v is not None, name
    return v


class _NoNext:
    name = "none"

    async def serve(self, req: object) -> object:
        raise AssertionError("not called")


def test_lameduck_keeps_serving_then_exits() -> None:
    corefile = (".:{port} {\n    health 127.0.0.1:{http0} {\n        lameduck 2s\n    }\n"
                "    ready 127.0.0.1:{http1}\n    whoami\n}\n")
    with run_kdns_ports(corefile, http=2) as (k, (hport, rport)):
        assert http("GET", f"http://127.0.0.1:{rport}/ready") == (200, b"OK")
        start = time.monotonic()
        k.signal(signal.SIGTERM)
        k.wait_for_line("[INFO] plugin/health: Going into lameduck mode for 2s", timeout=3)
        checks = 0
        while time.monotonic() - start < 1.5:
            assert k.query("during.lameduck.", "A").rcode() == dns.rcode.NOERROR
            assert http("GET", f"http://127.0.0.1:{hport}/health") == (200, b"OK")
            assert http("GET", f"http://127.0.0.1:{rport}/ready") == (503, b"Shutting down")
            checks += 1
            time.sleep(0.1)
        assert checks >= 2
        k.proc.wait(10)
        assert k.proc.returncode == 0
        assert time.monotonic() - start >= 2.0
        assert "[INFO] SIGTERM: Shutting down servers then terminating" in k.lines


def test_health_ready_and_metrics_can_share_one_port() -> None:
    corefile = (".:{port} {\n    health 127.0.0.1:{http0}\n    ready 127.0.0.1:{http0}\n"
                "    prometheus 127.0.0.1:{http0}\n    whoami\n}\n")
    with run_kdns_ports(corefile, http=1) as (_, (port,)):
        base = f"http://127.0.0.1:{port}"
        assert http("GET", f"{base}/health") == (200, b"OK")
        assert http("GET", f"{base}/ready") == (200, b"OK")
        status, body = http("GET", f"{base}/metrics")
        assert status == 200 and b"coredns_health_request_failures_total" in body
