"""deploy/ kustomizations: rendering (Python subset and, where installed, kubectl kustomize),
and the replace-coredns overlay merged into a kubeadm-shaped live CoreDNS Deployment."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy_support import (
    BASE,
    DEPLOY,
    FIXTURES,
    OVERLAYS,
    Obj,
    container,
    key,
    kubectl_kustomize,
    load_docs,
    only,
    render,
    strategic_merge,
)

KUSTOMIZATIONS = [DEPLOY, BASE, *sorted(p.parent for p in OVERLAYS.glob("*/kustomization.yaml"))]
REPLACE = OVERLAYS / "replace-coredns"


def ids(p: Path) -> str:
    return str(p.relative_to(DEPLOY.parent))


def leaf_paths(obj: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every scalar in obj; list items are named by their 'name' if any."""
    if isinstance(obj, dict):
        return {p for k, v in obj.items() for p in leaf_paths(v, f"{prefix}.{k}")}
    if isinstance(obj, list):
        return {
            p
            for i, v in enumerate(obj)
            for p in leaf_paths(
                v, f"{prefix}[{v['name'] if isinstance(v, dict) and 'name' in v else i}]"
            )
        }
    return {prefix}


def diff_paths(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return {
            p for k in a.keys() | b.keys() for p in diff_paths(a.get(k), b.get(k), f"{prefix}.{k}")
        }
    return set() if a == b else {prefix}


def kubeadm_deployment() -> Obj:
    return load_docs(FIXTURES / "kubeadm-coredns-deployment.yaml")[0]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_rendered_output_is_schema_valid(directory: Path) -> None:
    objs = render(directory)
    assert objs
    for obj in objs:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    assert len({key(o) for o in objs}) == len(objs), "duplicate objects"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_kubectl_kustomize_agrees_with_the_python_render(directory: Path) -> None:
    ours = {key(o): o for o in render(directory)}
    theirs = {key(o): o for o in kubectl_kustomize(directory)}
    assert ours == theirs


def test_deploy_root_is_the_base() -> None:
    assert render(DEPLOY) == render(BASE)


def test_default_service_cidr_overlay_only_pins_the_cluster_ip() -> None:
    base = {key(o): o for o in render(BASE)}
    pinned = {key(o): o for o in render(OVERLAYS / "default-service-cidr")}
    assert base.keys() == pinned.keys()
    changed = {k: diff_paths(base[k], pinned[k]) for k in base if base[k] != pinned[k]}
    assert changed == {("Service", "kube-system", "kube-dns"): {".spec.clusterIP"}}
    assert pinned[("Service", "kube-system", "kube-dns")]["spec"]["clusterIP"] == "10.96.0.10"


def test_replace_overlay_is_only_image_and_args() -> None:
    (partial,) = render(REPLACE)
    assert key(partial) == ("Deployment", "kube-system", "coredns")
    assert leaf_paths(partial) == {
        ".apiVersion",
        ".kind",
        ".metadata.name",
        ".metadata.namespace",
        ".spec.selector.matchLabels.k8s-app",
        ".spec.template.spec.containers[coredns].name",
        ".spec.template.spec.containers[coredns].image",
        ".spec.template.spec.containers[coredns].args[0]",
        ".spec.template.spec.containers[coredns].args[1]",
    }


def test_replace_overlay_keeps_the_base_image() -> None:
    (partial,) = render(REPLACE)
    base_dep = only(render(BASE), "Deployment")
    assert container(partial) == {
        k: v for k, v in container(base_dep).items() if k in ("name", "image", "args")
    }
    assert partial["spec"]["selector"] == base_dep["spec"]["selector"]


def test_replace_overlay_swaps_only_the_image_of_kubeadms_coredns() -> None:
    live = kubeadm_deployment()
    kubernetes_validate.validate(live, kubernetes_validate.latest_version(), strict=True)
    (partial,) = render(REPLACE)
    merged = strategic_merge(copy.deepcopy(live), partial)
    kubernetes_validate.validate(merged, kubernetes_validate.latest_version(), strict=True)
    assert diff_paths(live, merged) == {".spec.template.spec.containers"}
    before, after = container(live), container(merged)
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {"image"}
    assert after["image"] == container(partial)["image"]
    # What an in-place swap relies on staying put:
    assert merged["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    assert merged["spec"]["selector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert after["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"]


def test_strategic_merge_merges_containers_by_name() -> None:
    # Guards the merge helper the test above relies on.
    live = {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y"}]}
    patch = {"containers": [{"name": "b", "image": "z"}]}
    assert strategic_merge(live, patch) == {
        "containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "z"}]
    }
    assert strategic_merge({"args": ["1", "2"]}, {"args": ["3"]}) == {"args": ["3"]}
    assert strategic_merge({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_kubeadm_patch_keeps_kdns_across_kubeadm_upgrades() -> None:
    """deploy/kubeadm/ is a kubeadm --patches directory: on kubeadm's own CoreDNS Deployment
    it must change only the image, to the base's kdns image."""
    (patch,) = load_docs(DEPLOY / "kubeadm" / "corednsdeployment+strategic.yaml")
    assert [p.name for p in (DEPLOY / "kubeadm").iterdir()] == ["corednsdeployment+strategic.yaml"]
    live = kubeadm_deployment()
    merged = strategic_merge(copy.deepcopy(live), patch)
    kubernetes_validate.validate(merged, kubernetes_validate.latest_version(), strict=True)
    before, after = container(live), container(merged)
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {"image"}
    assert after["image"] == container(only(render(BASE), "Deployment"))["image"]
    assert diff_paths(live, merged) == {".spec.template.spec.containers"}
