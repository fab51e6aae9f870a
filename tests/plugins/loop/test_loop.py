"""loop: detection in the real kdns (forward to itself, and through a stub relay), and the hook."""

from __future__ import annotations

import logging
import time

import dns.message
import dns.rcode
import pytest

from kdns.errors import PluginError
from kdns.plugin import Request
from kdns.plugins.loop.handler import Loop, probe_name
from kdns.plugins.loop.metrics import LOOP_DETECTED
from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.upstream.kdns import kdns
from tests.upstream.knot import run_knot
from tests.upstream.relay import Relay

LOOP_LINE = "[ERROR] plugin/loop: Loop ("


def wait_line(k: KdnsProcess, text: str, timeout: float) -> float:
    """Seconds until ``text`` appeared in kdns's output."""
    start = time.monotonic()
    k.wait_for_line(text, timeout=timeout)
    return time.monotonic() - start


def test_forwarding_to_itself_is_detected_and_disabled_without_exiting() -> None:
    corefile = (".:{port} {\n    loop\n    forward . 127.0.0.1:{port}\n}\n"
                "cluster.local:{port} {\n    whoami\n}\n")
    with kdns(corefile) as k:
        assert wait_line(k, LOOP_LINE, timeout=5) < 5
        line = k.wait_for_line(LOOP_LINE)
        assert f'-> :{k.port}) detected for zone ".", see https://coredns.io/plugins/loop' in line
        assert f"forwarding to 127.0.0.1:{k.port} disabled" in line
        for i in range(20):
            start = time.monotonic()
            r = k.query(f"name{i}.example.org", "A")
            assert r.rcode() == dns.rcode.SERVFAIL
            assert time.monotonic() - start < 0.1  # no forwarding attempt (2 s)
        assert k.query("svc.cluster.local", "A").rcode() == dns.rcode.NOERROR
        time.sleep(0.5)
        assert k.proc.poll() is None  # still running: CoreDNS would have exited here
        assert k.output.count(LOOP_LINE) == 1  # logged once


def test_loop_through_a_stub_disables_only_that_upstream() -> None:
    with run_knot() as knot:
        # The relay forwards to kdns; kdns forwards to the relay first, then to knot.
        port = free_port()
        with Relay(("127.0.0.1", port)) as relay:
            corefile = (".:{port} {\n    loop\n"
                        f"    forward . {relay.addr} {knot.addr} {{\n"
                        "        policy sequential\n    }\n}\n")
            with run_kdns(corefile, port=port) as k:  # the relay needs the port first
                assert wait_line(k, LOOP_LINE, timeout=5) < 5
                line = k.wait_for_line(LOOP_LINE)
                assert f"forwarding to {relay.addr} disabled" in line
                assert knot.addr not in line
                before = relay.forwarded
                for _ in range(10):
                    r = k.query("www.example.test", "A")
                    assert r.rcode() == 0 and r.answer  # through knot, the healthy upstream
                assert relay.forwarded == before  # the looping path is no longer used
                assert before <= 10  # the loop was cut at its first turn


def test_no_loop_no_error() -> None:
    with run_knot() as knot:
        with kdns(".:{port} {\n    loop\n" f"    forward . {knot.addr}\n}}\n") as k:
            time.sleep(1.5)
            assert LOOP_LINE not in k.output
            assert k.query("www.example.test", "A").answer


class _Forward:
    name = "forward"

    def __init__(self) -> None:
        self.detected: list[str] = []
        self.served = 0

    def loop_detected(self, qname: str) -> list[str]:
        self.detected.append(qname)
        return ["10.0.0.1:53"]

    async def serve(self, req: Request) -> dns.message.Message:
        self.served += 1
        return req.reply()


def hinfo(name: str) -> Request:
    return Request(dns.message.make_query(name, "HINFO"), ("127.0.0.1", 1), "udp")


async def test_hook_metric_and_single_log(caplog: pytest.LogCaptureFixture) -> None:
    fwd = _Forward()
    loop = Loop(fwd, zone="example.org.", port=5300, server="dns://:5300")
    await loop.start()
    await loop.stop()  # no background probe in this unit test
    loop.armed = True
    loop.sent = 1
    assert LOOP_DETECTED.labels("dns://:5300", "example.org.")._value.get() == 0
    await loop.serve(hinfo(loop.qname))  # our own probe arriving
    assert fwd.detected == []
    with caplog.at_level(logging.ERROR, logger="kdns.plugin.loop"):
        with pytest.raises(PluginError):
            await loop.serve(hinfo(loop.qname.upper()))  # it came back: a loop
        with pytest.raises(PluginError):
            await loop.serve(hinfo(loop.qname))
    assert fwd.detected == [loop.qname]
    assert len([r for r in caplog.records if "Loop (" in r.getMessage()]) == 1
    assert LOOP_DETECTED.labels("dns://:5300", "example.org.")._value.get() == 1
    await loop.serve(hinfo("other.example.org."))  # other names pass untouched
    assert fwd.served == 2


def test_probe_names_are_unguessable() -> None:
    names = {probe_name(".") for _ in range(100)}
    assert len(names) == 100
    a, b, rest = next(iter(names)).split(".", 2)
    assert rest == "" and a.isdigit() and b.isdigit()
    assert probe_name("cluster.local.").endswith(".cluster.local.")
    assert max(int(n.split(".")[0]) for n in names) > 2**60  # ~63 random bits per label
