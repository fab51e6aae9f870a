"""Options that shape the API requests, through the real kdns and the fake API server:
label selectors applied server side, kubeconfig instead of endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.fakeapi import objects as k8s
from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import run_kdns
from tests.plugins.kubernetes.test_kubernetes import wait_answer


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        server.put_many([
            k8s.namespace("a", {"team": "x"}), k8s.namespace("b"),
            k8s.service("a", "web", cluster_ip="10.0.0.1", labels={"tier": "front"}),
            k8s.service("a", "db", cluster_ip="10.0.0.2", labels={"tier": "back"}),
            k8s.service("b", "web", cluster_ip="10.0.0.3", labels={"tier": "front"}),
            k8s.service("a", "hl", cluster_ip="None", labels={"tier": "front"}),
            k8s.endpointslice("a", "hl-1", "hl", [k8s.endpoint("172.0.0.1")],
                              labels={"tier": "front"}),
            k8s.service("a", "hl2", cluster_ip="None", labels={"tier": "front"}),
            k8s.endpointslice("a", "hl2-1", "hl2", [k8s.endpoint("172.0.0.2")]),
        ])
        yield server


def test_labels_and_namespace_labels_select_on_the_server(api: FakeApiServer) -> None:
    corefile = (".:{port} {\n kubernetes cluster.local in-addr.arpa {\n  endpoint URL\n"
                "  labels tier in (front)\n  namespace_labels team=x\n }\n}\n")
    corefile = corefile.replace("URL", api.url)
    with run_kdns(corefile) as k:
        wait_answer(k, "web.a.svc.cluster.local.")
        assert k.query("db.a.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
        assert k.query("web.b.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN  # namespace b
        assert k.query("hl.a.svc.cluster.local.").answer
        # a matching Service whose slices lack the label has no endpoints
        assert k.query("hl2.a.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
        # PTR ignores namespace_labels (the service itself is still watched)
        assert k.query("3.0.0.10.in-addr.arpa.", "PTR").answer
        selectors = {(r.path, r.query.get("labelSelector")) for r in api.requests()
                     if not r.watch}
        assert ("/api/v1/services", "tier in (front)") in selectors
        assert ("/api/v1/namespaces", "team=x") in selectors


def test_kubeconfig_instead_of_endpoint(api: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{server: "{api.url}"}}
users:
- name: me
  user: {{token: "t0k3n"}}
contexts:
- name: other
  context: {{cluster: nowhere, user: me}}
- name: fake
  context: {{cluster: fake, user: me}}
current-context: other
""")
    corefile = ".:{port} {\n kubernetes cluster.local {\n  kubeconfig KC fake\n }\n}\n"
    corefile = corefile.replace("KC", str(kubeconfig))
    with run_kdns(corefile) as k:
        wait_answer(k, "web.a.svc.cluster.local.")
    assert any(r.authorization == "Bearer t0k3n" for r in api.requests())


@pytest.mark.parametrize("body,err", [
    ("  kubeconfig /nonexistent/kc\n", "plugin/kubernetes: file not found: /nonexistent/kc"),
    ("", "plugin/kubernetes: not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)"),
])
def test_unusable_api_config_stops_kdns_with_a_clear_error(body: str, err: str) -> None:
    corefile = ".:{port} {\n kubernetes cluster.local {\n" + body + " }\n}\n"
    env = {"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""}
    with run_kdns(corefile, wait=False, env=env) as k:
        k.proc.wait(15)
        assert k.proc.returncode != 0
        assert err in k.output and "Traceback" not in k.output
