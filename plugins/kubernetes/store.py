"""The plugin's view of the cluster, fed by reflector sinks, indexed for DNS lookups.

Each event updates only the indexes of the object it touches and reports what changed
(``Change``) to subscribers, so a wire-level answer cache can drop just the affected names.
A relist (``replace``) is applied as a diff against the current state, keyed by
resourceVersion, inside one synchronous call: queries see the old state or the new one, never
a half-applied relist, and no name disappears mid-relist.

``generation`` increases on every applied change; ``serial`` is the SOA serial (unix time of
the last DNS-relevant change, k8s-dns.md 2.6).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .records import PodRec, Slice, Svc

T = TypeVar("T")


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


R = TypeVar("R", bound=_Versioned)


@dataclass(frozen=True, slots=True)
class Change:
    """What one applied event (or relist) touched. ``everything`` means: assume all names."""

    services: frozenset[str] = frozenset()  # "ns/name" of services whose names changed
    ips: frozenset[str] = frozenset()  # IPs whose PTR answers may have changed
    namespaces: frozenset[str] = frozenset()
    pod_ips: frozenset[str] = frozenset()
    everything: bool = False

    def tags(self) -> frozenset[str]:
        """The Result.tags this change invalidates (see lookup.Result)."""
        out = {"svc:" + k for k in self.services}
        out |= {"ip:" + ip for ip in self.ips}
        out |= {"ns:" + n for n in self.namespaces}
        if self.pod_ips:
            out.add("pod:*")
        return frozenset(out)


Listener = Callable[[Change], None]
SliceObserver = Callable[[Slice, "Store"], None]


class _Sink(Generic[T]):
    """Adapts the reflector's Sink protocol to one resource's store methods."""

    def __init__(self, replace: Callable[[dict[str, T]], None],
                 upsert: Callable[[str, T], None], delete: Callable[[str], None]) -> None:
        self.replace = replace
        self.upsert = upsert
        self.delete = delete


def _add(index: dict[str, dict[str, None]], ip: str, key: str) -> None:
    index.setdefault(ip, {})[key] = None


def _remove(index: dict[str, dict[str, None]], ip: str, key: str) -> None:
    keys = index.get(ip)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[ip]


class Store:
    def __init__(self, *, need_slices: bool = True, need_pods: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.services: dict[str, Svc] = {}
        self.slices: dict[str, Slice] = {}
        self.pods: dict[str, PodRec] = {}
        self.namespaces: set[str] = set()
        self._slices_by_svc: dict[str, dict[str, None]] = {}
        self._svc_by_ip: dict[str, dict[str, None]] = {}
        self._slices_by_ip: dict[str, dict[str, None]] = {}
        self._pods_by_ip: dict[str, dict[str, None]] = {}
        self._svc_slices: dict[str, tuple[Slice, ...]] = {}  # sorted, rebuilt lazily
        self.generation = 0
        self.serial = 0
        self._clock = clock
        self._need = {"services", "namespaces"}
        if need_slices:
            self._need.add("endpointslices")
        if need_pods:
            self._need.add("pods")
        self._synced: set[str] = set()
        self._listeners: list[Listener] = []
        self.slice_observers: list[SliceObserver] = []
        self.after_replace: list[Callable[[], None]] = []  # run after every (re)list applied
        self.service_sink = _Sink(self.replace_services, self.upsert_service, self.delete_service)
        self.slice_sink = _Sink(self.replace_slices, self.upsert_slice, self.delete_slice)
        self.namespace_sink = _Sink(self.replace_namespaces, self.upsert_namespace,
                                    self.delete_namespace)
        self.pod_sink = _Sink(self.replace_pods, self.upsert_pod, self.delete_pod)

    # -- readiness and notification ---------------------------------------------------------
    @property
    def synced(self) -> bool:
        """True once every needed resource was listed at least once (never reset)."""
        return self._need <= self._synced

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _changed(self, change: Change, relevant: bool) -> None:
        self.generation += 1
        if relevant:
            self.serial = int(self._clock())
        for fn in self._listeners:
            fn(change)

    # -- lookups ----------------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> Svc | None:
        return self.services.get(f"{namespace}/{name}")

    def slices_of(self, namespace: str, name: str) -> tuple[Slice, ...]:
        """The slices labelled for service ``namespace/name``, in key order."""
        key = f"{namespace}/{name}"
        cached = self._svc_slices.get(key)
        if cached is None:
            keys = self._slices_by_svc.get(key, {})
            cached = tuple(self.slices[k] for k in sorted(keys))
            self._svc_slices[key] = cached
        return cached

    def services_with_ip(self, ip: str) -> list[Svc]:
        return [self.services[k] for k in sorted(self._svc_by_ip.get(ip, ()))]

    def slices_with_ip(self, ip: str) -> list[Slice]:
        return [self.slices[k] for k in sorted(self._slices_by_ip.get(ip, ()))]

    def pods_with_ip(self, ip: str) -> list[PodRec]:
        return [self.pods[k] for k in sorted(self._pods_by_ip.get(ip, ()))]

    def has_namespace(self, name: str) -> bool:
        return name in self.namespaces

    # -- services ---------------------------------------------------------------------------
    def _index_service(self, svc: Svc, add: bool) -> None:
        op = _add if add else _remove
        for ip in svc.ips:
            if ip and ip != "None":
                op(self._svc_by_ip, ip, svc.key)

    def _put_service(self, key: str, svc: Svc | None) -> bool:
        """Apply one service; True when the change is DNS-relevant for the SOA serial."""
        old = self.services.get(key)
        if old is not None:
            self._index_service(old, False)
            del self.services[key]
        if svc is not None:
            self.services[key] = svc
            self._index_service(svc, True)
        if old is None or svc is None:
            return True
        return old.ports != svc.ports or old.external_name != svc.external_name

    def _service_change(self, keys: Iterable[str], olds: Iterable[Svc | None]) -> Change:
        ips = {ip for s in olds if s is not None for ip in s.ips}
        ips |= {ip for k in keys if (s := self.services.get(k)) is not None for ip in s.ips}
        return Change(services=frozenset(keys), ips=frozenset(ips))

    def upsert_service(self, key: str, svc: Svc) -> None:
        old = self.services.get(key)
        relevant = self._put_service(key, svc)
        self._changed(self._service_change([key], [old]), relevant)

    def delete_service(self, key: str) -> None:
        old = self.services.get(key)
        if old is None:
            return
        self._put_service(key, None)
        self._changed(self._service_change([key], [old]), True)

    def replace_services(self, items: dict[str, Svc]) -> None:
        changed, olds = self._diff(self.services, items)
        relevant = False
        for key in changed:
            relevant |= self._put_service(key, items.get(key))
        self._synced.add("services")
        self._changed(self._service_change(changed, olds), relevant)
        self._replaced()

    # -- endpoint slices --------------------------------------------------------------------
    def _put_slice(self, key: str, sl: Slice | None) -> bool:
        old = self.slices.get(key)
        if old is not None:
            del self.slices[key]
            for a in old.addrs:
                _remove(self._slices_by_ip, a.ip, key)
            if old.service:
                owners = self._slices_by_svc.get(old.service_key)
                if owners is not None:
                    owners.pop(key, None)
                    if not owners:
                        del self._slices_by_svc[old.service_key]
                self._svc_slices.pop(old.service_key, None)
        if sl is not None:
            self.slices[key] = sl
            for a in sl.addrs:
                _add(self._slices_by_ip, a.ip, key)
            if sl.service:
                _add(self._slices_by_svc, sl.service_key, key)
                self._svc_slices.pop(sl.service_key, None)
            for observe in self.slice_observers:
                observe(sl, self)
        if old is None or sl is None:
            return True
        return old.ports != sl.ports or [(a.ip, a.hostname) for a in old.addrs] != [
            (a.ip, a.hostname) for a in sl.addrs]

    @staticmethod
    def _slice_change(slices: Iterable[Slice | None]) -> Change:
        svcs: set[str] = set()
        ips: set[str] = set()
        for sl in slices:
            if sl is None:
                continue
            if sl.service:
                svcs.add(sl.service_key)
            ips.update(a.ip for a in sl.addrs)
        return Change(services=frozenset(svcs), ips=frozenset(ips))

    def upsert_slice(self, key: str, sl: Slice) -> None:
        old = self.slices.get(key)
        relevant = self._put_slice(key, sl)
        self._changed(self._slice_change([old, sl]), relevant)

    def delete_slice(self, key: str) -> None:
        old = self.slices.get(key)
        if old is None:
            return
        self._put_slice(key, None)
        self._changed(self._slice_change([old]), True)

    def replace_slices(self, items: dict[str, Slice]) -> None:
        changed, olds = self._diff(self.slices, items)
        relevant = False
        for key in changed:
            relevant |= self._put_slice(key, items.get(key))
        self._synced.add("endpointslices")
        self._changed(self._slice_change([*olds, *(items.get(k) for k in changed)]), relevant)
        self._replaced()

    # -- namespaces -------------------------------------------------------------------------
    def upsert_namespace(self, key: str, name: str) -> None:
        if key in self.namespaces:
            return
        self.namespaces.add(key)
        self._changed(Change(namespaces=frozenset([key])), False)

    def delete_namespace(self, key: str) -> None:
        if key not in self.namespaces:
            return
        self.namespaces.discard(key)
        self._changed(Change(namespaces=frozenset([key])), False)

    def replace_namespaces(self, items: Mapping[str, str]) -> None:
        new = set(items)
        diff = frozenset(new ^ self.namespaces)
        self.namespaces = new
        self._synced.add("namespaces")
        self._changed(Change(namespaces=diff), False)
        self._replaced()

    # -- pods -------------------------------------------------------------------------------
    def _put_pod(self, key: str, pod: PodRec | None) -> bool:
        old = self.pods.get(key)
        if old is not None:
            del self.pods[key]
            if old.ip:
                _remove(self._pods_by_ip, old.ip, key)
        if pod is not None:
            self.pods[key] = pod
            if pod.ip:
                _add(self._pods_by_ip, pod.ip, key)
        return old is None or pod is None or old.ip != pod.ip

    def upsert_pod(self, key: str, pod: PodRec) -> None:
        if pod.deleting:
            # CoreDNS skips events for terminating pods and keeps the copy it has (if any)
            # until the delete event.
            return
        old = self.pods.get(key)
        relevant = self._put_pod(key, pod)
        ips = {p.ip for p in (old, pod) if p is not None and p.ip}
        self._changed(Change(pod_ips=frozenset(ips)), relevant)

    def delete_pod(self, key: str) -> None:
        old = self.pods.get(key)
        if old is None:
            return
        self._put_pod(key, None)
        self._changed(Change(pod_ips=frozenset([old.ip]) if old.ip else frozenset()), True)

    def replace_pods(self, items: dict[str, PodRec]) -> None:
        items = {k: p for k, p in items.items() if not p.deleting}
        changed, olds = self._diff(self.pods, items)
        relevant = False
        for key in changed:
            relevant |= self._put_pod(key, items.get(key))
        ips = {p.ip for p in [*olds, *(items.get(k) for k in changed)] if p is not None}
        self._synced.add("pods")
        self._changed(Change(pod_ips=frozenset(ips)), relevant)
        self._replaced()

    # -- helpers ----------------------------------------------------------------------------
    def _replaced(self) -> None:
        for fn in self.after_replace:
            fn()

    @staticmethod
    def _diff(current: Mapping[str, R], new: Mapping[str, R]) -> tuple[list[str], list[R]]:
        """Keys whose object differs between ``current`` and ``new`` (by resourceVersion when
        both have one, else by value), and the old objects of those keys."""
        changed: list[str] = []
        olds: list[R] = []
        get = current.get
        added = 0
        for key, item in new.items():
            old = get(key)
            if old is None:
                changed.append(key)
                added += 1
            elif old.version != item.version if (old.version and item.version) else old != item:
                changed.append(key)
                olds.append(old)
        if len(current) > len(new) - added:  # some current keys are gone
            for key, old in current.items():
                if key not in new:
                    changed.append(key)
                    olds.append(old)
        return changed, olds
