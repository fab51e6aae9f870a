"""Service models shared by the renderer's golden tests and the nft syntax checks."""

from __future__ import annotations

from kdns.proxy.model import Endpoint, ServicePort
from kdns.proxy.render import RenderConfig

NODE = "node-a"
CFG = RenderConfig(
    node_name=NODE,
    table="kdns-proxy",
    cluster_cidrs=("10.244.0.0/16", "fd00:244::/32"),
    service_cidrs=("10.96.0.0/16", "fd00:96::/112"),
)


def ep(ip: str, port: int, node: str = NODE, **cond: bool) -> Endpoint:
    return Endpoint(ip, port, node, **cond)


WEB = ServicePort(
    "default", "web", "http", "tcp", 80, ("10.96.0.10",),
    endpoints=(ep("10.244.1.10", 8080), ep("10.244.2.11", 8080, "node-b")),
)
# Multi-port UDP+TCP DNS service; targetPort "dns" resolved to 5353 by the EndpointSlice.
DNS = (
    ServicePort("kube-system", "kube-dns", "dns", "udp", 53, ("10.96.0.53",),
                endpoints=(ep("10.244.1.20", 5353), ep("10.244.2.21", 5353, "node-b"))),
    ServicePort("kube-system", "kube-dns", "dns-tcp", "tcp", 53, ("10.96.0.53",),
                endpoints=(ep("10.244.1.20", 5353), ep("10.244.2.21", 5353, "node-b"))),
)
SCTP = ServicePort("default", "sig", "", "sctp", 3868, ("10.96.0.30",),
                   endpoints=(ep("10.244.1.30", 3868),))
EMPTY = ServicePort("default", "empty", "http", "tcp", 80, ("10.96.0.11",), node_port=30011)
NODEPORT = ServicePort(
    "default", "np", "http", "tcp", 80, ("10.96.0.12",), node_port=30080,
    external_ips=("192.0.2.80",), endpoints=WEB.endpoints,
)
NODEPORT_LOCAL = ServicePort(
    "default", "np-local", "http", "tcp", 80, ("10.96.0.13",), node_port=30081,
    external_local=True, endpoints=WEB.endpoints,
)
NODEPORT_LOCAL_NONE_HERE = ServicePort(
    "default", "np-remote", "http", "tcp", 80, ("10.96.0.14",), node_port=30082,
    external_local=True, endpoints=(ep("10.244.2.11", 8080, "node-b"),),
)
AFFINITY = ServicePort(
    "default", "sticky", "http", "tcp", 80, ("10.96.0.15",), affinity_timeout=600,
    endpoints=WEB.endpoints,
)
INTERNAL_LOCAL = ServicePort(
    "default", "itp", "http", "tcp", 80, ("10.96.0.16",), internal_local=True,
    endpoints=WEB.endpoints,
)
INTERNAL_LOCAL_NONE_HERE = ServicePort(
    "default", "itp-remote", "http", "tcp", 80, ("10.96.0.17",), internal_local=True,
    endpoints=(ep("10.244.2.11", 8080, "node-b"),),
)
TERMINATING = ServicePort(
    "default", "drain", "http", "tcp", 80, ("10.96.0.18",),
    endpoints=(
        ep("10.244.1.40", 8080, ready=False, serving=True, terminating=True),
        ep("10.244.1.41", 8080, ready=False, serving=False, terminating=True),
        ep("10.244.2.42", 8080, "node-b", ready=False, serving=True, terminating=True),
    ),
)
READY_AND_TERMINATING = ServicePort(
    "default", "rollout", "http", "tcp", 80, ("10.96.0.19",),
    endpoints=(
        ep("10.244.1.50", 8080),
        ep("10.244.1.51", 8080, ready=False, serving=True, terminating=True),
    ),
)
DUAL = ServicePort(
    "default", "dual", "http", "tcp", 80, ("10.96.0.20", "fd00:96::20"), node_port=30090,
    endpoints=(ep("10.244.1.60", 8080), ep("fd00:244:1::60", 8080)),
)

LOADBALANCER = ServicePort(
    "default", "lb", "https", "tcp", 443, ("10.96.0.21",), node_port=30443,
    external_ips=("192.0.2.90", "198.51.100.1"), lb_ips=("198.51.100.1",),
    source_ranges=("203.0.113.0/24", "192.0.2.0/25", "2001:db8:1::/48"),
    endpoints=WEB.endpoints,
)

SCENARIOS: dict[str, tuple[ServicePort, ...]] = {
    "clusterip": (WEB,),
    "multiport_udp_dns": DNS,
    "sctp": (SCTP,),
    "no_endpoints": (EMPTY,),
    "nodeport_cluster": (NODEPORT,),
    "nodeport_local": (NODEPORT_LOCAL, NODEPORT_LOCAL_NONE_HERE),
    "affinity": (AFFINITY,),
    "internal_local": (INTERNAL_LOCAL, INTERNAL_LOCAL_NONE_HERE),
    "terminating": (TERMINATING, READY_AND_TERMINATING),
    "dual_stack": (DUAL,),
    "loadbalancer_source_ranges": (LOADBALANCER,),
}
