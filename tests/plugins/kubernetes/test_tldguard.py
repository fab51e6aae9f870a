"""tldguard: which namespaces are hidden, the sinks that drop them, one warning each."""

from __future__ import annotations

import logging

import pytest

from kdns.k8s.reflector import DictSink
from kdns.plugins.kubernetes.tldguard import GUARDED, NamespaceGuard
from kdns.plugins.kubernetes.tlds import TLDS

LOG = logging.getLogger("test.tldguard")


@pytest.mark.parametrize("ns", ["com", "io", "de", "uk", "dev", "app", "xn--p1ai", "svc"])
def test_guarded(ns: str) -> None:
    assert ns in GUARDED


@pytest.mark.parametrize("ns", ["default", "kube-system", "kube-public", "production", "pod",
                                "staging"])
def test_not_guarded(ns: str) -> None:
    assert ns not in GUARDED


def test_common_names_that_are_tlds() -> None:
    # Why README.md documents ``except``: these everyday namespace names are TLDs.
    assert {"dev", "prod", "app", "data"} <= GUARDED


def test_list_is_lower_case_labels() -> None:
    assert len(TLDS) > 1400
    assert all(t == t.lower() and t.replace("-", "").isalnum() for t in TLDS)


def test_sinks_drop_hidden_objects_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    guard = NamespaceGuard(LOG)
    svcs: DictSink[int] = DictSink()
    nss: DictSink[str] = DictSink()
    svc_sink, ns_sink = guard.sink(svcs), guard.sink(nss, namespaced=False)
    with caplog.at_level(logging.WARNING, LOG.name):
        ns_sink.replace({"com": "com", "default": "default"})
        svc_sink.replace({"com/google": 1, "default/web": 2})
        for i in range(100):
            svc_sink.upsert("com/google", i)
            ns_sink.upsert("com", "com")
        svc_sink.upsert("default/api", 3)
        svc_sink.delete("default/web")
    assert nss.items == {"default": "default"}
    assert svcs.items == {"default/api": 3}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "'com'" in warnings[0]
