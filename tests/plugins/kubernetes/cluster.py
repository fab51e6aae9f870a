# ruff: noqa: E501  (a data table: one record per line reads better than wrapped strings)
"""The test cluster (modelled on CoreDNS's handler_test.go fixture, plus the newer cases) and
the table of expected answers, shared by the pure engine tests and the real-process tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rdatatype

from tests.fakeapi import objects as k8s

SOA = "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"
SOA_REV4 = "in-addr.arpa. 5 SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. SERIAL 7200 1800 86400 5"
SOA_REV6 = "ip6.arpa. 5 SOA ns.dns.ip6.arpa. hostmaster.ip6.arpa. SERIAL 7200 1800 86400 5"
NS_ = "testns.svc.cluster.local."


def _ep(*addrs: str, **kw: Any) -> dict[str, Any]:
    return k8s.endpoint(*addrs, **kw)


def cluster_objects() -> list[dict[str, Any]]:
    """Every object of the test cluster (Namespaces included: without them nothing exists)."""
    http = [k8s.port("http", 80)]
    eph = [{"name": "http", "port": 80, "protocol": "TCP"}]
    return [
        k8s.namespace("testns"),
        k8s.namespace("kube-system"),
        k8s.namespace("otherns"),
        k8s.service("testns", "svc1", cluster_ip="10.0.0.1", ports=http),
        k8s.endpointslice("testns", "svc1-abc", "svc1", [_ep("172.0.0.1", hostname="ep1a")],
                          ports=eph),
        k8s.service("testns", "svcempty", cluster_ip="10.0.0.2", ports=http),
        k8s.endpointslice("testns", "svcempty-abc", "svcempty", [], ports=eph),
        k8s.service("testns", "svc6", cluster_ip="1234:abcd::1", ports=http),
        k8s.service("testns", "dual", cluster_ips=["10.0.0.3", "fd00::3"], ports=http),
        k8s.service("testns", "noports", cluster_ip="10.0.0.5", ports=[]),
        k8s.service("testns", "hdls1", cluster_ip="None", ports=http),
        k8s.endpointslice("testns", "hdls1-1", "hdls1", [
            _ep("172.0.0.2"), _ep("172.0.0.3"),
            _ep("172.0.0.4", hostname="dup-name"), _ep("172.0.0.5", hostname="dup-name"),
            _ep("172.0.0.9", ready=False), _ep("172.0.0.10", ready=None),
        ], ports=eph),
        k8s.endpointslice("testns", "hdls1-2", "hdls1", [_ep("5678:abcd::1"),
                                                         _ep("5678:abcd::2")],
                          ports=eph, address_type="IPv6"),
        k8s.service("testns", "hdlsprtls", cluster_ip="None", ports=[]),
        k8s.endpointslice("testns", "hdlsprtls-1", "hdlsprtls", [_ep("172.0.0.20")], ports=[]),
        k8s.service("testns", "hdlsnoready", cluster_ip="None", ports=http),
        k8s.endpointslice("testns", "hdlsnoready-1", "hdlsnoready",
                          [_ep("172.0.0.30", ready=False)], ports=eph),
        k8s.service("testns", "hdls6", cluster_ip="None", ports=http),
        k8s.endpointslice("testns", "hdls6-1", "hdls6", [_ep("fd00:10::")], ports=eph,
                          address_type="IPv6"),
        k8s.service("testns", "dupslices", cluster_ip="None", ports=http),
        k8s.endpointslice("testns", "dupslices-1", "dupslices", [_ep("172.0.1.1")], ports=eph),
        k8s.endpointslice("testns", "dupslices-2", "dupslices", [_ep("172.0.1.1")], ports=eph),
        k8s.service("testns", "external", type="ExternalName",
                    external_name="ext.interwebs.test", ports=http),
        k8s.service("testns", "external-to-service", type="ExternalName",
                    external_name="svc1.testns.svc.cluster.local", ports=http),
        k8s.service("testns", "external-to-missing", type="ExternalName",
                    external_name="nope.testns.svc.cluster.local", ports=http),
        k8s.service("testns", "extip", type="ExternalName", external_name="1.2.3.4"),
        k8s.service("kube-system", "kube-dns", cluster_ip="10.96.0.10", ports=[
            k8s.port("dns", 53, "UDP"), k8s.port("dns-tcp", 53, "TCP"),
            k8s.port("metrics", 9153, "TCP")]),
        k8s.service("unexposedns", "svc1", cluster_ip="10.0.0.99", ports=http),
        k8s.endpointslice("otherns", "multi-1", "multi", [_ep("172.0.0.1")], ports=eph),
        k8s.endpointslice("otherns", "nolabel-1", None, [_ep("172.0.2.1")], ports=eph),
    ]


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    note: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        return f"{self.qtype}-{self.qname}"


def _c(qname: str, qtype: str, rcode: str = "NOERROR", answer: tuple[str, ...] = (),
       ns: tuple[str, ...] | None = None, extra: tuple[str, ...] = ()) -> Case:
    if ns is None:
        ns = (SOA,) if (rcode != "NOERROR" or not answer) else ()
    return Case(qname, qtype, rcode, answer, ns, extra)


H = "hdls1.testns.svc.cluster.local."
CASES: list[Case] = [
    # ClusterIP services
    _c("svc1.testns.svc.cluster.local.", "A", answer=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
    _c("svc1.testns.svc.cluster.local.", "AAAA"),
    _c("svcempty.testns.svc.cluster.local.", "A",
       answer=("svcempty.testns.svc.cluster.local. 5 A 10.0.0.2",)),
    _c("svc6.testns.svc.cluster.local.", "AAAA",
       answer=("svc6.testns.svc.cluster.local. 5 AAAA 1234:abcd::1",)),
    _c("svc6.testns.svc.cluster.local.", "A"),
    _c("dual.testns.svc.cluster.local.", "A", answer=("dual.testns.svc.cluster.local. 5 A 10.0.0.3",)),
    _c("dual.testns.svc.cluster.local.", "AAAA",
       answer=("dual.testns.svc.cluster.local. 5 AAAA fd00::3",)),
    _c("dual.testns.svc.cluster.local.", "SRV",
       answer=("dual.testns.svc.cluster.local. 5 SRV 0 50 80 dual.testns.svc.cluster.local.",),
       extra=("dual.testns.svc.cluster.local. 5 A 10.0.0.3",
              "dual.testns.svc.cluster.local. 5 AAAA fd00::3")),
    _c("svc1.testns.svc.cluster.local.", "SRV",
       answer=("svc1.testns.svc.cluster.local. 5 SRV 0 100 80 svc1.testns.svc.cluster.local.",),
       extra=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
    _c("_http._tcp.svc1.testns.svc.cluster.local.", "SRV",
       answer=("_http._tcp.svc1.testns.svc.cluster.local. 5 SRV 0 100 80 svc1.testns.svc.cluster.local.",),
       extra=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
    _c("http.tcp.svc1.testns.svc.cluster.local.", "SRV",
       answer=("http.tcp.svc1.testns.svc.cluster.local. 5 SRV 0 100 80 svc1.testns.svc.cluster.local.",),
       extra=("svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
    _c("_http._tcp.svc1.testns.svc.cluster.local.", "A",
       answer=("_http._tcp.svc1.testns.svc.cluster.local. 5 A 10.0.0.1",)),
    _c("_https._tcp.svc1.testns.svc.cluster.local.", "SRV", "NXDOMAIN"),
    _c("_http._udp.svc1.testns.svc.cluster.local.", "SRV", "NXDOMAIN"),
    _c("*._not-udp-or-tcp.svc1.testns.svc.cluster.local.", "SRV", "NXDOMAIN"),
    _c("svc6.testns.svc.cluster.local.", "SRV",
       answer=("svc6.testns.svc.cluster.local. 5 SRV 0 100 80 svc6.testns.svc.cluster.local.",),
       extra=("svc6.testns.svc.cluster.local. 5 AAAA 1234:abcd::1",)),
    _c("kube-dns.kube-system.svc.cluster.local.", "SRV",
       answer=("kube-dns.kube-system.svc.cluster.local. 5 SRV 0 33 53 kube-dns.kube-system.svc.cluster.local.",
               "kube-dns.kube-system.svc.cluster.local. 5 SRV 0 33 9153 kube-dns.kube-system.svc.cluster.local."),
       extra=("kube-dns.kube-system.svc.cluster.local. 5 A 10.96.0.10",)),
    _c("_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV",
       answer=("_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.",),
       extra=("kube-dns.kube-system.svc.cluster.local. 5 A 10.96.0.10",)),
    _c("noports.testns.svc.cluster.local.", "A", answer=("noports.testns.svc.cluster.local. 5 A 10.0.0.5",)),
    _c("noports.testns.svc.cluster.local.", "SRV"),
    # endpoint names, also under ClusterIP services
    _c("ep1a.svc1.testns.svc.cluster.local.", "A", answer=("ep1a.svc1.testns.svc.cluster.local. 5 A 172.0.0.1",)),
    _c("ep1a.svc1.testns.svc.cluster.local.", "SRV",
       answer=("ep1a.svc1.testns.svc.cluster.local. 5 SRV 0 100 80 ep1a.svc1.testns.svc.cluster.local.",),
       extra=("ep1a.svc1.testns.svc.cluster.local. 5 A 172.0.0.1",)),
    _c("172-0-0-1.svc1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("_http._tcp.ep1a.svc1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    # headless
    _c(H, "A", answer=tuple(f"{H} 5 A 172.0.0.{i}" for i in (2, 3, 4, 5, 10))),
    _c(H, "AAAA", answer=(f"{H} 5 AAAA 5678:abcd::1", f"{H} 5 AAAA 5678:abcd::2")),
    _c("_http._tcp." + H, "SRV",
       answer=tuple(f"_http._tcp.{H} 5 SRV 0 14 80 {n}.{H}" for n in (
           "172-0-0-2", "172-0-0-3", "dup-name", "172-0-0-10", "5678-abcd--1", "5678-abcd--2")),
       extra=(f"172-0-0-2.{H} 5 A 172.0.0.2", f"172-0-0-3.{H} 5 A 172.0.0.3",
              f"dup-name.{H} 5 A 172.0.0.4", f"dup-name.{H} 5 A 172.0.0.5",
              f"172-0-0-10.{H} 5 A 172.0.0.10",
              f"5678-abcd--1.{H} 5 AAAA 5678:abcd::1", f"5678-abcd--2.{H} 5 AAAA 5678:abcd::2")),
    _c("172-0-0-2." + H, "A", answer=(f"172-0-0-2.{H} 5 A 172.0.0.2",)),
    _c("dup-name." + H, "A", answer=(f"dup-name.{H} 5 A 172.0.0.4", f"dup-name.{H} 5 A 172.0.0.5")),
    _c("172-0-0-4." + H, "A", "NXDOMAIN"),
    _c("172-0-0-9." + H, "A", "NXDOMAIN"),
    _c("bogusendpoint." + H, "A", "NXDOMAIN"),
    _c("5678-abcd--2." + H, "AAAA", answer=(f"5678-abcd--2.{H} 5 AAAA 5678:abcd::2",)),
    _c("5678-abcd--2." + H, "A"),
    _c("hdlsprtls.testns.svc.cluster.local.", "A",
       answer=("hdlsprtls.testns.svc.cluster.local. 5 A 172.0.0.20",)),
    _c("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", "A",
       answer=("172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 A 172.0.0.20",)),
    _c("hdlsprtls.testns.svc.cluster.local.", "SRV"),
    _c("hdlsnoready.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("hdlsnoready.testns.svc.cluster.local.", "SRV", "NXDOMAIN"),
    _c("hdlsnoready.testns.svc.cluster.local.", "SOA"),
    _c("hdls6.testns.svc.cluster.local.", "A"),
    _c("fd00-10--0.hdls6.testns.svc.cluster.local.", "AAAA",
       answer=("fd00-10--0.hdls6.testns.svc.cluster.local. 5 AAAA fd00:10::",)),
    _c("dupslices.testns.svc.cluster.local.", "SRV",
       answer=("dupslices.testns.svc.cluster.local. 5 SRV 0 50 80 172-0-1-1.dupslices.testns.svc.cluster.local.",),
       extra=("172-0-1-1.dupslices.testns.svc.cluster.local. 5 A 172.0.1.1",)),
    # ExternalName
    _c("external.testns.svc.cluster.local.", "CNAME",
       answer=("external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test.",)),
    _c("external.testns.svc.cluster.local.", "A",
       answer=("external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test.",)),
    _c("external.testns.svc.cluster.local.", "SRV"),
    _c("external.testns.svc.cluster.local.", "TXT"),
    _c("external.testns.svc.cluster.local.", "MX"),
    _c("x.external.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("_http._tcp.external.testns.svc.cluster.local.", "SRV", "NXDOMAIN"),
    _c("external-to-service.testns.svc.cluster.local.", "A",
       answer=("external-to-service.testns.svc.cluster.local. 5 CNAME svc1.testns.svc.cluster.local.",
               "svc1.testns.svc.cluster.local. 5 A 10.0.0.1")),
    _c("external-to-service.testns.svc.cluster.local.", "AAAA"),
    _c("external-to-missing.testns.svc.cluster.local.", "A"),
    _c("extip.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    # non-existing things
    _c("svc0.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("svc0.testns.svc.cluster.local.", "AAAA", "NXDOMAIN"),
    _c("svc0.svc-nons.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("svc1.unexposedns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("bogusendpoint.svc0.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("a.b.svc1.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("*.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("svc1.*.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("any.testns.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("foo.cluster.local.", "A", "NXDOMAIN"),
    _c("foo.cluster.local.", "NS", "NXDOMAIN"),
    _c("dns-version.cluster.local.", "A", "NXDOMAIN"),
    # structural names
    _c("cluster.local.", "A"),
    _c("svc.cluster.local.", "A"),
    _c("pod.cluster.local.", "A"),
    _c("testns.svc.cluster.local.", "A"),
    _c("testns.svc.cluster.local.", "SRV"),
    _c("svc-nons.svc.cluster.local.", "A", "NXDOMAIN"),
    _c("cluster.local.", "TXT", "NXDOMAIN"),
    _c("cluster.local.", "HINFO"),
    _c("cluster.local.", "AAAA"),
    _c("cluster.local.", "SRV"),
    _c("cluster.local.", "MX"),
    _c("cluster.local.", "PTR"),
    _c("cluster.local.", "CNAME"),
    _c("example.org.cluster.local.", "PTR", "NXDOMAIN"),
    _c("100.0.0.10.cluster.local.", "PTR", "NXDOMAIN"),
    _c("svc1.testns.svc.cluster.local.", "NS"),
    _c("svc.cluster.local.", "TXT", "NXDOMAIN"),
    _c("testns.svc.cluster.local.", "TXT", "NXDOMAIN"),
    _c("svc1.testns.svc.cluster.local.", "TXT"),
    _c("svc0.testns.svc.cluster.local.", "TXT", "NXDOMAIN"),
    _c("hdls1.testns.svc.cluster.local.", "MX"),
    _c("svc1.testns.svc.cluster.local.", "ANY"),
    _c("svc1.testns.svc.cluster.local.", "HINFO"),
    _c("svc0.testns.svc.cluster.local.", "HINFO", "NXDOMAIN"),
    _c("svc1.testns.svc.cluster.local.", "CNAME"),
    _c("svc1.testns.svc.cluster.local.", "PTR"),
    _c("svc0.testns.svc.cluster.local.", "PTR", "NXDOMAIN"),
    # dns-version, SOA, NS
    _c("dns-version.cluster.local.", "TXT", answer=('dns-version.cluster.local. 28800 TXT "1.1.0"',)),
    _c("cluster.local.", "SOA", answer=(SOA,)),
    _c("svc1.testns.svc.cluster.local.", "SOA"),
    _c("svc0.testns.svc.cluster.local.", "SOA"),
    _c("nonexistent.cluster.local.", "SOA"),
    _c("ns.dns.cluster.local.", "TXT", "NXDOMAIN"),
    _c("ns.dns.cluster.local.", "SRV"),
    _c("ns.dns.cluster.local.", "MX"),
    # pods disabled (the default)
    _c("10-0-0-1.testns.pod.cluster.local.", "A", "NXDOMAIN"),
    _c("testns.pod.cluster.local.", "A", "NXDOMAIN"),
    # reverse
    _c("1.0.0.10.in-addr.arpa.", "PTR", answer=("1.0.0.10.in-addr.arpa. 5 PTR svc1.testns.svc.cluster.local.",)),
    _c("2.0.0.172.in-addr.arpa.", "PTR",
       answer=("2.0.0.172.in-addr.arpa. 5 PTR 172-0-0-2.hdls1.testns.svc.cluster.local.",)),
    _c("4.0.0.172.in-addr.arpa.", "PTR",
       answer=("4.0.0.172.in-addr.arpa. 5 PTR dup-name.hdls1.testns.svc.cluster.local.",)),
    _c("1.0.0.172.in-addr.arpa.", "PTR",
       answer=("1.0.0.172.in-addr.arpa. 5 PTR ep1a.svc1.testns.svc.cluster.local.",
               "1.0.0.172.in-addr.arpa. 5 PTR 172-0-0-1.multi.otherns.svc.cluster.local.")),
    _c("1.1.0.172.in-addr.arpa.", "PTR",
       answer=("1.1.0.172.in-addr.arpa. 5 PTR 172-0-1-1.dupslices.testns.svc.cluster.local.",)),
    _c("9.0.0.172.in-addr.arpa.", "PTR", "NXDOMAIN", ns=(SOA_REV4,)),
    _c("99.0.0.10.in-addr.arpa.", "PTR",
       answer=("99.0.0.10.in-addr.arpa. 5 PTR svc1.unexposedns.svc.cluster.local.",)),
    _c("1.0.0.10.in-addr.arpa.", "A", "NXDOMAIN", ns=(SOA_REV4,)),
    _c("1.0.0.10.in-addr.arpa.", "TXT", "NXDOMAIN", ns=(SOA_REV4,)),
    _c("10.in-addr.arpa.", "PTR", "NXDOMAIN", ns=(SOA_REV4,)),
    _c("in-addr.arpa.", "PTR", ns=(SOA_REV4,)),
    _c("in-addr.arpa.", "SOA", answer=(SOA_REV4,), ns=()),
    _c("svc1.testns.svc.in-addr.arpa.", "A", "NXDOMAIN", ns=(SOA_REV4,)),
    _c("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "PTR",
       answer=("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 PTR "
               "svc6.testns.svc.cluster.local.",)),
    _c("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa.", "PTR",
       answer=("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. 5 PTR "
               "5678-abcd--2.hdls1.testns.svc.cluster.local.",)),
    _c("3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa.", "PTR",
       "NXDOMAIN", ns=(SOA_REV6,)),
    _c("dns-version.in-addr.arpa.", "TXT", answer=('dns-version.in-addr.arpa. 28800 TXT "1.1.0"',)),
    # AXFR/IXFR are not served here
    _c("cluster.local.", "AXFR", "REFUSED", ns=()),
    # case: answers use the query spelling, the zone part of SOA/SRV too
    _c("SVC1.TestNS.svc.Cluster.LOCAL.", "A", answer=("SVC1.TestNS.svc.Cluster.LOCAL. 5 A 10.0.0.1",)),
    _c("svc0.TestNS.svc.Cluster.LOCAL.", "A", "NXDOMAIN", ns=(
        "Cluster.LOCAL. 5 SOA ns.dns.Cluster.LOCAL. hostmaster.Cluster.LOCAL. SERIAL 7200 1800 86400 5",)),
    _c("_HTTP._TCP.svc1.testns.svc.cLuStEr.LoCaL.", "SRV",
       answer=("_HTTP._TCP.svc1.testns.svc.cLuStEr.LoCaL. 5 SRV 0 100 80 svc1.testns.svc.cLuStEr.LoCaL.",),
       extra=("svc1.testns.svc.cLuStEr.LoCaL. 5 A 10.0.0.1",)),
    _c("DUP-NAME.hdls1.testns.svc.cluster.local.", "A",
       answer=("DUP-NAME.hdls1.testns.svc.cluster.local. 5 A 172.0.0.4",
               "DUP-NAME.hdls1.testns.svc.cluster.local. 5 A 172.0.0.5")),
    _c("DNS-VERSION.cluster.local.", "TXT", answer=('DNS-VERSION.cluster.local. 28800 TXT "1.1.0"',)),
    _c("1.0.0.10.IN-ADDR.ARPA.", "PTR", answer=("1.0.0.10.IN-ADDR.ARPA. 5 PTR svc1.testns.svc.cluster.local.",)),
]


def section(msg: dns.message.Message, name: str) -> list[str]:
    """A section as sorted lines "owner ttl TYPE rdata", owners in their exact spelling and
    SOA serials replaced by SERIAL (they are timestamps)."""
    out = []
    for rrset in getattr(msg, name):
        for rd in rrset:
            text = rd.to_text()
            if rrset.rdtype == dns.rdatatype.SOA:
                parts = text.split()
                parts[2] = "SERIAL"
                text = " ".join(parts)
            out.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {text}")
    return sorted(out)


def check(msg: dns.message.Message, case: Case) -> None:
    got = (dns.rcode.to_text(msg.rcode()), section(msg, "answer"), section(msg, "authority"),
           section(msg, "additional"))
    want = (case.rcode, sorted(case.answer), sorted(case.ns), sorted(case.extra))
    assert got == want, f"{case.qtype} {case.qname}: got {got}"
