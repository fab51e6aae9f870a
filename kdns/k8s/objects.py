"""Compact records for the objects kdns watches, and the reducers that build them from raw JSON.

Records keep only what the kubernetes plugin and kdns-proxy need. They are frozen, slotted and
hashable (labels are a sorted tuple of pairs); repeated strings (namespaces, node names, zones,
protocols) are interned. Values are kept as the API sent them (a port ``protocol`` the object
omits is ``""``; the API server always defaults it to TCP), so consumers apply their own rules.

Every reducer raises ``MalformedObject`` (with the offending field path) for an object of the
wrong shape; the reflector counts and skips those. Reducers never return None: wrap one when a
consumer wants to drop objects (``Reflector``'s ``reduce`` may return None to mean "delete").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Final

from kdns.k8s import _json as j
from kdns.k8s._json import Labels
from kdns.k8s.errors import MalformedObject

HEADLESS: Final = "None"  # spec.clusterIP(s) of a headless service
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION: Final = "endpoints.kubernetes.io/last-change-trigger-time"
_PORT_MAX: Final = 65535


def _label(labels: Labels, key: str) -> str | None:
    for k, v in labels:
        if k == key:
            return v
    return None


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    protocol: str
    port: int
    target_port: int | str | None
    node_port: int | None
    app_protocol: str | None


@dataclass(frozen=True, slots=True)
class Service:
    """A v1 Service. ``cluster_ips`` is ``spec.clusterIPs`` or else ``(spec.clusterIP,)``,
    exactly as CoreDNS reads it: ``("None",)`` is headless, ``("",)`` has no IP."""

    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[ServicePort, ...]
    session_affinity: str
    session_affinity_timeout: int | None
    external_traffic_policy: str
    internal_traffic_policy: str
    labels: Labels
    has_selector: bool
    publish_not_ready_addresses: bool
    ip_families: tuple[str, ...]
    external_ips: tuple[str, ...]
    load_balancer_ips: tuple[str, ...]
    load_balancer_source_ranges: tuple[str, ...]
    health_check_node_port: int | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_headless(self) -> bool:
        return bool(self.cluster_ips) and self.cluster_ips[0] == HEADLESS

    @property
    def is_external_name(self) -> bool:
        return self.type == "ExternalName"

    def label(self, key: str) -> str | None:
        return _label(self.labels, key)


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    protocol: str
    port: int | None  # None: "all ports" (allowed by the API, unusual)
    app_protocol: str | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``endpoints[]`` entry. ``ready`` follows API semantics: a missing ready counts as
    ready; a missing ``serving`` equals ``ready``; a missing ``terminating`` is False."""

    addresses: tuple[str, ...]
    hostname: str | None
    node_name: str | None
    zone: str | None
    ready: bool
    serving: bool
    terminating: bool
    target_kind: str | None
    target_name: str | None
    target_namespace: str | None
    for_zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice; ``service_name`` comes from the
    ``kubernetes.io/service-name`` label (None when the label is missing)."""

    namespace: str
    name: str
    service_name: str | None
    address_type: str
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]
    labels: Labels
    last_change_trigger_time: float | None  # unix seconds, from the trigger-time annotation

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def service_key(self) -> str | None:
        return f"{self.namespace}/{self.service_name}" if self.service_name else None


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Labels

    @property
    def key(self) -> str:
        return self.name

    def label(self, key: str) -> str | None:
        return _label(self.labels, key)


@dataclass(frozen=True, slots=True)
class Pod:
    """A v1 Pod. ``pod_ips`` starts with ``status.podIP`` (the primary IP CoreDNS indexes)."""

    namespace: str
    name: str
    pod_ips: tuple[str, ...]
    phase: str
    deleting: bool  # metadata.deletionTimestamp is set
    host_network: bool
    node_name: str | None
    labels: Labels

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_ip(self) -> str | None:
        return self.pod_ips[0] if self.pod_ips else None


# -- reducers --------------------------------------------------------------------------------


def reduce_service(raw: dict[str, Any]) -> Service:
    meta = j.obj(raw.get("metadata"), "metadata")
    spec = j.obj(raw.get("spec"), "spec")
    status = j.obj(raw.get("status"), "status")
    namespace, name = j.identity(meta, namespaced=True)
    cluster_ips = j.strings(spec.get("clusterIPs"), "spec.clusterIPs")
    if not cluster_ips:
        cluster_ips = (j.string(spec.get("clusterIP"), "spec.clusterIP"),)
    ports = tuple(
        _service_port(p, f"spec.ports[{i}]")
        for i, p in enumerate(j.array(spec.get("ports"), "spec.ports"))
    )
    affinity_cfg = j.obj(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    client_ip = j.obj(affinity_cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
    lb = j.obj(status.get("loadBalancer"), "status.loadBalancer")
    lb_ips = tuple(
        j.string(j.obj(ing, f"status.loadBalancer.ingress[{i}]").get("ip"), "ip")
        for i, ing in enumerate(j.array(lb.get("ingress"), "status.loadBalancer.ingress"))
    )
    return Service(
        namespace=namespace,
        name=name,
        type=j.interned(spec.get("type"), "spec.type"),
        cluster_ips=cluster_ips,
        external_name=j.string(spec.get("externalName"), "spec.externalName"),
        ports=ports,
        session_affinity=j.interned(
            spec.get("sessionAffinity"), "spec.sessionAffinity", default="None"
        ),
        session_affinity_timeout=j.integer(
            client_ip.get("timeoutSeconds"), "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        ),
        external_traffic_policy=j.interned(
            spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy"
        ),
        internal_traffic_policy=j.interned(
            spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy"
        ),
        labels=j.labels(meta.get("labels"), "metadata.labels"),
        has_selector=bool(j.obj(spec.get("selector"), "spec.selector")),
        publish_not_ready_addresses=bool(
            j.boolean(spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses")
        ),
        ip_families=tuple(
            sys.intern(f) for f in j.strings(spec.get("ipFamilies"), "spec.ipFamilies")
        ),
        external_ips=j.strings(spec.get("externalIPs"), "spec.externalIPs"),
        load_balancer_ips=tuple(ip for ip in lb_ips if ip),
        load_balancer_source_ranges=j.strings(
            spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges"
        ),
        health_check_node_port=j.integer(
            spec.get("healthCheckNodePort"), "spec.healthCheckNodePort", lo=0, hi=_PORT_MAX
        )
        or None,
    )


def _service_port(raw: Any, where: str) -> ServicePort:
    p = j.obj(raw, where)
    port = j.integer(p.get("port"), where, ".port", lo=0, hi=_PORT_MAX)
    if port is None:
        raise MalformedObject(f"{where}.port: missing")
    target = p.get("targetPort")
    if (target is not None and not isinstance(target, (int, str))) or isinstance(target, bool):
        raise MalformedObject(f"{where}.targetPort: expected an integer or a name")
    return ServicePort(
        name=j.interned(p.get("name"), where, ".name"),
        protocol=j.interned(p.get("protocol"), where, ".protocol"),
        port=port,
        target_port=target,
        node_port=j.integer(p.get("nodePort"), where, ".nodePort", lo=0, hi=_PORT_MAX) or None,
        app_protocol=j.opt_interned(p.get("appProtocol"), where, ".appProtocol"),
    )


def reduce_endpointslice(raw: dict[str, Any]) -> EndpointSlice:
    meta = j.obj(raw.get("metadata"), "metadata")
    namespace, name = j.identity(meta, namespaced=True)
    labels = j.labels(meta.get("labels"), "metadata.labels")
    annotations = j.obj(meta.get("annotations"), "metadata.annotations")
    ports = tuple(
        _endpoint_port(p, f"ports[{i}]") for i, p in enumerate(j.array(raw.get("ports"), "ports"))
    )
    endpoints = tuple(
        _endpoint(e, f"endpoints[{i}]")
        for i, e in enumerate(j.array(raw.get("endpoints"), "endpoints"))
    )
    return EndpointSlice(
        namespace=namespace,
        name=name,
        service_name=_label(labels, SERVICE_NAME_LABEL),
        address_type=j.interned(raw.get("addressType"), "addressType"),
        ports=ports,
        endpoints=endpoints,
        labels=labels,
        last_change_trigger_time=j.timestamp(annotations.get(TRIGGER_TIME_ANNOTATION)),
    )


def _endpoint_port(raw: Any, where: str) -> EndpointPort:
    p = j.obj(raw, where)
    return EndpointPort(
        name=j.interned(p.get("name"), where, ".name"),
        protocol=j.interned(p.get("protocol"), where, ".protocol"),
        port=j.integer(p.get("port"), where, ".port", lo=0, hi=_PORT_MAX),
        app_protocol=j.opt_interned(p.get("appProtocol"), where, ".appProtocol"),
    )


def _endpoint(raw: Any, where: str) -> Endpoint:
    e = j.obj(raw, where)
    cond = j.obj(e.get("conditions"), where, ".conditions")
    ready = j.boolean(cond.get("ready"), where, ".conditions.ready")
    ready = True if ready is None else ready
    serving = j.boolean(cond.get("serving"), where, ".conditions.serving")
    terminating = j.boolean(cond.get("terminating"), where, ".conditions.terminating")
    ref = j.obj(e.get("targetRef"), where, ".targetRef")
    hints = j.obj(e.get("hints"), where, ".hints")
    for_zones = tuple(
        j.interned(j.obj(z, f"{where}.hints.forZones[{i}]").get("name"), "name")
        for i, z in enumerate(j.array(hints.get("forZones"), where, ".hints.forZones"))
    )
    return Endpoint(
        addresses=j.strings(e.get("addresses"), where, ".addresses"),
        hostname=j.opt_string(e.get("hostname"), where, ".hostname"),
        node_name=j.opt_interned(e.get("nodeName"), where, ".nodeName"),
        zone=j.opt_interned(e.get("zone"), where, ".zone"),
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=bool(terminating),
        target_kind=j.opt_interned(ref.get("kind"), where, ".targetRef.kind"),
        target_name=j.opt_string(ref.get("name"), where, ".targetRef.name"),
        target_namespace=j.opt_interned(ref.get("namespace"), where, ".targetRef.namespace"),
        for_zones=for_zones,
    )


def reduce_namespace(raw: dict[str, Any]) -> Namespace:
    meta = j.obj(raw.get("metadata"), "metadata")
    _, name = j.identity(meta, namespaced=False)
    return Namespace(name=name, labels=j.labels(meta.get("labels"), "metadata.labels"))


def reduce_pod(raw: dict[str, Any]) -> Pod:
    meta = j.obj(raw.get("metadata"), "metadata")
    spec = j.obj(raw.get("spec"), "spec")
    status = j.obj(raw.get("status"), "status")
    namespace, name = j.identity(meta, namespaced=True)
    primary = j.string(status.get("podIP"), "status.podIP")
    ips = [
        j.string(j.obj(p, f"status.podIPs[{i}]").get("ip"), f"status.podIPs[{i}].ip")
        for i, p in enumerate(j.array(status.get("podIPs"), "status.podIPs"))
    ]
    ordered = ([primary] if primary else []) + [ip for ip in ips if ip and ip != primary]
    return Pod(
        namespace=namespace,
        name=name,
        pod_ips=tuple(ordered),
        phase=j.interned(status.get("phase"), "status.phase"),
        deleting=meta.get("deletionTimestamp") is not None,
        host_network=bool(j.boolean(spec.get("hostNetwork"), "spec.hostNetwork")),
        node_name=j.opt_interned(spec.get("nodeName"), "spec.nodeName"),
        labels=j.labels(meta.get("labels"), "metadata.labels"),
    )
