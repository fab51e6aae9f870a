"""prometheus in the real kdns: /metrics after real queries, labels, exact buckets, no _created."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kdns.metrics import SIZE_BUCKETS, SLIM_TIME_BUCKETS, TIME_BUCKETS
from tests.kdnsproc import KdnsProcess
from tests.plugins.kdnsports import run_kdns_ports


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[KdnsProcess, int, int]]:
    corefile = """.:{port} {
    prometheus 127.0.0.1:{http0}
    health 127.0.0.1:{http2}
    ready 127.0.0.1:{http3}
    whoami
}
example.net.:{port} {
    prometheus 127.0.0.1:{http1}
    whoami
}
hosts.:{port} {
    prometheus 127.0.0.1:{http0}
    hosts {
        10.0.0.1 www.hosts.
    }
}
"""
    with run_kdns_ports(corefile, http=4) as (k, (mport, mport2, _, _)):
        yield k, mport, mport2


def scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.headers["Content-Type"], r.read().decode()


def samples(text: str, name: str) -> list[Sample]:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == name]


def value(text: str, name: str, **labels: str) -> float:
    found = [s.value for s in samples(text, name) if s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}\n" + "\n".join(
        line for line in text.splitlines() if line.startswith(name))
    return found[0]


def test_requests_counted_with_coredns_labels(setup: tuple[KdnsProcess, int, int]) -> None:
    k, mport, _ = setup
    _, before = scrape(mport)
    server = f"dns://:{k.port}"
    for _ in range(3):
        k.query("a.example.org.", "A")
    k.query("b.example.org.", "AAAA", tcp=True)
    k.query("c.example.org.", "HINFO")
    k.query("d.example.net.", "MX", want_dnssec=True)
    ctype, text = scrape(mport)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    base = {"server": server, "view": "", "family": "1"}

    def delta(name: str, **labels: str) -> float:
        old = [s.value for s in samples(before, name) if s.labels == labels]
        return value(text, name, **labels) - (old[0] if old else 0)

    assert delta("coredns_dns_requests_total", zone=".", proto="udp", type="A", **base) == 3
    assert delta("coredns_dns_requests_total", zone=".", proto="tcp", type="AAAA", **base) == 1
    assert delta("coredns_dns_requests_total", zone=".", proto="udp", type="other", **base) == 1
    assert delta("coredns_dns_requests_total", zone="example.net.", proto="udp", type="MX",
                 **base) == 1
    assert delta("coredns_dns_responses_total", server=server, zone=".", view="",
                 rcode="NOERROR", plugin="whoami") == 5
    assert delta("coredns_dns_do_requests_total", server=server, zone="example.net.",
                 view="") == 1


def test_replayed_answers_are_counted(setup: tuple[KdnsProcess, int, int]) -> None:
    """hosts answers are served from the wire fast path after the first: all must count."""
    k, mport, _ = setup
    for _ in range(6):
        assert k.query("www.hosts.", "A").answer
    _, text = scrape(mport)
    server = f"dns://:{k.port}"
    assert value(text, "coredns_dns_requests_total", server=server, zone="hosts.", view="",
                 proto="udp", family="1", type="A") == 6
    assert value(text, "coredns_dns_responses_total", server=server, zone="hosts.", view="",
                 rcode="NOERROR", plugin="hosts") == 6


def test_bucket_lists_are_coredns_exact(setup: tuple[KdnsProcess, int, int]) -> None:
    k, mport, _ = setup
    k.query("bucket.example.org.", "A")
    _, text = scrape(mport)

    def les(name: str) -> list[str]:
        out: list[str] = []
        for s in samples(text, name + "_bucket"):
            if s.labels.get("zone", ".") == "." and s.labels.get("proto", "udp") == "udp":
                out.append(s.labels["le"])
        return out

    def go(bounds: tuple[float, ...]) -> list[str]:
        return [repr(float(b)) for b in bounds] + ["+Inf"]

    assert les("coredns_dns_request_duration_seconds") == go(TIME_BUCKETS)
    assert les("coredns_dns_request_size_bytes") == go(SIZE_BUCKETS)
    assert les("coredns_dns_response_size_bytes") == go(SIZE_BUCKETS)
    assert les("coredns_health_request_duration_seconds") == go(SLIM_TIME_BUCKETS)
    assert go(TIME_BUCKETS)[:3] == ["0.00025", "0.0005", "0.001"] and "8.192" in les(
        "coredns_dns_request_duration_seconds")
    assert "8291.0" in go(SIZE_BUCKETS)


def test_no_created_series_and_core_families(setup: tuple[KdnsProcess, int, int]) -> None:
    _, mport, _ = setup
    _, text = scrape(mport)
    assert "_created" not in text
    for family in ("coredns_build_info", "coredns_panics_total", "process_cpu_seconds_total",
                   "coredns_health_request_failures_total"):
        assert samples(text, family), family
    enabled = {(s.labels["zone"], s.labels["name"])
               for s in samples(text, "coredns_plugin_enabled")}
    assert enabled == {(".", "prometheus"), (".", "whoami"), ("example.net.", "prometheus"),
                       ("example.net.", "whoami"), ("hosts.", "prometheus"), ("hosts.", "hosts")}


def test_every_address_exposes_every_metric(setup: tuple[KdnsProcess, int, int]) -> None:
    k, mport, mport2 = setup
    k.query("same.example.org.", "TXT")
    names1 = {s.name for fam in text_string_to_metric_families(scrape(mport)[1])
              for s in fam.samples}
    names2 = {s.name for fam in text_string_to_metric_families(scrape(mport2)[1])
              for s in fam.samples}
    assert "coredns_dns_requests_total" in names1
    assert names1 == names2
