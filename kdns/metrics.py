"""Server-level DNS metrics counted with plain ints and exported at scrape time.

A labelled prometheus_client ``inc()`` costs ~1.5 µs; a dict increment ~0.1 µs (performance.md),
so the hot path only bumps dicts and this collector turns them into CoreDNS's families:
coredns_dns_{requests_total, responses_total, request_duration_seconds, request_size_bytes,
response_size_bytes, do_requests_total}, coredns_panics_total, coredns_plugin_enabled,
coredns_build_info.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import dns.rcode
import dns.rdatatype
import prometheus_client
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kdns import __version__

prometheus_client.disable_created_metrics()


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Go's ExponentialBuckets: repeated multiplication, as CoreDNS computes them."""
    out, v = [], start
    for _ in range(count):
        out.append(v)
        v *= factor
    return tuple(out)


TIME_BUCKETS: Final = exponential_buckets(0.00025, 2, 16)
FIRST_TIME_BUCKET: Final = TIME_BUCKETS[0]
SLIM_TIME_BUCKETS: Final = exponential_buckets(0.00025, 10, 5)
SIZE_BUCKETS: Final = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000,
                       64000)
DNS_PROG_BUCKETS: Final = exponential_buckets(0.001, 2, 20)

_MONITORED_TYPES: Final = frozenset({
    "A", "AAAA", "CNAME", "DNSKEY", "DS", "MX", "NSEC3", "NSEC", "NS", "PTR", "RRSIG", "SOA",
    "SRV", "TXT", "HTTPS", "SVCB", "IXFR", "AXFR", "ANY",
})
_TYPE_LABEL: dict[int, str] = {}
_RCODE_LABEL: dict[int, str] = {}


def type_label(qtype: int) -> str:
    """CoreDNS's requests_total type label: monitored types by name, everything else 'other'."""
    label = _TYPE_LABEL.get(qtype)
    if label is None:
        try:
            text = dns.rdatatype.to_text(dns.rdatatype.RdataType(qtype))
        except ValueError:
            text = ""
        label = text if text in _MONITORED_TYPES else "other"
        if len(_TYPE_LABEL) < 1024:
            _TYPE_LABEL[qtype] = label
    return label


def rcode_label(rcode: int) -> str:
    label = _RCODE_LABEL.get(rcode)
    if label is None:
        try:
            label = dns.rcode.to_text(dns.rcode.Rcode(rcode))
        except ValueError:
            label = f"RCODE{rcode}"
        _RCODE_LABEL[rcode] = label
    return label


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.total += v

    def observe_many(self, v: float, n: int) -> None:
        self.counts[bisect_left(self.bounds, v)] += n
        self.total += v * n

    def copy(self) -> _Histogram:
        h = _Histogram(self.bounds)
        h.counts = list(self.counts)
        h.total = self.total
        return h

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            acc += n
            out.append((_fmt(bound), float(acc)))
        out.append(("+Inf", float(acc + self.counts[-1])))
        return out


def _fmt(v: float) -> str:
    return repr(float(v))


class FastSlot:
    """Replays of fast-path answers that share every label and both sizes (kdns/wire/fastpath):
    a replay adds 1 to ``n[family]`` and observes its duration; the rest is added at scrape."""

    __slots__ = ("do", "duration", "key", "n", "quick", "quick_total", "req_size", "resp_size")

    def __init__(self, key: tuple[str, str, str, str, str, str], req_size: int, resp_size: int,
                 do: bool, duration: _Histogram) -> None:
        self.key = key  # server, zone, proto, type, rcode, plugin
        self.req_size = req_size
        self.resp_size = resp_size
        self.do = do
        self.duration = duration  # the (server, zone) histogram itself
        self.n = [0, 0, 0]  # by family: index 1 = IPv4, 2 = IPv6
        # Durations in the first bucket are counted here (no histogram call per replay).
        self.quick = 0
        self.quick_total = 0.0


MAX_FAST_SLOTS: Final = 20_000


