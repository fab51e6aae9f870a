"""kubernetes option parsing: Corefile snippets -> config, or the exact error with file:line."""

from __future__ import annotations

from typing import Any

import pytest

from kdns.errors import CorefileError
from kdns.plugins.kubernetes.handler import Kubernetes
from kdns.plugins.kubernetes.parse import KubernetesConfig
from tests.chainbuild import first_plugin


def cfg_of(text: str) -> KubernetesConfig:
    return first_plugin(text, Kubernetes).cfg


def block(body: str, args: str = "cluster.local", keys: str = ".") -> str:
    return f"{keys} {{\n    kubernetes {args} {{\n{body}\n    }}\n}}\n"


OK: list[tuple[str, dict[str, Any]]] = [
    (".:53 {\n kubernetes\n}\n", {"zones": (".",), "ttl": 5, "pods": "disabled"}),
    ("cluster.local:53 {\n kubernetes\n}\n", {"zones": ("cluster.local.",)}),
    ("cluster.local 10.0.0.0/24 {\n kubernetes\n}\n",
     {"zones": ("cluster.local.", "0.0.10.in-addr.arpa.")}),
    (".:53 {\n kubernetes Cluster.Local in-addr.arpa ip6.arpa\n}\n",
     {"zones": ("cluster.local.", "in-addr.arpa.", "ip6.arpa."),
      "primary_zone": "cluster.local."}),
    (".:53 {\n kubernetes in-addr.arpa example.org cluster.local\n}\n",
     {"primary_zone": "example.org."}),
    (".:53 {\n kubernetes cluster.local 10.96.0.0/12\n}\n", {"zones": tuple(
        ["cluster.local."] + [f"{i}.10.in-addr.arpa." for i in range(96, 112)])}),
    (block("        endpoint http://127.0.0.1:8080"), {"endpoint": "http://127.0.0.1:8080"}),
    (block("        endpoint http://a:1 http://b:2"),
     {"endpoint": "http://a:1", "extra_endpoints": ("http://b:2",)}),
    (block("        tls cert.pem key.pem ca.pem"), {"tls": ("cert.pem", "key.pem", "ca.pem")}),
    (block("        kubeconfig /k.yaml"), {"kubeconfig": "/k.yaml", "kubecontext": None}),
    (block("        kubeconfig /k.yaml ctx"), {"kubeconfig": "/k.yaml", "kubecontext": "ctx"}),
    (block("        namespaces a b\n        namespaces c"),
     {"namespaces": frozenset({"a", "b", "c"})}),
    (block("        pods insecure"), {"pods": "insecure"}),
    (block("        pods verified"), {"pods": "verified"}),
    (block("        pods disabled"), {"pods": "disabled"}),
    (block("        endpoint_pod_names"), {"endpoint_pod_names": True}),
    (block("        ttl 0"), {"ttl": 0}),
    (block("        ttl 3600"), {"ttl": 3600}),
    (block("        noendpoints"), {"noendpoints": True}),
    (block("        fallthrough"), {"fallthrough": (".",)}),
    (block("        fallthrough in-addr.arpa ip6.arpa"),
     {"fallthrough": ("in-addr.arpa.", "ip6.arpa.")}),
    (block("        ignore empty_service"), {"ignore_empty_service": True}),
    (block("        startup_timeout 2s"), {"startup_timeout": 2.0}),
    (block("        zonal"), {"zonal": True}),
    (block("        apiserver_qps 5.5\n        apiserver_burst 10\n        "
           "apiserver_max_inflight 3"),
     {"apiserver_qps": 5.5, "apiserver_burst": 10, "apiserver_max_inflight": 3}),
    (block("        manifests a.yaml dir/"), {"manifests": ("a.yaml", "dir/")}),
    (".:53 {\n kubernetes cluster.local {\n  pods insecure\n  fallthrough in-addr.arpa "
     "ip6.arpa\n  ttl 30\n }\n}\n", {"pods": "insecure", "ttl": 30}),
]


@pytest.mark.parametrize("text,want", OK)
def test_parse_ok(text: str, want: dict[str, Any]) -> None:
    cfg = cfg_of(text)
    for k, v in want.items():
        assert getattr(cfg, k) == v, k


