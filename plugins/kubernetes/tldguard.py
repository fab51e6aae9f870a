"""The opt-in TLD-named namespace guard (``guard_tld_namespaces``, see README.md).

A namespace named like a public TLD (``com``) or ``svc`` lets its services answer for names
that pods meant for the outside world: with ``ndots:5`` the search path turns ``google.com``
into ``google.com.svc.cluster.local`` first, which is service ``google`` in namespace ``com``
(CVE-2022-2835, disputed). The guard drops such namespaces, and every service, endpoint slice
and pod in them, where objects enter the Store (the reflector sinks), so the lookup path and
the wire fast path never see them and no query pays for the check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from .tlds import TLDS

if TYPE_CHECKING:
    from kdns.k8s.reflector import Sink

T = TypeVar("T")

GUARDED: Final = TLDS | {"svc"}


class NamespaceGuard:
    """Decides which namespaces are hidden; warns once per hidden namespace. The warned set
    cannot grow past ``len(GUARDED)``, so a namespace that churns cannot flood the log."""

    def __init__(self, log: logging.Logger, allowed: Iterable[str] = ()) -> None:
        self._log = log
        self._guarded = GUARDED - frozenset(allowed)
        self._warned: set[str] = set()

    def hides(self, namespace: str) -> bool:
        if namespace not in self._guarded:
            return False
        if namespace not in self._warned:
            self._warned.add(namespace)
            self._log.warning("namespace %r is named like a top-level domain (or svc) and "
                              "could capture external names: not served "
                              "(guard_tld_namespaces)", namespace)
        return True

    def sink(self, inner: Sink[T], namespaced: bool = True) -> Sink[T]:
        """``inner`` without the objects of hidden namespaces. Keys are ``"ns/name"``, or the
        namespace's own name for the namespace resource (``namespaced=False``)."""
        if namespaced:
            return _GuardedSink(inner, lambda key: self.hides(key.partition("/")[0]))
        return _GuardedSink(inner, self.hides)


class _GuardedSink(Generic[T]):
    def __init__(self, inner: Sink[T], hidden: Callable[[str], bool]) -> None:
        self._inner = inner
        self._hidden = hidden

    def replace(self, items: dict[str, T]) -> None:
        self._inner.replace({k: v for k, v in items.items() if not self._hidden(k)})

    def upsert(self, key: str, item: T) -> None:
        if not self._hidden(key):
            self._inner.upsert(key, item)

    def delete(self, key: str) -> None:
        self._inner.delete(key)
