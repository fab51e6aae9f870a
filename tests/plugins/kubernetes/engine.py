"""Helpers to run the pure engine (Store + Resolver) without a server."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from kdns.plugins.kubernetes.lookup import Outcome, Resolver, Result
from kdns.plugins.kubernetes.parse import KubernetesConfig
from kdns.plugins.kubernetes.records import (
    namespace_from_raw,
    pod_from_raw,
    slice_from_raw,
    svc_from_raw,
)
from kdns.plugins.kubernetes.store import Store

ZONES = ("cluster.local.", "in-addr.arpa.", "ip6.arpa.")


def config(**kw: Any) -> KubernetesConfig:
    kw.setdefault("zones", ZONES)
    kw.setdefault("primary_zone", "cluster.local.")
    return KubernetesConfig(**kw)


def load_store(objs: list[dict[str, Any]], store: Store | None = None,
               cfg: KubernetesConfig | None = None) -> Store:
    cfg = cfg or config()
    store = store or Store(need_slices=not cfg.noendpoints, need_pods=cfg.pods == "verified")
    svcs, slices, nss, pods = {}, {}, {}, {}
    for raw in objs:
        meta = raw["metadata"]
        key = f"{meta.get('namespace')}/{meta['name']}"
        kind = raw["kind"]
        if kind == "Service":
            svcs[key] = svc_from_raw(raw)
        elif kind == "EndpointSlice" and not cfg.noendpoints:
            slices[key] = slice_from_raw(raw)
        elif kind == "Namespace":
            nss[meta["name"]] = namespace_from_raw(raw)
        elif kind == "Pod":
            pod = pod_from_raw(raw)
            if pod is not None:
                pods[key] = pod
    store.replace_namespaces(nss)
    store.replace_services(svcs)
    store.replace_slices(slices)
    store.replace_pods(pods)
    return store


def resolve(resolver: Resolver, qname: str, qtype: str) -> Result:
    return resolver.resolve(dns.name.from_text(qname), dns.rdatatype.from_text(qtype))


def as_message(res: Result, qname: str, qtype: str) -> dns.message.Message:
    """What the handler would send for a REPLY/REFUSED result (chase not followed)."""
    q = dns.message.make_query(qname, qtype)
    r = dns.message.make_response(q)
    if res.outcome is Outcome.REFUSED:
        r.set_rcode(dns.rcode.REFUSED)
        return r
    assert res.outcome is Outcome.REPLY, res
    r.set_rcode(res.rcode)
    r.flags |= dns.flags.AA
    r.answer = list(res.answer)
    r.authority = list(res.authority)
    r.additional = list(res.additional)
    return r
