"""Services and EndpointSlices from the API server, kept as reduced records for the syncer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from kdns.k8s.client import ApiClient
from kdns.k8s.reflector import Reflector, ReflectorTiming
from kdns.k8s.resources import ENDPOINTSLICES, SERVICES
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


class ClusterState:
    """Both resources' reflectors and the joined model the renderer needs."""

    def __init__(
        self,
        client: ApiClient,
        on_change: Callable[[], None],
        *,
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

    def snapshot(self) -> list[ServicePort]:
        return join(self.services.items.values(), self.slices.items.values())

    async def wait_synced(self) -> None:
        """Returns once both resources have been listed (kube-proxy writes nothing before)."""
        for r in self.reflectors:
            await r.synced.wait()