def test_label_selectors_are_normalised() -> None:
    cfg = cfg_of(block("        labels environment in (production, staging, qa),app=x\n"
                       "        "))
    assert cfg.labels is not None
    assert cfg.labels.text == "environment in (production,staging,qa),app=x"
    cfg = cfg_of(block("        namespace_labels istio-injection=enabled"))
    assert cfg.namespace_labels is not None and cfg.namespace_labels.text == \
        "istio-injection=enabled"


ERR = "plugin/kubernetes: Corefile:{line} - Error during parsing: "
BAD: list[tuple[str, str]] = [
    (block("        bogus"), "3 unknown property 'bogus'"),
    (block("        upstream"), "3 unknown property 'upstream'"),
    (block("        resyncperiod 15m"), "3 unknown property 'resyncperiod'"),
    (block("        transfer to *"), "3 unknown property 'transfer'"),
    (block("        pods"), "3 Wrong argument count or unexpected line ending after 'pods'"),
    (block("        pods invalid"),
     "3 wrong value for pods: invalid,  must be one of: disabled, verified, insecure"),
    (block("        ttl"), "3 Wrong argument count or unexpected line ending after 'ttl'"),
    (block("        ttl -1"), "3 ttl must be in range [0, 3600]: -1"),
    (block("        ttl 3601"), "3 ttl must be in range [0, 3600]: 3601"),
    (block("        ttl x"), "3 ttl must be an integer: 'x'"),
    (block("        ttl 1 2"), "3 Wrong argument count or unexpected line ending after '2'"),
    (block("        endpoint"), "3 Wrong argument count or unexpected line ending after"),
    (block("        endpoint localhost:8080"),
     "3 invalid endpoint 'localhost:8080': want http(s)://HOST[:PORT]"),
    (block("        tls a b"), "3 Wrong argument count or unexpected line ending after 'b'"),
    (block("        kubeconfig"), "3 Wrong argument count"),
    (block("        kubeconfig a b c"), "3 Wrong argument count"),
    (block("        namespaces"), "3 Wrong argument count"),
    (block("        labels"), "3 Wrong argument count"),
    (block("        labels a in ()"),
     "3 unable to parse label selector value: 'a in ()': empty value set for 'a'"),
    (block("        namespace_labels =x"),
     "3 unable to parse namespace_label selector value: '=x'"),
    (block("        namespaces a\n        namespace_labels a=b"),
     "5 namespaces and namespace_labels cannot both be set"),
    (block("        ignore foo"), "3 unable to parse ignore value: 'foo'"),
    (block("        ignore"), "3 Wrong argument count"),
    (block("        noendpoints x"), "3 Wrong argument count"),
    (block("        endpoint_pod_names x"), "3 Wrong argument count"),
    (block("        zonal\n        noendpoints"), "5 zonal and noendpoints cannot both be set"),
    (block("        startup_timeout soon"), "3 invalid startup_timeout: 'soon'"),
    (block("        apiserver_qps -1"), "3 apiserver_qps must not be negative: -1"),
    (block("        apiserver_burst x"), "3 apiserver_burst must be an integer: 'x'"),
    (block("        multicluster clusterset.local"), "3 multicluster is not supported by kdns"),
    (block("        manifests"), "3 Wrong argument count"),
    (block("        manifests a.yaml\n        endpoint http://x:1"),
     "5 manifests cannot be combined with endpoint or kubeconfig"),
    (block("", args="in-addr.arpa"), "2 non-reverse zone name must be used"),
    (block("", args="10.0.0.0/33"), "2 invalid zone or CIDR: '10.0.0.0/33'"),
]


@pytest.mark.parametrize("text,err", BAD)
def test_parse_errors(text: str, err: str) -> None:
    line, msg = err.split(" ", 1)
    with pytest.raises(CorefileError) as e:
        cfg_of(text)
    assert str(e.value).startswith(ERR.format(line=line) + msg), str(e.value)


def test_only_once_per_server_block() -> None:
    with pytest.raises(CorefileError) as e:
        cfg_of(".:53 {\n kubernetes\n kubernetes\n}\n")
    assert "this plugin can only be used once per Server Block" in str(e.value)
