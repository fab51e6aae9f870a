"""Services and EndpointSlices from the API server, kept as reduced records for the syncer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

from kdns.k8s.client import ApiClient
from kdns.k8s.reflector import Reflector, ReflectorTiming
from kdns.k8s.resources import ENDPOINTSLICES, NODES, SERVICES
from kdns.proxy.model import ServicePort
from kdns.proxy.objects import (
    EndpointSlice,
    Service,
    join,
    reduce_endpoint_slice,
    reduce_service,
)

T = TypeVar("T")
# kube-proxy's selectors: services handled by another proxy and headless services' slices are
# never its business.
SERVICE_SELECTOR: Final = "!service.kubernetes.io/service-proxy-name"
SLICE_SELECTOR: Final = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"


class ChangeSink(Generic[T]):
    """A dict of reduced objects that calls ``on_change`` after every change."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.items: dict[str, T] = {}
        self._on_change = on_change

    def replace(self, items: dict[str, T]) -> None:
        self.items = items
        self._on_change()

    def upsert(self, key: str, item: T) -> None:
        if self.items.get(key) != item:  # status-only updates reduce to equal records
            self.items[key] = item
            self._on_change()

    def delete(self, key: str) -> None:
        if self.items.pop(key, None) is not None:
            self._on_change()


def node_zone(obj: Mapping[str, Any]) -> str:
    """The node's topology.kubernetes.io/zone label ("" when it has none)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    zone = labels.get(ZONE_LABEL) if isinstance(labels, dict) else None
    return zone if isinstance(zone, str) else ""


class ZoneSink:
    """This node's zone from a one-object Node watch; ``on_zone`` runs when it changes."""

    def __init__(self, on_zone: Callable[[str | None], None]) -> None:
        self.zone: str | None = None
        self._on_zone = on_zone

    def _set(self, zone: str | None) -> None:
        if zone != self.zone:
            self.zone = zone
            self._on_zone(zone)

    def replace(self, items: dict[str, str]) -> None:
        self._set(next(iter(items.values()), None) or None)

    def upsert(self, key: str, item: str) -> None:
        self._set(item or None)

    def delete(self, key: str) -> None:
        self._set(None)


class ClusterState:
    """The reflectors (Services, EndpointSlices, and this Node for its zone) and the joined
    model the renderer needs."""

    def __init__(
        self,
        client: ApiClient,
        on_change: Callable[[], None],
        *,
        node_name: str | None = None,
        on_zone: Callable[[str | None], None] | None = None,
        timing: ReflectorTiming | None = None,
    ) -> None:
        self.services: ChangeSink[Service] = ChangeSink(on_change)
        self.slices: ChangeSink[EndpointSlice] = ChangeSink(on_change)
        self.reflectors: tuple[Reflector[Any], ...] = (
            Reflector(client, SERVICES, reduce_service, self.services,
                      label_selector=SERVICE_SELECTOR, timing=timing),
            Reflector(client, ENDPOINTSLICES, reduce_endpoint_slice, self.slices,
                      label_selector=SLICE_SELECTOR, timing=timing),
        )
        self.zone = ZoneSink(on_zone or (lambda _: None))
        if node_name and on_zone:
            # Not waited for: without the Node (or the right to read it) zone hints stay off.
            self.reflectors += (Reflector(client, NODES, node_zone, self.zone,
                                          field_selector=f"metadata.name={node_name}",
                                          timing=timing),)

    def snapshot(self) -> list[ServicePort]:
        return join(self.services.items.values(), self.slices.items.values())

    async def wait_synced(self) -> None:
        """Returns once Services and EndpointSlices have been listed (kube-proxy writes
        nothing before)."""
        for r in self.reflectors[:2]:
            await r.synced.wait()
