"""Offline mode: objects from manifest files instead of an API server."""

from __future__ import annotations

from pathlib import Path

import dns.rcode
import pytest

from kdns.plugins.kubernetes import manifests
from kdns.plugins.kubernetes.selector import parse_selector
from tests.kdnsproc import dig, rrtext, run_kdns

DEMO = Path(__file__).resolve().parents[3] / "plugins/kubernetes/examples/demo-cluster.yaml"


def test_demo_cluster_served_without_an_api_server(tmp_path: Path) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "a.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
        "  metadata: {name: api, namespace: demo}\n  spec: {clusterIP: 10.96.0.30}\n")
    (extra / "notes.txt").write_text("not a manifest")
    corefile = (".:{port} {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                f"        manifests {DEMO} {extra}\n    }}\n}}\n")
    with run_kdns(corefile) as k:
        k.wait_for_line("from manifests")
        assert rrtext(k.query("web.demo.svc.cluster.local.", "AAAA")) == [
            "web.demo.svc.cluster.local. 5 AAAA fd00:96::20"]
        assert rrtext(k.query("db.demo.svc.cluster.local.", "A")) == [
            "db.demo.svc.cluster.local. 5 A 10.244.1.9",
            "db.demo.svc.cluster.local. 5 A 10.244.2.9"]
        assert rrtext(k.query("api.demo.svc.cluster.local.", "A")) == [
            "api.demo.svc.cluster.local. 5 A 10.96.0.30"]
        out = dig(k.port, "-x", "10.96.0.20")
        assert "web.demo.svc.cluster.local." in out and "status: NOERROR" in out
        out = dig(k.port, "_http._tcp.db.demo.svc.cluster.local", "SRV")
        assert "0 50 5432 db-0.db.demo.svc.cluster.local." in out
        assert k.query("db-2.db.demo.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_labels_select_manifest_objects(tmp_path: Path) -> None:
    objs = manifests.load((str(DEMO),), parse_selector("app=x"), parse_selector("nope=1"))
    assert objs.services == {} and objs.namespaces == {}
    objs = manifests.load((str(DEMO),))
    assert sorted(objs.services) == ["demo/db", "demo/search", "demo/web", "kube-system/kube-dns"]
    assert len(objs.slices["demo/db-xyz12"].addrs) == 2  # not-ready dropped


@pytest.mark.parametrize("content,err", [
    ("kind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 99999}]}\n",
     "Service 'x': spec.ports[0].port"),
    ("- just\n- a list\n", "document 1 is not a mapping"),
    ("key: [unclosed\n", "while parsing"),
])
def test_bad_manifests_name_the_file(tmp_path: Path, content: str, err: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(manifests.ManifestError) as e:
        manifests.load((str(f),))
    assert str(f) in str(e.value) and err in str(e.value)


def test_missing_manifest_stops_kdns_with_a_clear_error(tmp_path: Path) -> None:
    corefile = (".:{port} {\n    kubernetes cluster.local {\n        manifests "
                f"{tmp_path}/nope.yaml\n    }}\n}}\n")
    with run_kdns(corefile, wait=False) as k:
        k.proc.wait(15)
        assert k.proc.returncode != 0
        assert f"manifests: {tmp_path}/nope.yaml: no such file or directory" in k.output
        assert "Traceback" not in k.output
