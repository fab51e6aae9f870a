"""Compact Service and EndpointSlice records reduced from API JSON, and the join into ServicePorts.

The proxy keeps its own reducers (rather than the DNS plugin's records) because it needs fields
DNS never looks at: nodePort, traffic policies, affinity timeout, endpoint conditions per node.
Reducers return None for objects the proxy ignores (headless, ExternalName, FQDN slices) and
raise ``BadObject`` for malformed ones, so one bad object is skipped with a clear message.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from kdns.proxy.model import DEFAULT_AFFINITY_TIMEOUT, PROTOCOLS, Endpoint, ServicePort

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
T = TypeVar("T")


class BadObject(ValueError):
    """An API object has a field the proxy cannot interpret."""


@dataclass(frozen=True, slots=True)
class SvcPort:
    name: str
    protocol: str
    port: int
    node_port: int


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]
    ports: tuple[SvcPort, ...]
    external_ips: tuple[str, ...] = ()
    affinity_timeout: int | None = None
    external_local: bool = False
    internal_local: bool = False
    health_check_node_port: int = 0
    lb_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str
    ports: tuple[SlicePort, ...]
    endpoints: tuple[Endpoint, ...]  # port 0 here; the join fills in each slice port

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.service}"


def _ip(value: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise BadObject(f"{what}: {value!r} is not an IP address") from None


def _cidr(value: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        raise BadObject(f"{what}: {value!r} is not a CIDR") from None


def _port(value: Any, what: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadObject(f"{what}: {value!r} is not a port number")
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise BadObject(f"{what}: {value} is out of range")
    return value


def _protocol(value: Any, what: str) -> str:
    proto = str(value or "TCP").lower()
    if proto not in PROTOCOLS:
        raise BadObject(f"{what}: unsupported protocol {value!r}")
    return proto


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        raise BadObject("metadata.namespace and metadata.name are required")
    return namespace, name


def _shape_errors_are_bad_objects(fn: Callable[[Mapping[str, Any]], T]) -> Callable[
    [Mapping[str, Any]], T
]:
    """A field of the wrong JSON type (a list where a dict belongs...) becomes BadObject."""

    @functools.wraps(fn)
    def wrapper(obj: Mapping[str, Any]) -> T:
        try:
            return fn(obj)
        except (AttributeError, TypeError, KeyError) as e:
            raise BadObject(f"unexpected object shape: {type(e).__name__}: {e}") from None

    return wrapper


@_shape_errors_are_bad_objects
def reduce_service(obj: Mapping[str, Any]) -> Service | None:
    """A Service the proxy programs, or None for ExternalName and headless services."""
    namespace, name = _meta(obj)
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    raw_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if not raw_ips or raw_ips[0] == "None":
        return None
    cluster_ips = tuple(_ip(ip, f"{namespace}/{name} clusterIPs") for ip in raw_ips)
    ports = tuple(
        SvcPort(
            name=str(p.get("name") or ""),
            protocol=_protocol(p.get("protocol"), f"{namespace}/{name} port"),
            port=_port(p.get("port"), f"{namespace}/{name} port"),
            node_port=_port(p.get("nodePort") or 0, f"{namespace}/{name} nodePort",
                            allow_zero=True),
        )
        for p in spec.get("ports") or ()
    )
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    lb_ips = tuple(_ip(i["ip"], f"{namespace}/{name} ingress IP") for i in ingress if i.get("ip"))
    external = [*(spec.get("externalIPs") or ()), *lb_ips]
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT
        if isinstance(affinity, bool) or not isinstance(affinity, int) or affinity < 1:
            raise BadObject(f"{namespace}/{name}: bad sessionAffinity timeoutSeconds {affinity!r}")
    return Service(
        namespace=namespace,
        name=name,
        cluster_ips=cluster_ips,
        ports=ports,
        external_ips=tuple(_ip(ip, f"{namespace}/{name} external IP") for ip in external),
        affinity_timeout=affinity,
        external_local=spec.get("externalTrafficPolicy") == "Local",
        internal_local=spec.get("internalTrafficPolicy") == "Local",
        health_check_node_port=_port(spec.get("healthCheckNodePort") or 0,
                                     f"{namespace}/{name} healthCheckNodePort", allow_zero=True),
        lb_ips=lb_ips,
        source_ranges=tuple(_cidr(c, f"{namespace}/{name} loadBalancerSourceRanges")
                            for c in spec.get("loadBalancerSourceRanges") or ()),
    )


def _condition(conditions: Mapping[str, Any], name: str, default: bool) -> bool:
    value = conditions.get(name)
    return default if value is None else bool(value)


@_shape_errors_are_bad_objects
def reduce_endpoint_slice(obj: Mapping[str, Any]) -> EndpointSlice | None:
    """An EndpointSlice of a Service, or None for FQDN slices and slices without a Service."""
    namespace, name = _meta(obj)
    service = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service or obj.get("addressType") not in ("IPv4", "IPv6"):
        return None
    ports = tuple(
        SlicePort(
            name=str(p.get("name") or ""),
            protocol=_protocol(p.get("protocol"), f"{namespace}/{name} port"),
            port=_port(p.get("port"), f"{namespace}/{name} port"),
        )
        for p in obj.get("ports") or ()
        if p.get("port") is not None
    )
    endpoints = []
    for ep in obj.get("endpoints") or ():
        cond = ep.get("conditions") or {}
        ready = _condition(cond, "ready", True)
        hints = tuple(str(z["name"]) for z in (ep.get("hints") or {}).get("forZones") or ()
                      if z.get("name"))
        for address in ep.get("addresses") or ():
            endpoints.append(
                Endpoint(
                    ip=_ip(address, f"{namespace}/{name} address"),
                    port=0,
                    node=ep.get("nodeName"),
                    ready=ready,
                    serving=_condition(cond, "serving", ready),
                    terminating=_condition(cond, "terminating", False),
                    zone_hints=hints,
                )
            )
    return EndpointSlice(namespace, name, str(service), ports, tuple(endpoints))


def join(services: Iterable[Service], slices: Iterable[EndpointSlice]) -> list[ServicePort]:
    """Every service port with its endpoints, matched by port name and protocol, sorted."""
    by_service: dict[str, list[EndpointSlice]] = {}
    for s in slices:
        by_service.setdefault(s.service_key, []).append(s)
    result = []
    for svc in services:
        for sp in svc.ports:
            result.append(_service_port(svc, sp, by_service.get(svc.key, ())))
    result.sort(key=lambda p: (p.namespace, p.name, p.port_name, p.protocol, p.port))
    return result


def _service_port(svc: Service, sp: SvcPort, slices: Iterable[EndpointSlice]) -> ServicePort:
    # The slice port carries the resolved targetPort (named ports included), so the join is
    # by port name and protocol, exactly like kube-proxy. The same address may sit in two
    # slices during a rollout; the ready copy wins.
    seen: dict[tuple[str, int], Endpoint] = {}
    for sl in sorted(slices, key=lambda s: s.name):
        for port in sl.ports:
            if port.name != sp.name or port.protocol != sp.protocol:
                continue
            for ep in sl.endpoints:
                key = (ep.ip, port.port)
                if key not in seen or (ep.ready and not seen[key].ready):
                    seen[key] = dataclasses.replace(ep, port=port.port)
    accessible = sp.node_port != 0 or bool(svc.external_ips)
    return ServicePort(
        namespace=svc.namespace,
        name=svc.name,
        port_name=sp.name,
        protocol=sp.protocol,
        port=sp.port,
        cluster_ips=svc.cluster_ips,
        node_port=sp.node_port,
        external_ips=svc.external_ips,
        affinity_timeout=svc.affinity_timeout,
        external_local=svc.external_local and accessible,
        internal_local=svc.internal_local,
        health_check_node_port=svc.health_check_node_port if svc.external_local else 0,
        lb_ips=svc.lb_ips,
        source_ranges=svc.source_ranges,
        endpoints=tuple(sorted(seen.values(), key=lambda e: (e.ip, e.port))),
    )
