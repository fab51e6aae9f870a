"""Builders for the raw API objects tests put into the fake API server.

They produce what a real API server would store (defaults filled in), e.g.
``service("ns", "web", cluster_ip="10.0.0.10", ports=[port("http", 80)])``.
"""

from __future__ import annotations

from typing import Any


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name,
                                                  **(labels or {})}},
            "status": {"phase": "Active"}}


def port(name: str | None, port: int, protocol: str = "TCP",
         target_port: int | str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"port": port, "protocol": protocol}
    if name is not None:
        p["name"] = name
    p["targetPort"] = target_port if target_port is not None else port
    return p


def service(ns: str, name: str, *, cluster_ip: str | None = "10.96.0.10",
            cluster_ips: list[str] | None = None, ports: list[dict[str, Any]] | None = None,
            type: str = "ClusterIP", external_name: str | None = None,
            selector: dict[str, str] | None = None,
            labels: dict[str, str] | None = None) -> dict[str, Any]:
    """``cluster_ip="None"`` makes a headless service; ``type="ExternalName"`` needs
    ``external_name`` and gets no cluster IP."""
    spec: dict[str, Any] = {"type": type, "sessionAffinity": "None",
                            "ports": ports if ports is not None else [port("http", 80)]}
    if type == "ExternalName":
        spec["externalName"] = external_name
    else:
        ips = cluster_ips or ([cluster_ip] if cluster_ip else [])
        if ips:
            spec["clusterIP"], spec["clusterIPs"] = ips[0], ips
        spec["selector"] = selector if selector is not None else {"app": name}
        spec["internalTrafficPolicy"] = "Cluster"
    meta: dict[str, Any] = {"namespace": ns, "name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
            "status": {"loadBalancer": {}}}


def endpoint(*addresses: str, ready: bool | None = True, hostname: str | None = None,
             node: str | None = None, zone: str | None = None,
             pod: str | None = None, ns: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"addresses": list(addresses), "conditions": {}}
    if ready is not None:
        e["conditions"] = {"ready": ready, "serving": ready, "terminating": False}
    if hostname:
        e["hostname"] = hostname
    if node:
        e["nodeName"] = node
    if zone:
        e["zone"] = zone
    if pod:
        e["targetRef"] = {"kind": "Pod", "name": pod, "namespace": ns or "default"}
    return e


def endpointslice(ns: str, name: str, service: str | None,
                  endpoints: list[dict[str, Any]], *,
                  ports: list[dict[str, Any]] | None = None, address_type: str = "IPv4",
                  labels: dict[str, str] | None = None) -> dict[str, Any]:
    lab = dict(labels or {})
    if service is not None:
        lab["kubernetes.io/service-name"] = service
    lab.setdefault("endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io")
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name, "labels": lab},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 80,
                                                       "protocol": "TCP"}]}


def pod(ns: str, name: str, ip: str | None, *, ips: list[str] | None = None,
        phase: str = "Running", node: str = "node-1", host_network: bool = False,
        labels: dict[str, str] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase}
    all_ips = ips or ([ip] if ip else [])
    if all_ips:
        status["podIP"] = all_ips[0]
        status["podIPs"] = [{"ip": i} for i in all_ips]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": "c", "image": "x"}]},
            "status": status}
