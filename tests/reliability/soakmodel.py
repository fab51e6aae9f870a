"""P6 soak: the fake cluster, its churn, and the judge of cluster answers.

The model records, for every cluster name, each address it ever held and when it stopped
holding it. An answer is judged against that history at the moment the reply arrived:

* **wrong** (the plan's criterion): an address the name never held; NXDOMAIN or an empty
  NOERROR for a name that had an address the whole run (stable and headless services); any
  address for a name that never existed.
* **stale** (reported, stricter than the plan): an address the name held, but stopped holding
  more than ``STALE_S`` seconds before the reply (kubernetes TTL 5 s + watch delay allow a few);
  while the API is down, and for ``RESYNC_S`` after it is back, the reference time is the start
  of the outage (kdns serves the last known state, as CoreDNS does).

A new address is recorded before the API object carrying it is written and an old one is
released after the write returns, so the history is never narrower than what kdns could see.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.fakeapi import objects as k8s

NS = "soak"
ZONE = f"{NS}.svc.cluster.local."
STALE_S = 30.0
RESYNC_S = 30.0
N_STABLE = 200
N_HEADLESS = 20
N_CHURN = 50
HEADLESS_ENDPOINTS = 3


class Api(Protocol):
    """The fake API calls the churn needs (FakeApiServer or RemoteFakeApi-like wrapper)."""

    def put(self, obj: dict[str, Any]) -> Any: ...
    def delete(self, kind: str, namespace: str | None, name: str) -> Any: ...


def stable_name(i: int) -> str:
    return f"svc{i}.{ZONE}"


def headless_name(j: int) -> str:
    return f"hl{j}.{ZONE}"


def churn_name(k: int) -> str:
    return f"ch{k}.{ZONE}"


def missing_name(i: int) -> str:
    return f"nx{i}.{ZONE}"


def stable_ip(i: int) -> str:
    return f"10.97.{i // 250}.{i % 250 + 1}"


@dataclass
class History:
    held: dict[str, float | None] = field(default_factory=dict)  # addr -> released at (None: now)


@dataclass
class Verdict:
    wrong: str | None = None
    stale: str | None = None


class ClusterModel:
    """Every address each cluster name held, and when the API was down (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: dict[str, History] = {}
        self.persistent: set[str] = set()
        self.outage_start: float | None = None  # while the API is down
        self.last_outage: tuple[float, float] | None = None

    def acquire(self, name: str, addr: str) -> None:
        with self._lock:
            self.names.setdefault(name, History()).held[addr] = None

    def release(self, name: str, addr: str) -> None:
        with self._lock:
            self.names[name].held[addr] = time.monotonic()

    def api_down(self) -> None:
        self.outage_start = time.monotonic()

    def api_up(self) -> None:
        if self.outage_start is not None:
            self.last_outage = (self.outage_start, time.monotonic())
        self.outage_start = None

    def _reference_time(self, at: float) -> float:
        if self.outage_start is not None:
            return self.outage_start
        if self.last_outage is not None and at < self.last_outage[1] + RESYNC_S:
            return self.last_outage[0]
        return at

    def judge(self, name: str, rcode: int, addrs: list[str], at: float) -> Verdict:
        """Judge the reply (``rcode``, A ``addrs``) to ``name`` received at ``at``."""
        with self._lock:
            hist = self.names.get(name)
            held = dict(hist.held) if hist else {}
        if name in self.persistent and (rcode == 3 or (rcode == 0 and not addrs)):
            return Verdict(wrong=f"{name} {'NXDOMAIN' if rcode == 3 else 'NODATA'}: "
                                 "the service existed the whole run")
        never = [a for a in addrs if a not in held]
        if never:
            return Verdict(wrong=f"{name} -> {never}: never held by it")
        horizon = self._reference_time(at) - STALE_S
        old = [a for a in addrs if (held[a] or at) < horizon]
        if old:
            return Verdict(stale=f"{name} -> {old}: released > {STALE_S:.0f} s before")
        return Verdict()


def _slice(j: int, addrs: list[str]) -> dict[str, Any]:
    return k8s.endpointslice(NS, f"hl{j}-abc", f"hl{j}", [k8s.endpoint(a) for a in addrs])


class Churn:
    """The fake cluster and its changes: headless endpoint replacements and ClusterIP services
    deleted and re-created with a new address, alternating, one per ``step()``."""

    def __init__(self, model: ClusterModel, rng: random.Random | None = None) -> None:
        self.model = model
        self.rng = rng or random.Random(6)
        self.headless: list[list[str]] = []
        self.churn_ip: list[str | None] = [None] * N_CHURN
        self._gen = [0] * max(N_HEADLESS, N_CHURN)
        self._churn_gen = [0] * N_CHURN
        self.steps = 0

    def initial_objects(self) -> list[dict[str, Any]]:
        objs: list[dict[str, Any]] = [k8s.namespace(NS)]
        for i in range(N_STABLE):
            self.model.acquire(stable_name(i), stable_ip(i))
            self.model.persistent.add(stable_name(i))
            objs.append(k8s.service(NS, f"svc{i}", cluster_ip=stable_ip(i)))
        for j in range(N_HEADLESS):
            addrs = [self._next_endpoint(j) for _ in range(HEADLESS_ENDPOINTS)]
            for a in addrs:
                self.model.acquire(headless_name(j), a)
            self.model.persistent.add(headless_name(j))
            self.headless.append(addrs)
            objs += [k8s.service(NS, f"hl{j}", cluster_ip="None"), _slice(j, addrs)]
        for k in range(0, N_CHURN, 2):  # half of them exist at the start
            ip = self._next_churn_ip(k)
            self.model.acquire(churn_name(k), ip)
            self.churn_ip[k] = ip
            objs.append(k8s.service(NS, f"ch{k}", cluster_ip=ip))
        return objs

    def _next_endpoint(self, j: int) -> str:
        while True:
            g = self._gen[j] = self._gen[j] + 1
            addr = f"10.244.{j}.{g % 250 + 1}"
            if j >= len(self.headless) or addr not in self.headless[j]:
                return addr

    def _next_churn_ip(self, k: int) -> str:
        g = self._churn_gen[k] = self._churn_gen[k] + 1
        return f"10.98.{k}.{g % 250 + 1}"

    def step(self, api: Api) -> None:
        """One API update."""
        self.steps += 1
        if self.steps % 2:
            self._replace_endpoint(api, self.rng.randrange(N_HEADLESS))
        else:
            self._toggle_service(api, self.steps // 2 % N_CHURN)

    def _replace_endpoint(self, api: Api, j: int) -> None:
        addrs = self.headless[j]
        slot = self.rng.randrange(len(addrs))
        old, new = addrs[slot], self._next_endpoint(j)
        self.model.acquire(headless_name(j), new)
        addrs[slot] = new
        api.put(_slice(j, addrs))
        self.model.release(headless_name(j), old)

    def _toggle_service(self, api: Api, k: int) -> None:
        ip = self.churn_ip[k]
        if ip is None:
            ip = self._next_churn_ip(k)
            self.model.acquire(churn_name(k), ip)
            api.put(k8s.service(NS, f"ch{k}", cluster_ip=ip))
            self.churn_ip[k] = ip
        else:
            api.delete("Service", NS, f"ch{k}")
            self.churn_ip[k] = None
            self.model.release(churn_name(k), ip)
