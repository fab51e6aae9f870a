"""Descriptors of the Kubernetes resources kdns lists and watches (cluster-wide paths)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource: ``path`` is its cluster-wide collection URL path."""

    name: str  # plural, also the metrics label: "services"
    kind: str
    api_version: str  # "v1" or "group/version"
    namespaced: bool

    @property
    def path(self) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/{self.name}"

    def namespaced_path(self, namespace: str) -> str:
        """The collection path inside one namespace (only for namespaced resources)."""
        if not self.namespaced:
            raise ValueError(f"{self.name} is not namespaced")
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.name}"


SERVICES = Resource("services", "Service", "v1", namespaced=True)
ENDPOINTSLICES = Resource(
    "endpointslices", "EndpointSlice", "discovery.k8s.io/v1", namespaced=True
)
NAMESPACES = Resource("namespaces", "Namespace", "v1", namespaced=False)
PODS = Resource("pods", "Pod", "v1", namespaced=True)
NODES = Resource("nodes", "Node", "v1", namespaced=False)

ALL: tuple[Resource, ...] = (SERVICES, ENDPOINTSLICES, NAMESPACES, PODS, NODES)
BY_KIND: dict[str, Resource] = {r.kind: r for r in ALL}
