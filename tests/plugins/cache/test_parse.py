"""cache's Corefile syntax: accepted forms -> config (CoreDNS defaults), errors -> exact text."""

from __future__ import annotations

import pytest

from kdns.plugins.cache.parse import CacheConfig, parse
from kdns.plugins.cache.store import Store
from tests.upstream.corefiles import build_error, dispenser


def cfg(body: str, key: str = ".:53") -> CacheConfig:
    return parse(dispenser(f"{key} {{\n{body}\n}}\n", "cache"), ["."] if key == ".:53" else
                 ["example.org."])


def test_defaults() -> None:
    c = cfg("cache")
    assert (c.zones, c.success_capacity, c.success_ttl, c.success_min_ttl, c.denial_capacity,
            c.denial_ttl, c.denial_min_ttl, c.prefetch, c.stale_up_to, c.servfail_ttl,
            c.keepttl) == ((".",), 10000, 3600, 5, 10000, 1800, 5, 0, 0.0, 5.0, False)
    assert Store(c.success_capacity).capacity == 9984  # 256 shards x 39


@pytest.mark.parametrize("body,expect", [
    ("cache 30", {"success_ttl": 30, "denial_ttl": 30}),
    ("cache 30 Example.ORG b.org", {"zones": ("example.org.", "b.org.")}),
    ("cache example.org", {"zones": ("example.org.",), "success_ttl": 3600}),
    ("cache {\n success 5000 60 0\n}", {"success_capacity": 5000, "success_ttl": 60,
                                         "success_min_ttl": 0}),
    ("cache {\n denial 200 10\n}", {"denial_capacity": 200, "denial_ttl": 10,
                                     "denial_min_ttl": 5}),
    ("cache {\n prefetch 10\n}", {"prefetch": 10, "prefetch_duration": 60.0,
                                   "prefetch_percentage": 10}),
    ("cache {\n prefetch 2 30s 50%\n}", {"prefetch": 2, "prefetch_duration": 30.0,
                                          "prefetch_percentage": 50}),
    ("cache {\n serve_stale\n}", {"stale_up_to": 3600.0, "stale_verify": False}),
    ("cache {\n serve_stale 10m verify\n}", {"stale_up_to": 600.0, "stale_verify": True}),
    ("cache {\n serve_stale 1h IMMEDIATE\n}", {"stale_up_to": 3600.0, "stale_verify": False}),
    ("cache {\n servfail 0\n}", {"servfail_ttl": 0.0}),
    ("cache {\n servfail 5m\n}", {"servfail_ttl": 300.0}),
    ("cache 30 {\n disable success cluster.local\n disable denial\n}",
     {"disable_success": ("cluster.local.",), "disable_denial": (".",)}),
    ("cache {\n keepttl\n}", {"keepttl": True}),
])
def test_accepted(body: str, expect: dict[str, object]) -> None:
    c = cfg(body)
    for k, v in expect.items():
        assert getattr(c, k) == v, k


def test_zones_default_to_the_block() -> None:
    assert cfg("cache", "example.org:53").zones == ("example.org.",)


E = "plugin/cache: Corefile:{} - Error during parsing: "


@pytest.mark.parametrize("body,line,err", [
    ("cache 0", 2, "cache TTL can not be zero or negative: 0"),
    ("cache -5", 2, "cache TTL can not be zero or negative: -5"),
    ("cache {\n success\n}", 3, "Wrong argument count or unexpected line ending after 'success'"),
    ("cache {\n success x\n}", 3, 'strconv.Atoi: parsing "x": invalid syntax'),
    ("cache {\n success 10 0\n}", 3, "cache TTL can not be zero or negative: 0"),
    ("cache {\n denial 10 10 -1\n}", 3, "cache min TTL can not be negative: -1"),
    ("cache {\n denial 10 10 1 1\n}", 3,
     "Wrong argument count or unexpected line ending after '1'"),
    ("cache {\n prefetch\n}", 3, "Wrong argument count or unexpected line ending after 'prefetch'"),
    ("cache {\n prefetch -1\n}", 3, "prefetch amount should be positive: -1"),
    ("cache {\n prefetch 1 1m 5%\n}", 3, "percentage should fall in range [10, 90]: 5"),
    ("cache {\n prefetch 1 1m 50\n}", 3,
     "last character of percentage should be `%`, but is: '0'"),
    ("cache {\n prefetch 1 soon\n}", 3, "invalid prefetch duration: 'soon'"),
    ("cache {\n serve_stale -1s\n}", 3, "invalid negative duration for serve_stale"),
    ("cache {\n serve_stale 1h lazy\n}", 3, "invalid value for serve_stale refresh mode: lazy"),
    ("cache {\n servfail 6m\n}", 3, "caching SERVFAIL responses over 5 minutes is not permitted"),
    ("cache {\n servfail\n}", 3, "Wrong argument count or unexpected line ending after 'servfail'"),
    ("cache {\n disable all\n}", 3, 'cache type for disable must be "success" or "denial"'),
    ("cache {\n keepttl 5\n}", 3, "Wrong argument count or unexpected line ending after '5'"),
    ("cache {\n sucess 10\n}", 3, "unknown property 'sucess'"),
])
def test_errors(body: str, line: int, err: str) -> None:
    assert build_error(f".:53 {{\n{body}\n}}\n") == E.format(line) + err


def test_once_per_block() -> None:
    assert build_error(".:53 {\ncache\ncache 10\n}\n") == (
        "plugin/cache: Corefile:3 - Error during parsing: this plugin can only be used once per "
        "Server Block")
