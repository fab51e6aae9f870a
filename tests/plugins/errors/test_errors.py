"""errors in the real kdns: a chain that fails is logged, consolidated, flushed at shutdown."""

from __future__ import annotations

import time

import dns.rcode
import pytest

from tests.kdnsproc import KdnsProcess, free_port
from tests.plugins.kdnsports import run_kdns_ports

COREFILE = """\
ok.:{port} {
    errors
    whoami
}
fail.:{port} {
    errors
}
cons.:{port} {
    errors {
        consolidate 1s "no next plugin found$" warning
    }
}
first.:{port} {
    errors {
        consolidate 1s "^plugin/errors" info show_first
    }
}
flush.:{port} {
    errors {
        consolidate 1h "no next"
    }
}
fwd.:{port} {
    errors
    forward . 127.0.0.1:{closed}
}
"""
NO_NEXT = "plugin/errors: no next plugin found"


CLOSED = free_port()  # nothing listens there: the upstream refuses


@pytest.fixture(scope="module")
def kdns():  # type: ignore[no-untyped-def]
    with run_kdns_ports(COREFILE.replace("{closed}", str(CLOSED))) as (k, _):
        yield k


def test_failed_query_is_logged_with_rcode_name_and_type(kdns: KdnsProcess) -> None:
    r = kdns.query("X.Fail.", "MX")
    assert r.rcode() == dns.rcode.SERVFAIL
    r = kdns.query("y.fail.", "A", tcp=True)
    assert r.rcode() == dns.rcode.SERVFAIL
    kdns.wait_for_line("y.fail. A")
    assert f"[ERROR] plugin/errors: 2 x.fail. MX: {NO_NEXT}" in kdns.lines
    assert f"[ERROR] plugin/errors: 2 y.fail. A: {NO_NEXT}" in kdns.lines


def test_upstream_failure_is_logged(kdns: KdnsProcess) -> None:
    assert kdns.query("Up.FWD.", "AAAA").rcode() == dns.rcode.SERVFAIL
    line = kdns.wait_for_line("up.fwd. AAAA")
    assert line.startswith("[ERROR] plugin/errors: 2 up.fwd. AAAA: ")
    assert f"127.0.0.1:{CLOSED}" in line


def test_success_is_not_logged(kdns: KdnsProcess) -> None:
    assert kdns.query("a.ok.", "A").rcode() == dns.rcode.NOERROR
    time.sleep(0.3)
    assert not [line for line in kdns.lines if "a.ok." in line]


def test_consolidate_prints_one_summary(kdns: KdnsProcess) -> None:
    for i in range(3):
        assert kdns.query(f"q{i}.cons.", "A").rcode() == dns.rcode.SERVFAIL
    line = kdns.wait_for_line("errors like 'no next plugin found$'", timeout=5)
    assert line == "[WARNING] plugin/errors: 3 errors like 'no next plugin found$' occurred " \
                   "in last 1s"
    assert not [x for x in kdns.lines if ".cons. A" in x]


def test_show_first_logs_the_first_at_once(kdns: KdnsProcess) -> None:
    kdns.query("a.first.", "A")
    kdns.wait_for_line("a.first. A", timeout=2)
    kdns.query("b.first.", "A")
    kdns.wait_for_line("errors like '^plugin/errors'", timeout=5)
    assert f"[INFO] plugin/errors: 2 a.first. A: {NO_NEXT}" in kdns.lines
    assert "[INFO] plugin/errors: 2 errors like '^plugin/errors' occurred in last 1s" in kdns.lines
    assert not [x for x in kdns.lines if "b.first. A" in x]


def test_pending_summary_is_flushed_at_shutdown() -> None:
    with run_kdns_ports(COREFILE.replace("{closed}", str(CLOSED))) as (k, _):
        assert k.query("z.flush.", "A").rcode() == dns.rcode.SERVFAIL
        time.sleep(0.2)
        assert not [x for x in k.lines if "errors like 'no next'" in x]
        assert k.stop() == 0
        assert "[ERROR] plugin/errors: 1 errors like 'no next' occurred in last 1h0m0s" in k.lines
