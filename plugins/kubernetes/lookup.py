"""Record synthesis for cluster names, pure: (query name, qtype) -> Result, per k8s-dns.md.

No I/O and no Request object: ``Resolver.resolve`` reads the Store and the config only, and
the same inputs (and store generation) always give the same Result, so a wire fast path can
precompute answers per (lower-case qname, qtype) and drop them when ``Store.generation``
changes (or per ``Change``). Names are built in the query's spelling where CoreDNS does so
(answer owners, the zone part of SOA/SRV/NS names, k8s-dns.md section 9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.SRV
import dns.rrset

from .names import dashed_ip, ip_family, ip_from_pod_label, ip_from_reverse, is_reverse
from .parse import KubernetesConfig
from .records import CLUSTER_IP, EXTERNAL_NAME, HEADLESS_KIND, Addr, Svc
from .result import NEXT, REFUSED, Outcome, Result
from .rr import address, rrsets, target_name
from .store import Store

IN: Final = dns.rdataclass.IN
A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA
DNS_SCHEMA_VERSION: Final = "1.1.0"
DNS_VERSION_TTL: Final = 28800
MAX_CNAME_CHAIN: Final = 10  # CoreDNS v1.12.1+
_FAMILY: Final[dict[int, int]] = {int(A): 4, int(AAAA): 6}

__all__ = ["NEXT", "REFUSED", "Entry", "Outcome", "Resolver", "Result", "endpoint_name"]

Records = list[tuple[dns.name.Name, int, dns.rdata.Rdata]]


@dataclass(slots=True)
class Entry:
    """One backend entry (CoreDNS msg.Service): an address or a CNAME target, a port, and
    the labels of the SRV target name left of the zone."""

    host: str
    port: int
    target: str  # relative name, e.g. "svc1.ns.svc" (zone appended in query spelling)
    family: int  # 4, 6, or 0 for a name (CNAME entry)


@dataclass(slots=True)
class _Query:
    """Per-query state: spelled names and the out-of-zone chase target, if any."""

    zone: str  # matched plugin zone, lower-case
    zone_name: dns.name.Name  # the same zone spelled as in the query
    chase: dns.name.Name | None = None
    tags: set[str] = field(default_factory=set)  # store objects this answer depends on


@dataclass(frozen=True, slots=True)
class _Parsed:
    kind: str  # "svc" or "pod"
    namespace: str
    service: str
    endpoint: str = ""
    port: str = ""
    protocol: str = ""
    zonal: tuple[str, str] | None = None  # (directive, topology zone) of a zonal name


_STRUCTURAL: Final = object()


def _in_zone(lower: str, zone: str) -> bool:
    return zone == "." or lower == zone or lower.endswith("." + zone)


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def endpoint_name(addr: Addr, pod_names: bool) -> str:
    """The one name an endpoint answers to (k8s-dns.md 4.4)."""
    if addr.hostname:
        return addr.hostname
    if pod_names and addr.target_name:
        return addr.target_name
    return dashed_ip(addr.ip)


def _match_port(want_port: str, want_proto: str, name: str, proto: str) -> bool:
    return (not want_port or want_port == name.lower()) and (
        not want_proto or want_proto == proto.lower())


class Resolver:
    def __init__(self, cfg: KubernetesConfig, store: Store, local_ips: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.store = store
        self.local_ips = tuple(local_ips)
        self._zones = sorted(cfg.zones, key=len, reverse=True)
        self._zone_labels = {z: len(dns.name.from_text(z).labels) for z in cfg.zones}
        self._primary = dns.name.from_text(cfg.primary_zone)

    # -- entry point ------------------------------------------------------------------------
    def match_zone(self, lower: str) -> str | None:
        """The longest plugin zone holding ``lower`` (a lower-case fqdn), or None."""
        for z in self._zones:
            if _in_zone(lower, z):
                return z
        return None

    def resolve(self, qname: dns.name.Name, qtype: int) -> Result:
        """The plugin's answer for ``qname`` (any spelling) and ``qtype``."""
        lower = qname.to_text().lower()
        zone = self.match_zone(lower)
        if zone is None:
            return NEXT
        if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return REFUSED
        nzone = self._zone_labels[zone]
        q = _Query(zone, dns.name.Name(qname.labels[len(qname.labels) - nzone:]))
        answer, additional = self._dispatch(qname, lower, qtype, q)
        tags = frozenset(q.tags)
        serial = self.store.serial
        if answer is None:
            return self._name_error(lower, q, tags)
        if not answer:
            return Result(Outcome.REPLY, authority=(self._soa(q),), tags=tags, serial=serial)
        return Result(Outcome.REPLY, answer=rrsets(answer), additional=rrsets(additional),
                      chase=q.chase, tags=tags, serial=serial)

    def _name_error(self, lower: str, q: _Query, tags: frozenset[str]) -> Result:
        if self.cfg.falls_through(lower):
            return Result(Outcome.NEXT, tags=tags)
        rcode = dns.rcode.NXDOMAIN if self.store.synced else dns.rcode.SERVFAIL
        return Result(Outcome.REPLY, rcode, authority=(self._soa(q),), tags=tags,
                      serial=self.store.serial)

    def _dispatch(self, qname: dns.name.Name, lower: str, qtype: int,
                  q: _Query) -> tuple[Records | None, Records]:
        """(answer records or None for a name error, additional records)."""
        apex = lower == q.zone
        if qtype in (A, AAAA):
            return self._addresses(qname, lower, qtype, q, 0), []
        if qtype == dns.rdatatype.TXT:
            return self._txt(qname, lower, q), []
        if qtype == dns.rdatatype.SRV:
            return self._srv(qname, lower, q)
        if qtype == dns.rdatatype.CNAME:
            return self._cname(qname, lower, q), []
        if qtype == dns.rdatatype.PTR:
            return self._ptr(qname, lower, q), []
        if qtype == dns.rdatatype.SOA:
            return ([(q.zone_name, min(self.cfg.ttl, 300), self._soa_rdata(q))] if apex else []), []
        if qtype == dns.rdatatype.NS and apex:
            return self._ns(qname, q)
        # MX and everything else: an A lookup only decides NODATA vs NXDOMAIN.
        return (None if self._services(lower, A, q) is None else []), []

    # -- forward grammar --------------------------------------------------------------------
    def _parse(self, lower: str, zone: str) -> _Parsed | object | None:
        base = lower[: len(lower) - len(zone)].rstrip(".") if lower != zone else ""
        if base in ("", "svc", "pod"):
            return _STRUCTURAL
        segs = base.split(".")
        kind = segs[-1]
        if kind not in ("svc", "pod"):
            return None
        rest = segs[:-1]
        ns = rest[-1]
        if len(rest) == 1:
            return _Parsed(kind, ns, "")
        svc = rest[-2]
        left = rest[:-2]
        if not left:
            return _Parsed(kind, ns, svc)
        if len(left) == 1:
            return _Parsed(kind, ns, svc, endpoint=left[0])
        if len(left) == 2:
            return _Parsed(kind, ns, svc, port=_strip_underscore(left[0]),
                           protocol=_strip_underscore(left[1]))
        if self.cfg.zonal and kind == "svc" and left[-1] == "_zone":
            # <zone-value...>.<pin|prefer>._zone.<svc>.<ns>.svc (CoreDNS 1.14.7 zonal)
            return _Parsed(kind, ns, svc, zonal=(left[-2], ".".join(left[:-2])))
        return None

    def _records(self, lower: str, q: _Query) -> list[Entry] | None:
        """CoreDNS Records(): entries for a forward name, [] for structural names, None for
        a name error."""
        r = self._parse(lower, q.zone)
        if r is _STRUCTURAL:
            return []
        if r is None or not isinstance(r, _Parsed) or is_reverse(lower):
            return None
        q.tags.add("ns:" + r.namespace)
        if not self._exposed(r.namespace):
            return None
        if r.kind == "pod":
            q.tags.add("pod:*")
            return self._pods(r)
        return self._find_services(r, q)

    def _exposed(self, ns: str) -> bool:
        return self.cfg.namespace_allowed(ns) and self.store.has_namespace(ns)

    def _services(self, lower: str, qtype: int, q: _Query) -> list[Entry] | None:
        """CoreDNS Kubernetes.Services(): Records() plus the ns.dns name; SRV drops CNAMEs."""
        if lower == "ns.dns." + q.zone:
            fam = _FAMILY.get(qtype)
            return [Entry(ip, 0, "", f) for _, ip in self._ns_addrs(q)
                    if (f := ip_family(ip)) == fam]
        entries = self._records(lower, q)
        if qtype == dns.rdatatype.SRV and entries:
            entries = [e for e in entries if e.family]
        return entries

    def _find_services(self, r: _Parsed, q: _Query) -> list[Entry] | None:
        if not r.service:
            return []
        q.tags.add(f"svc:{r.namespace}/{r.service}")
        svc = self.store.service(r.namespace, r.service)
        if svc is None:
            return None
        store, cfg = self.store, self.cfg
        if r.zonal is not None:
            return self._zonal(r, svc)
        if cfg.ignore_empty_service and svc.kind == CLUSTER_IP and not any(
                sl.addrs for sl in store.slices_of(svc.namespace, svc.name)):
            return None
        if svc.kind == EXTERNAL_NAME:
            if r.endpoint or r.port or r.protocol or ip_family(svc.external_name) \
                    or not svc.external_name:
                return None
            host = svc.external_name if svc.external_name.endswith(".") \
                else svc.external_name + "."
            return [Entry(host, -1, f"{svc.name}.{svc.namespace}.svc", 0)]
        if svc.kind == HEADLESS_KIND or r.endpoint:
            return self._endpoints(svc, r)
        found = False
        out: list[Entry] = []
        target = f"{svc.name}.{svc.namespace}.svc"
        for p in svc.ports:
            if not _match_port(r.port, r.protocol, p.name, p.protocol):
                continue
            found = True
            out += [Entry(ip, p.port, target, ip_family(ip)) for ip in svc.ips if ip]
        return out if found else None

    def _zonal(self, r: _Parsed, svc: Svc) -> list[Entry] | None:
        """Zone-scoped endpoints of a headless service: ``pin`` keeps only the endpoints in
        the topology zone (none: NODATA), ``prefer`` falls back to all of them."""
        assert r.zonal is not None
        directive, zone = r.zonal
        if svc.kind != HEADLESS_KIND or directive not in ("pin", "prefer"):
            return None
        plain = _Parsed("svc", r.namespace, r.service)
        every = self._endpoints(svc, plain)
        if every is None:
            return None
        inside = self._endpoints(svc, plain, zone) or []
        if inside or directive == "pin":
            return inside
        return every

    def _endpoints(self, svc: Svc, r: _Parsed, zone: str | None = None) -> list[Entry] | None:
        """Endpoint entries of ``svc`` matching the endpoint/port labels of ``r`` (and the
        topology ``zone``); None when nothing matched."""
        found = False
        out: list[Entry] = []
        pod_names = self.cfg.endpoint_pod_names
        for sl in self.store.slices_of(svc.namespace, svc.name):
            for addr in sl.addrs:
                if zone is not None and addr.zone.lower() != zone:
                    continue
                name = endpoint_name(addr, pod_names)
                if r.endpoint and r.endpoint != name.lower():
                    continue
                for p in sl.ports:
                    if not _match_port(r.port, r.protocol, p.name, p.protocol):
                        continue
                    found = True
                    out.append(Entry(addr.ip, p.port, f"{name}.{svc.name}.{svc.namespace}.svc",
                                     ip_family(addr.ip)))
        return out if found else None

    def _pods(self, r: _Parsed) -> list[Entry] | None:
        mode = self.cfg.pods
        if mode == "disabled":
            return None
        if not r.service:
            return []
        ip = ip_from_pod_label(r.service)
        if ip is None:
            return None
        target = f"{r.service}.{r.namespace}.pod"
        if mode == "insecure":
            return [Entry(ip, 0, target, ip_family(ip))]
        pods = [p for p in self.store.pods_with_ip(ip) if p.namespace == r.namespace]
        return [Entry(ip, 0, target, ip_family(ip)) for _ in pods] or None

    # -- qtype handlers ---------------------------------------------------------------------
    def _name(self, relative: str, q: _Query) -> dns.name.Name:
        return dns.name.from_text(relative, origin=q.zone_name) if relative else q.zone_name

    def _addresses(self, qname: dns.name.Name, lower: str, qtype: int, q: _Query,
                   depth: int) -> Records | None:
        entries = self._services(lower, qtype, q)
        if entries is None:
            return None
        ttl = self.cfg.ttl
        fam = _FAMILY[qtype]
        out: Records = []
        seen: set[str] = set()
        for e in entries:
            if e.family == 0:
                out += self._follow_cname(qname, lower, qtype, q, e, depth)
            elif e.family == fam and e.host not in seen:
                seen.add(e.host)
                out.append((qname, ttl, address(qtype, e.host)))
        return out

    def _follow_cname(self, qname: dns.name.Name, lower: str, qtype: int, q: _Query,
                      e: Entry, depth: int) -> Records:
        target_l = e.host.lower()
        if target_l == lower or target_l.endswith("." + lower) or depth >= MAX_CNAME_CHAIN:
            return []  # a direct loop, or a chain that is too long
        target = target_name(e.host)
        if target is None:
            return []
        cname = (qname, self.cfg.ttl, dns.rdtypes.ANY.CNAME.CNAME(IN, dns.rdatatype.CNAME,
                                                                   target))
        if _in_zone(target_l, q.zone):
            nxt = self._addresses(target, target_l, qtype, q, depth + 1)
            return [cname, *nxt] if nxt else []
        if q.chase is None:
            q.chase = target
        return [cname]

    def _txt(self, qname: dns.name.Name, lower: str, q: _Query) -> Records | None:
        if lower == "dns-version." + q.zone:
            txt = dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, [DNS_SCHEMA_VERSION.encode()])
            return [(qname, DNS_VERSION_TTL, txt)]
        entries = self._records(lower, q)
        if entries:
            return []
        if entries is not None and self.cfg.zonal:
            r = self._parse(lower, q.zone)
            if isinstance(r, _Parsed) and r.zonal is not None:
                return []  # an existing zonal name without entries is NODATA for TXT too
        return None

    def _cname(self, qname: dns.name.Name, lower: str, q: _Query) -> Records | None:
        entries = self._services(lower, dns.rdatatype.CNAME, q)
        if entries is None:
            return None
        target = target_name(entries[0].host) if entries and entries[0].family == 0 else None
        if target is not None:
            return [(qname, self.cfg.ttl,
                     dns.rdtypes.ANY.CNAME.CNAME(IN, dns.rdatatype.CNAME, target))]
        return []

    def _srv(self, qname: dns.name.Name, lower: str, q: _Query) -> tuple[Records | None, Records]:
        entries = self._services(lower, dns.rdatatype.SRV, q)
        if entries is None:
            return None, []
        if not entries:
            return [], []
        ttl = self.cfg.ttl
        # CoreDNS: weight = floor(100/N) over all entries, port-less and duplicates included.
        weight = max(1, math.floor(100.0 / float(100 * len(entries)) * 100))
        out: Records = []
        extra: Records = []
        seen_srv: set[tuple[str, int]] = set()
        seen_addr: set[tuple[str, str]] = set()
        for e in entries:
            if e.port == -1:
                continue
            target = self._name(e.target, q)
            if (e.target, e.port) not in seen_srv:
                seen_srv.add((e.target, e.port))
                srv = dns.rdtypes.IN.SRV.SRV(IN, dns.rdatatype.SRV, 0, weight, e.port, target)
                out.append((qname, ttl, srv))
            if (e.target, e.host) not in seen_addr:
                seen_addr.add((e.target, e.host))
                extra.append((target, ttl, address(A if e.family == 4 else AAAA, e.host)))
        return out, extra

    def _ptr(self, qname: dns.name.Name, lower: str, q: _Query) -> Records | None:
        ip = ip_from_reverse(lower)
        if ip is None:
            return None if self._records(lower, q) is None else []
        q.tags.add("ip:" + ip)
        targets = self._reverse(ip)
        if not targets:
            return None
        ttl = self.cfg.ttl
        return [(qname, ttl, dns.rdtypes.ANY.PTR.PTR(IN, dns.rdatatype.PTR, t)) for t in targets]

    def _reverse(self, ip: str) -> list[dns.name.Name]:
        allowed = self.cfg.namespace_allowed
        for svc in self.store.services_with_ip(ip):
            if allowed(svc.namespace):
                return [dns.name.from_text(f"{svc.name}.{svc.namespace}.svc",
                                           origin=self._primary)]
        out: dict[str, None] = {}
        for sl in self.store.slices_with_ip(ip):
            if not allowed(sl.namespace) or not sl.service:
                continue
            for addr in sl.addrs:
                if addr.ip == ip:
                    name = endpoint_name(addr, self.cfg.endpoint_pod_names)
                    out[f"{name}.{sl.service}.{sl.namespace}.svc"] = None
        return [dns.name.from_text(t, origin=self._primary) for t in out]

    # -- apex: SOA and NS -------------------------------------------------------------------
    def _soa_rdata(self, q: _Query) -> dns.rdtypes.ANY.SOA.SOA:
        z = q.zone_name
        return dns.rdtypes.ANY.SOA.SOA(
            IN, dns.rdatatype.SOA, dns.name.Name((b"ns", b"dns", *z.labels)),
            dns.name.Name((b"hostmaster", *z.labels)), self.store.serial & 0xFFFFFFFF,
            7200, 1800, 86400, self.cfg.ttl)

    def _soa(self, q: _Query) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(q.zone_name, IN, dns.rdatatype.SOA)
        rrset.add(self._soa_rdata(q), min(self.cfg.ttl, 300))
        return rrset

    def _ns_addrs(self, q: _Query) -> list[tuple[str, str]]:
        """(name relative to the zone, IP) of this DNS server (CoreDNS nsAddrs)."""
        out: list[tuple[str, str]] = []
        store = self.store
        for lip in self.local_ips:
            q.tags.add("ip:" + lip)
            for sl in store.slices_with_ip(lip):
                if sl.service:
                    q.tags.add(f"svc:{sl.namespace}/{sl.service}")
                svc = store.service(sl.namespace, sl.service) if sl.service else None
                if svc is None or svc.kind == EXTERNAL_NAME:
                    continue
                base = f"{svc.name}.{svc.namespace}.svc"
                if svc.kind == HEADLESS_KIND:
                    out += [(f"{endpoint_name(a, self.cfg.endpoint_pod_names)}.{base}", a.ip)
                            for a in sl.addrs]
                elif svc.ips and svc.ips[0]:
                    out.append((base, svc.ips[0]))
        if not out:
            out = [("ns.dns", ip) for ip in self.local_ips]
        return out

    def _ns(self, qname: dns.name.Name, q: _Query) -> tuple[Records, Records]:
        ttl = self.cfg.ttl
        out: Records = []
        extra: Records = []
        seen: set[str] = set()
        for rel, ip in self._ns_addrs(q):
            fam = ip_family(ip)
            if not fam:
                continue
            target = self._name(rel, q)
            extra.append((target, ttl, address(A if fam == 4 else AAAA, ip)))
            if rel not in seen:
                seen.add(rel)
                out.append((qname, ttl, dns.rdtypes.ANY.NS.NS(IN, dns.rdatatype.NS, target)))
        return out, extra
