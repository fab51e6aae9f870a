"""The proxy's view of the cluster: service ports joined with their endpoints (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Family = Literal["ip", "ip6"]
FAMILIES: Final[tuple[Family, ...]] = ("ip", "ip6")
PROTOCOLS: Final[frozenset[str]] = frozenset({"tcp", "udp", "sctp"})
DEFAULT_AFFINITY_TIMEOUT: Final = 10800  # seconds; Kubernetes' default for ClientIP affinity


def family_of(address: str) -> Family:
    """The nftables family ("ip" or "ip6") of an address or network (already validated)."""
    return "ip6" if ":" in address else "ip"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One backend address of a service port, with EndpointSlice conditions."""

    ip: str
    port: int
    node: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    zone_hints: tuple[str, ...] = ()  # hints.forZones: zones this endpoint should serve

    @property
    def family(self) -> Family:
        return family_of(self.ip)


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service, with everything the proxy needs to program it.

    ``affinity_timeout`` is set only for sessionAffinity ClientIP. ``external_ips`` holds
    spec.externalIPs and load-balancer ingress IPs; both get external-traffic treatment.
    ``lb_ips`` repeats the ingress IPs: only they are filtered by ``source_ranges``
    (spec.loadBalancerSourceRanges).
    ``health_check_node_port`` is set only for externalTrafficPolicy Local.
    """

    namespace: str
    name: str
    port_name: str
    protocol: str
    port: int
    cluster_ips: tuple[str, ...]
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    affinity_timeout: int | None = None
    external_local: bool = False
    internal_local: bool = False
    endpoints: tuple[Endpoint, ...] = ()
    health_check_node_port: int = 0  # eTP=Local: load balancers probe this node port
    lb_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """``ns/svc:port`` as kube-proxy prints it (the port name may be empty)."""
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.external_ips)

    def cluster_ip(self, family: Family) -> str | None:
        return next((ip for ip in self.cluster_ips if family_of(ip) == family), None)
