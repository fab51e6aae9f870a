"""A synthetic cluster, the same data three ways: API objects (for kdns through the fake API
server), an RFC 1035 zone file (for BIND, Knot, twisted.names) and dnsmasq options; plus the
dnsperf query mix."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

ZONE = "cluster.local"
EXTERNAL_ZONE = "example.com"


@dataclass
class Cluster:
    services: int = 1000
    headless: int = 50
    endpoints: int = 10
    namespaces: int = 20
    externals: int = 50
    seed: int = 7
    svc: list[tuple[str, str, str]] = field(default_factory=list)  # ns, name, clusterIP
    hsvc: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(self.services):
            ns = f"ns{i % self.namespaces}"
            self.svc.append((ns, f"svc{i}", f"10.96.{(i // 250) + 1}.{i % 250 + 1}"))
        for i in range(self.headless):
            ns = f"ns{i % self.namespaces}"
            ips = [f"10.244.{i % 250}.{j + 1}" for j in range(self.endpoints)]
            self.hsvc.append((ns, f"hl{i}", ips))

    # --- kdns: objects for the fake API server --------------------------------------------
    def write_objects(self, directory: Path) -> None:
        from tests.fakeapi import objects as k8s

        directory.mkdir(parents=True, exist_ok=True)
        objs = [k8s.namespace(f"ns{i}") for i in range(self.namespaces)]
        objs.append(k8s.namespace("default"))
        objs.append(k8s.service("default", "kubernetes", cluster_ip="10.96.0.1",
                                ports=[k8s.port("https", 443)]))
        for ns, name, ip in self.svc:
            objs.append(k8s.service(ns, name, cluster_ip=ip, ports=[k8s.port("http", 80)]))
        for ns, name, ips in self.hsvc:
            objs.append(k8s.service(ns, name, cluster_ip="None", ports=[k8s.port("http", 80)]))
            objs.append(k8s.endpointslice(ns, f"{name}-abc", name,
                                          [k8s.endpoint(ip) for ip in ips]))
        (directory / "cluster.json").write_text(json.dumps({"kind": "List", "items": objs}))

    # --- peers: one zone file with the same answers -----------------------------------------
    def zone_text(self) -> str:
        lines = [f"$ORIGIN {ZONE}.", "$TTL 5",
                 f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5",
                 f"@ IN NS ns.dns.{ZONE}.", "ns.dns IN A 10.96.0.10",
                 "kubernetes.default.svc IN A 10.96.0.1"]
        for ns, name, ip in self.svc:
            lines.append(f"{name}.{ns}.svc IN A {ip}")
            lines.append(f"_http._tcp.{name}.{ns}.svc IN SRV 0 100 80 {name}.{ns}.svc.{ZONE}.")
        for ns, name, ips in self.hsvc:
            for ip in ips:
                lines.append(f"{name}.{ns}.svc IN A {ip}")
        return "\n".join(lines) + "\n"

    def external_zone_text(self) -> str:
        lines = [f"$ORIGIN {EXTERNAL_ZONE}.", "$TTL 300",
                 f"@ IN SOA ns.{EXTERNAL_ZONE}. hostmaster.{EXTERNAL_ZONE}. 1 7200 1800 86400 60",
                 f"@ IN NS ns.{EXTERNAL_ZONE}.", "ns IN A 192.0.2.1"]
        for i in range(self.externals):
            lines.append(f"host{i} IN A 192.0.2.{i % 250 + 1}")
        return "\n".join(lines) + "\n"

    def dnsmasq_args(self) -> list[str]:
        args = [f"--local=/{ZONE}/", f"--local=/{EXTERNAL_ZONE}/",
                f"--host-record=kubernetes.default.svc.{ZONE},10.96.0.1"]
        for ns, name, ip in self.svc:
            fq = f"{name}.{ns}.svc.{ZONE}"
            args.append(f"--host-record={fq},{ip}")
            args.append(f"--srv-host=_http._tcp.{fq},{fq},80,0,100")
        for ns, name, ips in self.hsvc:
            for ip in ips:
                args.append(f"--host-record={name}.{ns}.svc.{ZONE},{ip}")
        for i in range(self.externals):
            args.append(f"--host-record=host{i}.{EXTERNAL_ZONE},192.0.2.{i % 250 + 1}")
        return args

    # --- the query mix ----------------------------------------------------------------------
    def queries(self, count: int = 20000) -> list[str]:
        """Cluster A names, ndots:5 search-path NXDOMAINs, SRV, AAAA NODATA, external names
        (cache hits for kdns), in mixed case."""
        rng = random.Random(self.seed)
        out = []
        for _ in range(count):
            r = rng.random()
            ns, name, _ = rng.choice(self.svc)
            if r < 0.45:
                q = f"{name}.{ns}.svc.{ZONE} A"
            elif r < 0.55:
                hns, hname, _ = rng.choice(self.hsvc)
                q = f"{hname}.{hns}.svc.{ZONE} A"
            elif r < 0.70:  # a pod in ns resolving an external name through its search path
                ext = f"host{rng.randrange(self.externals)}.{EXTERNAL_ZONE}"
                suffix = rng.choice([f"{ns}.svc.{ZONE}", f"svc.{ZONE}", ZONE])
                q = f"{ext}.{suffix} A"
            elif r < 0.75:
                q = f"_http._tcp.{name}.{ns}.svc.{ZONE} SRV"
            elif r < 0.85:
                q = f"{name}.{ns}.svc.{ZONE} AAAA"
            else:
                q = f"host{rng.randrange(self.externals)}.{EXTERNAL_ZONE} A"
            out.append(_mixed_case(q, rng))
        return out


def _mixed_case(line: str, rng: random.Random) -> str:
    name, qtype = line.rsplit(" ", 1)
    if rng.random() < 0.2:
        name = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return f"{name} {qtype}"


def hosts_queries(names: list[str], count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(names)} A" for _ in range(count)]
