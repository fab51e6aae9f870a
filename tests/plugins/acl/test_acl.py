"""acl in a real kdns process: clients on different loopback addresses (all of 127/8 is on lo)."""

from __future__ import annotations

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.kdnsproc import free_port, run_kdns
from tests.reliability.helpers import metric_value

COREFILE = """\
.:{port} {
    prometheus 127.0.0.1:%(metrics)d
    acl {
        allow net 127.0.0.0/16
        drop net 127.8.0.0/16
        filter type AAAA net 127.7.0.0/16
        block
    }
    hosts {
        10.0.0.1 www.example.org
        2001:db8::1 www.example.org
    }
}
"""


def _ask(port: int, source: str, qtype: str = "A", *, tcp: bool = False,
         edns: bool = True) -> dns.message.Message:
    q = dns.message.make_query("www.example.org", qtype, use_edns=0 if edns else False)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, source=source, timeout=2)
    return dns.query.udp(q, "127.0.0.1", port=port, source=source, timeout=2)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_sources_get_their_policy(tcp: bool) -> None:
    metrics = free_port()
    with run_kdns(COREFILE % {"metrics": metrics}) as k:
        for _ in range(3):  # repeated, so a memoized answer would show
            r = _ask(k.port, "127.0.0.1", tcp=tcp)
            assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1
            r = _ask(k.port, "127.9.0.1", tcp=tcp)
            assert r.rcode() == dns.rcode.REFUSED and not r.answer
            assert [o.code for o in r.options] == [dns.edns.EDECode.BLOCKED]
            r = _ask(k.port, "127.9.0.1", tcp=tcp, edns=False)
            assert r.rcode() == dns.rcode.REFUSED and r.edns < 0
            r = _ask(k.port, "127.7.0.1", "AAAA", tcp=tcp)
            assert r.rcode() == dns.rcode.NOERROR and not r.answer
            assert [o.code for o in r.options] == [dns.edns.EDECode.FILTERED]
            assert _ask(k.port, "127.7.0.1", "A", tcp=tcp).rcode() == dns.rcode.REFUSED
        with pytest.raises(dns.exception.Timeout):
            _ask(k.port, "127.8.0.1", tcp=tcp)
        server = f'server="dns://:{k.port}"'
        assert metric_value(metrics, "coredns_acl_allowed_requests_total", server) == 3
        assert metric_value(metrics, "coredns_acl_blocked_requests_total",
                            f'{server},view="",zone="."') == 9
        assert metric_value(metrics, "coredns_acl_filtered_requests_total",
                            f'{server},view="",zone="."') == 3
        assert metric_value(metrics, "coredns_acl_dropped_requests_total",
                            f'{server},view="",zone="."') == 1
        assert "Traceback" not in k.output