class ServerStats:
    """Plain-int counters for every query the server answers (all listeners, all chains)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str, str], int] = {}
        self.responses: dict[tuple[str, str, str, str], int] = {}
        self.do_requests: dict[tuple[str, str], int] = {}
        self.durations: dict[tuple[str, str], _Histogram] = {}
        self.req_sizes: dict[tuple[str, str, str], _Histogram] = {}
        self.resp_sizes: dict[tuple[str, str, str], _Histogram] = {}
        self.panics = 0
        self.plugins_enabled: set[tuple[str, str, str]] = set()
        self.fast_slots: dict[tuple[object, ...], FastSlot] = {}

    def fast_slot(self, server: str, zone: str, proto: str, qtype: str, rcode: str,
                  plugin: str, req_size: int, resp_size: int, do: bool) -> FastSlot | None:
        """The shared slot for replays with these labels and sizes (None past the cap: the
        answer is then not replayed, so nothing goes uncounted)."""
        key = (server, zone, proto, qtype, rcode, plugin, req_size, resp_size, do)
        slot = self.fast_slots.get(key)
        if slot is None:
            if len(self.fast_slots) >= MAX_FAST_SLOTS:
                return None
            k2 = (server, zone)
            h = self.durations.get(k2)
            if h is None:
                h = self.durations[k2] = _Histogram(TIME_BUCKETS)
            slot = self.fast_slots[key] = FastSlot((server, zone, proto, qtype, rcode, plugin),
                                                   req_size, resp_size, do, h)
        return slot

    def merged(self) -> ServerStats:
        """A copy with every fast-path replay added in (what a scrape shows)."""
        out = ServerStats()
        out.requests = dict(self.requests)
        out.responses = dict(self.responses)
        out.do_requests = dict(self.do_requests)
        out.durations = {k: h.copy() for k, h in self.durations.items()}
        out.req_sizes = {k: h.copy() for k, h in self.req_sizes.items()}
        out.resp_sizes = {k: h.copy() for k, h in self.resp_sizes.items()}
        out.panics = self.panics
        out.plugins_enabled = self.plugins_enabled
        for slot in list(self.fast_slots.values()):
            total = slot.n[1] + slot.n[2]
            if not total:
                continue
            server, zone, proto, qtype, rcode, plugin = slot.key
            if slot.quick:
                dur = out.durations[(server, zone)]
                dur.counts[0] += slot.quick
                dur.total += slot.quick_total
            for fam in (1, 2):
                if slot.n[fam]:
                    k5 = (server, zone, proto, str(fam), qtype)
                    out.requests[k5] = out.requests.get(k5, 0) + slot.n[fam]
            k4 = (server, zone, rcode, plugin)
            out.responses[k4] = out.responses.get(k4, 0) + total
            if slot.do:
                k2 = (server, zone)
                out.do_requests[k2] = out.do_requests.get(k2, 0) + total
            k3 = (server, zone, proto)
            if k3 not in out.req_sizes:
                out.req_sizes[k3] = _Histogram(SIZE_BUCKETS)
                out.resp_sizes[k3] = _Histogram(SIZE_BUCKETS)
            out.req_sizes[k3].observe_many(slot.req_size, total)
            out.resp_sizes[k3].observe_many(slot.resp_size, total)
        return out

    def record(self, server: str, zone: str, proto: str, family: str, qtype: str, rcode: str,
               plugin: str, req_size: int, resp_size: int, duration: float, do: bool) -> None:
        k5 = (server, zone, proto, family, qtype)
        self.requests[k5] = self.requests.get(k5, 0) + 1
        k4 = (server, zone, rcode, plugin)
        self.responses[k4] = self.responses.get(k4, 0) + 1
        k2 = (server, zone)
        if do:
            self.do_requests[k2] = self.do_requests.get(k2, 0) + 1
        h = self.durations.get(k2)
        if h is None:
            h = self.durations[k2] = _Histogram(TIME_BUCKETS)
        h.observe(duration)
        k3 = (server, zone, proto)
        hs = self.req_sizes.get(k3)
        if hs is None:
            hs = self.req_sizes[k3] = _Histogram(SIZE_BUCKETS)
            self.resp_sizes[k3] = _Histogram(SIZE_BUCKETS)
        hs.observe(req_size)
        if resp_size >= 0:
            self.resp_sizes[k3].observe(resp_size)


class ServerStatsCollector(Collector):
    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        s = self.stats.merged()
        build = GaugeMetricFamily("coredns_build_info", "A metric with a constant '1' value "
                                  "labeled by version, revision, and goversion from which "
                                  "CoreDNS was built.", labels=["version", "revision", "goversion"])
        build.add_metric([__version__, "kdns", f"python{platform.python_version()}"], 1)
        yield build
        panics = CounterMetricFamily("coredns_panics", "A metrics that counts the number of "
                                     "panics.")
        panics.add_metric([], s.panics)
        yield panics
        enabled = GaugeMetricFamily("coredns_plugin_enabled", "A metric that indicates whether a "
                                    "plugin is enabled on per server and zone basis.",
                                    labels=["server", "zone", "view", "name"])
        for server, zone, name in sorted(s.plugins_enabled):
            enabled.add_metric([server, zone, "", name], 1)
        yield enabled
        req = CounterMetricFamily("coredns_dns_requests", "Counter of DNS requests made per zone, "
                                  "protocol and family.",
                                  labels=["server", "zone", "view", "proto", "family", "type"])
        for (server, zone, proto, fam, qt), n in list(s.requests.items()):
            req.add_metric([server, zone, "", proto, fam, qt], n)
        yield req
        resp = CounterMetricFamily("coredns_dns_responses", "Counter of response status codes.",
                                   labels=["server", "zone", "view", "rcode", "plugin"])
        for (server, zone, rc, plugin), n in list(s.responses.items()):
            resp.add_metric([server, zone, "", rc, plugin], n)
        yield resp
        do = CounterMetricFamily("coredns_dns_do_requests", "Counter of DNS requests with DO bit "
                                 "set per zone.", labels=["server", "zone", "view"])
        for (server, zone), n in list(s.do_requests.items()):
            do.add_metric([server, zone, ""], n)
        yield do
        replays = CounterMetricFamily("kdns_fastpath_replays", "Replies served by the wire fast "
                                      "path (stored reply bytes; also counted in "
                                      "coredns_dns_*).", labels=["server", "proto"])
        by_listener: dict[tuple[str, str], int] = {}
        for slot in list(self.stats.fast_slots.values()):
            k = (slot.key[0], slot.key[2])
            by_listener[k] = by_listener.get(k, 0) + slot.n[1] + slot.n[2]
        for (server, proto), n in sorted(by_listener.items()):
            replays.add_metric([server, proto], n)
        yield replays
        dur = HistogramMetricFamily("coredns_dns_request_duration_seconds", "Histogram of the time "
                                    "(in seconds) each request took per zone.",
                                    labels=["server", "zone", "view"])
        for (server, zone), h in list(s.durations.items()):
            dur.add_metric([server, zone, ""], h.buckets(), h.total)
        yield dur
        for name, doc, hists in (
            ("coredns_dns_request_size_bytes", "Size of the EDNS0 UDP buffer in bytes (64K for "
             "TCP) per zone and protocol.", s.req_sizes),
            ("coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
             s.resp_sizes),
        ):
            hist = HistogramMetricFamily(name, doc, labels=["server", "zone", "view", "proto"])
            for (server, zone, proto), h in list(hists.items()):
                hist.add_metric([server, zone, "", proto], h.buckets(), h.total)
            yield hist


STATS = ServerStats()
_registered: set[str] = set()


def register_once(name: str, make: Callable[[], Collector]) -> bool:
    """Register ``make()`` on the default registry unless a collector called ``name`` already
    was (process-wide collectors are registered once per process). True if it registered."""
    if name in _registered:
        return False
    prometheus_client.REGISTRY.register(make())
    _registered.add(name)
    return True


def register_server_stats() -> None:
    """Expose STATS on the default registry (once per process)."""
    register_once("server", lambda: ServerStatsCollector(STATS))


_exposition: Callable[[], bytes] | None = None
_scrape_hooks: list[Callable[[], None]] = []


def on_scrape(fn: Callable[[], None]) -> None:
    """Run ``fn`` before every rendering of the registry (plugins add their fast-path replay
    tallies to their prometheus_client counters there)."""
    if fn not in _scrape_hooks:
        _scrape_hooks.append(fn)


def remove_scrape_hook(fn: Callable[[], None]) -> None:
    if fn in _scrape_hooks:
        _scrape_hooks.remove(fn)


def registry_text() -> bytes:
    """This process's registry as exposition text, replay tallies included."""
    for fn in list(_scrape_hooks):
        fn()
    return prometheus_client.generate_latest(prometheus_client.REGISTRY)


def set_exposition(fn: Callable[[], bytes] | None) -> None:
    """Replace what /metrics serves (the worker supervisor merges its workers' metrics)."""
    global _exposition
    _exposition = fn


def exposition() -> bytes:
    """The text the prometheus plugin serves on /metrics."""
    if _exposition is not None:
        return _exposition()
    return registry_text()
