"""The plugin's own compact records, reduced from raw API JSON at once.

Only what DNS needs is kept (CoreDNS plugin/kubernetes/object/*.go): not-ready endpoints are
dropped at reduction time, every address becomes one ``Addr``, and a missing port list becomes
the ``NO_PORT`` marker (port -1: A/AAAA still work, SRV skips it). ``version`` is the object's
resourceVersion, so a relist can tell unchanged objects apart cheaply.

Records are NamedTuples of strings and ints, not dataclasses: the cyclic GC stops tracking such
tuples, so 100,000 endpoints add nothing to the cost of a full collection (a full collection
over a million tracked objects stalls the event loop for hundreds of milliseconds).
"""

from __future__ import annotations

import sys
from typing import Any, Final, NamedTuple

from kdns.k8s.objects import (
    HEADLESS,
    reduce_endpointslice,
    reduce_namespace,
    reduce_pod,
    reduce_service,
)

CLUSTER_IP: Final = 0
HEADLESS_KIND: Final = 1
EXTERNAL_NAME: Final = 2
MAX_TARGET_NAME: Final = 63  # CoreDNS keeps targetRef.name only up to a label's length
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Unknown"})


class Port(NamedTuple):
    name: str
    protocol: str
    port: int  # -1: the "no port" marker


NO_PORT: Final = Port("", "", -1)
NO_PORTS: Final = (NO_PORT,)


class Svc(NamedTuple):
    namespace: str
    name: str
    kind: int  # CLUSTER_IP, HEADLESS_KIND or EXTERNAL_NAME
    ips: tuple[str, ...]  # clusterIPs as the API wrote them
    external_name: str
    ports: tuple[Port, ...]
    version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class Addr(NamedTuple):
    ip: str
    hostname: str  # "" when unset
    target_name: str  # targetRef.name when <= 63 chars, else ""
    zone: str  # topology zone, "" when unset


class Slice(NamedTuple):
    namespace: str
    name: str
    service: str  # kubernetes.io/service-name label, "" when missing
    ports: tuple[Port, ...]
    addrs: tuple[Addr, ...]  # ready addresses only
    trigger_time: float | None = None
    version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.service}" if self.service else ""


class PodRec(NamedTuple):
    namespace: str
    name: str
    ip: str  # status.podIP only; podIPs secondaries are ignored, as in CoreDNS
    deleting: bool
    version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _version(raw: dict[str, Any]) -> str:
    meta = raw.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) else ""


def _intern(s: str | None) -> str:
    return sys.intern(s) if s else ""


def svc_from_raw(raw: dict[str, Any]) -> Svc:
    s = reduce_service(raw)
    if s.is_external_name:
        kind = EXTERNAL_NAME
    elif s.cluster_ips and s.cluster_ips[0] == HEADLESS:
        kind = HEADLESS_KIND
    else:
        kind = CLUSTER_IP
    ports = tuple(Port(p.name, p.protocol, p.port) for p in s.ports) or NO_PORTS
    return Svc(_intern(s.namespace), s.name, kind, s.cluster_ips, s.external_name, ports,
               _version(raw))


def slice_from_raw(raw: dict[str, Any]) -> Slice:
    e = reduce_endpointslice(raw)
    ports = tuple(
        Port(p.name, p.protocol, -1 if p.port is None else p.port) for p in e.ports
    ) or NO_PORTS
    addrs = []
    for ep in e.endpoints:
        if not ep.ready:
            continue
        target = ep.target_name if ep.target_name and len(ep.target_name) <= MAX_TARGET_NAME \
            else ""
        for ip in ep.addresses:
            addrs.append(Addr(ip, ep.hostname or "", target, _intern(ep.zone)))
    return Slice(_intern(e.namespace), e.name, _intern(e.service_name), ports, tuple(addrs),
                 e.last_change_trigger_time, _version(raw))


def pod_from_raw(raw: dict[str, Any]) -> PodRec | None:
    """None for pods a field selector would have filtered out (terminal phases)."""
    p = reduce_pod(raw)
    if p.phase in TERMINAL_PHASES:
        return None
    return PodRec(_intern(p.namespace), p.name, p.pod_ip or "", p.deleting, _version(raw))


def namespace_from_raw(raw: dict[str, Any]) -> str:
    return reduce_namespace(raw).name
