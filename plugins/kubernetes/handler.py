"""kubernetes handler: answers cluster names from the Store, keeps the Store in step with the
API server (or with manifest files), reports readiness.

Layers, each usable on its own (e.g. by a wire-level fast path):

- ``Store`` (store.py): compact records fed by reflector sinks; ``generation``, ``serial``,
  ``synced``, and ``subscribe(fn)`` for a ``Change`` per applied event (``Change.tags()``).
- ``Resolver.resolve(qname, qtype) -> Result`` (lookup.py): pure synthesis, no Request needed;
  a Result has outcome/rcode/sections, ``tags`` (what it was derived from), ``serial`` and
  ``cacheable``.
- ``AnswerCache`` (cache.py): Results per (qname as spelled, qtype), evicted by tag.
- ``TagVersions`` (versions.py): fastpath ``Version`` counters per tag, for ``req.reusable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import TYPE_CHECKING, Any, TypeVar

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from kdns.errors import KdnsError
from kdns.k8s.errors import K8sError
from kdns.log import plugin_log
from kdns.plugin import Handler, Plugin, Request

from . import manifests
from .cache import AnswerCache
from .local import local_ips
from .lookup import Resolver
from .metrics import programming_latency_observer
from .parse import KubernetesConfig
from .records import namespace_from_raw, pod_from_raw, slice_from_raw, svc_from_raw
from .result import Outcome, Result
from .store import Store
from .tldguard import NamespaceGuard
from .versions import TagVersions

if TYPE_CHECKING:
    from kdns.k8s.reflector import Sink

log = plugin_log("kubernetes")
T = TypeVar("T")

# The API server filters pods in these phases out; CoreDNS asks for the same.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
WAIT_LOG_INTERVAL = 0.5
# List pages of ~128 KiB of JSON (the reflector's default is 512 KiB): a parsed page is alive
# while it is reduced, and the cyclic GC's young collections rescan it; smaller pages keep
# those pauses to a few milliseconds during a relist, at the price of more list requests.
LIST_PAGE_BYTES = 128 * 1024


class Kubernetes(Plugin):
    name = "kubernetes"

    def __init__(self, next: Handler, cfg: KubernetesConfig) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.store = Store(need_slices=not cfg.noendpoints, need_pods=cfg.pods == "verified")
        self.resolver = Resolver(cfg, self.store)
        self.answers = AnswerCache(self.store)
        self.versions = TagVersions(self.store)
        self.guard = (NamespaceGuard(log, cfg.guard_except) if cfg.guard_tld_namespaces
                      else None)
        self._tasks: list[asyncio.Task[None]] = []
        self._client: Any = None

    # -- queries ----------------------------------------------------------------------------
    def answer(self, qname: dns.name.Name, qtype: int) -> Result:
        """The Result for ``qname`` (as spelled) and ``qtype``, from the cache when valid."""
        key = (qname.to_text(), qtype)
        res = self.answers.get(key)
        if res is None:
            res = self.resolver.resolve(qname, qtype)
            self.answers.put(key, res)
        return res

    async def serve(self, req: Request) -> dns.message.Message:
        res = self.answer(req.name, req.qtype)
        if res.outcome is Outcome.NEXT:
            resp = await self.next.serve(req)
            if res.tags and req.memo_deps is not None:
                # A fallthrough the next plugin made replayable: the name may come into
                # existence here, so the replay also depends on what this answer looked at.
                req.reusable(*self.versions.for_result(res))
            return resp
        self._declare_reuse(req, res)
        if res.outcome is Outcome.REFUSED:
            return req.reply(dns.rcode.REFUSED)
        r = req.reply(res.rcode, aa=True, by=self.name)
        r.answer = list(res.answer)
        r.authority = list(res.authority)
        r.additional = list(res.additional)
        if res.chase is not None:
            answers, truncated = await self._chase(req, res.chase)
            r.answer += answers
            if truncated:
                r.flags |= dns.flags.TC
        return r

    def _declare_reuse(self, req: Request, res: Result) -> None:
        """Tell the wire fast path whether (and while what is unchanged) this reply may be
        replayed. Not reusable: SERVFAIL before sync, ExternalName chases (the rest of the
        server answers part of it), and SRV, whose targets carry the query's zone spelling
        in uncompressed rdata (a replay keyed by the lower-cased name would get it wrong)."""
        if not res.cacheable or req.qtype == dns.rdatatype.SRV:
            req.not_reusable()
            return
        req.reusable(*self.versions.for_result(res))

    async def _chase(self, req: Request, target: dns.name.Name
                     ) -> tuple[list[dns.rrset.RRset], bool]:
        """Resolve an out-of-zone ExternalName target through the rest of the server."""
        if self.resolver.match_zone(target.to_text().lower()) is not None:
            # Another zone of this plugin: the server would route it back here.
            res: Result = self.resolver.resolve(target, req.qtype)
            return (list(res.answer) if res.outcome is Outcome.REPLY else []), False
        q = dns.message.make_query(target, req.qtype)
        q.flags = req.msg.flags
        if req.edns:
            q.use_edns(0, dns.flags.DO if req.do else 0, req.udp_size)
        sub = Request(q, req.client, req.proto, local=req.local, server=req.server,
                      size=req.size, udp_size=req.udp_size)
        sub.zone = req.zone
        try:
            resp = await self.next.serve(sub)
        except KdnsError:
            return [], False
        return list(resp.answer), bool(resp.flags & dns.flags.TC)

    # -- lifecycle --------------------------------------------------------------------------
    def ready(self) -> bool:
        return self.store.synced

    async def start(self) -> None:
        cfg = self.cfg
        self.resolver.local_ips = tuple(local_ips())
        self.store.slice_observers.append(programming_latency_observer())
        # The cluster state is long-lived: keep it out of the cyclic GC's full collections,
        # which would otherwise rescan it (and stall queries) while a relist allocates.
        self.store.after_replace.append(gc.freeze)
        if cfg.extra_endpoints:
            log.warning("Multiple endpoints have been deprecated, only the first specified "
                        "endpoint '%s' is used", cfg.endpoint)
        if cfg.manifests:
            self._load_manifests()
            return
        await self._start_reflectors()
        await self._wait_synced()

    def _load_manifests(self) -> None:
        cfg = self.cfg
        objs = manifests.load(cfg.manifests, cfg.labels, cfg.namespace_labels)
        store = self.store
        self._sink(store.namespace_sink, namespaced=False).replace(objs.namespaces)
        self._sink(store.service_sink).replace(objs.services)
        self._sink(store.slice_sink).replace({} if cfg.noendpoints else objs.slices)
        self._sink(store.pod_sink).replace(objs.pods)
        log.info("loaded %d services, %d endpointslices, %d namespaces, %d pods from manifests",
                 len(objs.services), len(objs.slices), len(objs.namespaces), len(objs.pods))

    async def _start_reflectors(self) -> None:
        from kdns.k8s import config as k8s_config
        from kdns.k8s.client import ApiClient
        from kdns.k8s.reflector import Reflector
        from kdns.k8s.resources import ENDPOINTSLICES, NAMESPACES, PODS, SERVICES

        cfg = self.cfg
        try:
            api = await k8s_config.load(endpoint=cfg.endpoint, kubeconfig=cfg.kubeconfig,
                                        context=cfg.kubecontext, tls=cfg.tls)
            client = ApiClient(api, qps=cfg.apiserver_qps, burst=cfg.apiserver_burst,
                               max_inflight=cfg.apiserver_max_inflight)
        except K8sError as e:
            raise KdnsError(f"plugin/kubernetes: {e}") from None
        self._client = client
        labels = cfg.labels.text if cfg.labels else None
        ns_labels = cfg.namespace_labels.text if cfg.namespace_labels else None
        store, sink = self.store, self._sink
        reflectors: list[Reflector[Any]] = [
            Reflector(client, SERVICES, svc_from_raw, sink(store.service_sink),
                      label_selector=labels, page_bytes=LIST_PAGE_BYTES, log=log),
            Reflector(client, NAMESPACES, namespace_from_raw,
                      sink(store.namespace_sink, namespaced=False),
                      label_selector=ns_labels, page_bytes=LIST_PAGE_BYTES, log=log),
        ]
        if not cfg.noendpoints:
            reflectors.append(Reflector(client, ENDPOINTSLICES, slice_from_raw,
                                        sink(store.slice_sink), label_selector=labels,
                                        page_bytes=LIST_PAGE_BYTES, log=log))
        if cfg.pods == "verified":
            reflectors.append(Reflector(client, PODS, pod_from_raw, sink(store.pod_sink),
                                        label_selector=labels,
                                        field_selector=POD_FIELD_SELECTOR,
                                        page_bytes=LIST_PAGE_BYTES, log=log))
        for r in reflectors:
            task = asyncio.create_task(r.run(), name=f"kubernetes-{r.resource_name}")
            task.add_done_callback(_report_crash)
            self._tasks.append(task)

    def _sink(self, inner: Sink[T], namespaced: bool = True) -> Sink[T]:
        """Where objects enter the Store: through the TLD guard when it is on."""
        return inner if self.guard is None else self.guard.sink(inner, namespaced)

    async def _wait_synced(self) -> None:
        """CoreDNS's start-up gate: wait up to startup_timeout for the first sync."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.startup_timeout
        next_log = loop.time() + WAIT_LOG_INTERVAL
        while not self.store.synced:
            now = loop.time()
            if now >= deadline:
                log.warning("starting server with unsynced Kubernetes API")
                return
            if now >= next_log:
                log.info("waiting for Kubernetes API before starting server")
                next_log = now + WAIT_LOG_INTERVAL
            await asyncio.sleep(min(0.05, max(0.0, deadline - now)))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._client is not None:
            await self._client.close()
            self._client = None


def _report_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s stopped: %r", task.get_name(), exc)
