"""Helpers for the deploy/ tests: YAML loading, a kustomize subset, strategic merge.

Imported by the test modules as `deploy_support` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = DEPLOY / "overlays"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

Obj = dict[str, Any]

# Kinds kustomize leaves without a namespace (the ones deploy/ could plausibly contain).
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "PriorityClass"}

# Strategic-merge-patch merge keys for the lists deploy/'s patches touch; any other list is
# replaced whole, as SMP does for lists without a patchMergeKey.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name"}


def load_docs(path: Path) -> list[Obj]:
    """Every non-empty YAML document in a file."""
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def manifest_files() -> list[Path]:
    """Every Kubernetes object file under deploy/: not kustomization files, and not
    deploy/kubeadm/ (kubeadm patches; they are validated merged into a Deployment)."""
    return sorted(
        p
        for p in DEPLOY.rglob("*.yaml")
        if p.name != "kustomization.yaml" and not p.is_relative_to(DEPLOY / "kubeadm")
    )


def key(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def strategic_merge(live: Any, patch: Any, field: str = "") -> Any:
    """Apply a strategic merge patch (the subset deploy/ uses): maps merge recursively,
    null deletes, lists in MERGE_KEYS merge item by item on their key, other lists replace."""
    if isinstance(live, dict) and isinstance(patch, dict):
        out = dict(live)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(live, list) and isinstance(patch, list) and field in MERGE_KEYS:
        mk = MERGE_KEYS[field]
        merged = [copy.deepcopy(item) for item in live]
        for item in patch:
            idx = next((i for i, cur in enumerate(merged) if cur.get(mk) == item[mk]), None)
            if idx is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[idx] = strategic_merge(merged[idx], item)
        return merged
    return copy.deepcopy(patch)


def render(directory: Path) -> list[Obj]:
    """Build a kustomization the way kustomize does, for the features deploy/ uses
    (resources, namespace, patches by path). Any other feature is an error, so this never
    silently renders something different from kubectl kustomize."""
    kust = load_docs(directory / "kustomization.yaml")[0]
    unsupported = set(kust) - {"apiVersion", "kind", "resources", "namespace", "patches"}
    if unsupported:
        raise NotImplementedError(f"{directory}: kustomization fields {sorted(unsupported)}")
    objs: list[Obj] = []
    for res in kust.get("resources", []):
        path = (directory / res).resolve()
        objs += render(path) if path.is_dir() else load_docs(path)
    for patch_ref in kust.get("patches", []):
        if set(patch_ref) != {"path"}:
            raise NotImplementedError(f"{directory}: patch form {patch_ref}")
        for patch in load_docs(directory / patch_ref["path"]):
            targets = [i for i, o in enumerate(objs) if key(o) == key(patch)]
            if len(targets) != 1:
                raise AssertionError(f"{directory}: patch {key(patch)} matches {len(targets)}")
            objs[targets[0]] = strategic_merge(objs[targets[0]], patch)
    if "namespace" in kust:
        for obj in objs:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = kust["namespace"]
    return objs


def kubectl_kustomize(directory: Path) -> list[Obj]:
    """kubectl's own kustomize build of a directory (offline), or skip without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: only the Python kustomize subset was checked")
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {directory} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def only(objs: list[Obj], kind: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(deployment: Obj, name: str = "coredns") -> Obj:
    found = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name!r}"
    return found[0]


def unimplemented_plugins(directives: list[str]) -> list[str]:
    """The directives kdns cannot set up yet (no kdns.plugins.<name> with a setup function).
    The plugins land in parallel with deploy/; tests that need them say which are missing."""
    import importlib

    missing = []
    for name in dict.fromkeys(directives):
        try:
            module = importlib.import_module(f"kdns.plugins.{name}")
        except ImportError:
            missing.append(name)
            continue
        if not callable(getattr(module, "setup", None)):
            missing.append(name)
    return missing
