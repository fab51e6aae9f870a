"""Offline mode: Services, EndpointSlices, Namespaces and Pods read from YAML/JSON manifest
files instead of an API server (demos, dry runs, tests). Other kinds are ignored.

A path may be a file (several ``---`` documents, or ``kind: List`` with ``items``) or a
directory (its ``*.yaml``, ``*.yml`` and ``*.json`` files, sorted). Selectors from the config
(``labels``, ``namespace_labels``) are applied here, as the API server would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from kdns.errors import KdnsError

from .records import (
    PodRec,
    Slice,
    Svc,
    namespace_from_raw,
    pod_from_raw,
    slice_from_raw,
    svc_from_raw,
)
from .selector import Selector

_EXTENSIONS = (".yaml", ".yml", ".json")


class ManifestError(KdnsError):
    """A manifest file cannot be used."""


@dataclass
class Objects:
    services: dict[str, Svc] = field(default_factory=dict)
    slices: dict[str, Slice] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    pods: dict[str, PodRec] = field(default_factory=dict)


def _files(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(os.path.join(path, n) for n in os.listdir(path)
                      if n.endswith(_EXTENSIONS) and os.path.isfile(os.path.join(path, n)))
    if not os.path.isfile(path):
        raise ManifestError(f"manifests: {path}: no such file or directory")
    return [path]


def _documents(path: str) -> Iterator[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            docs = list(yaml.safe_load_all(f))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ManifestError(f"manifests: {path}: {e}") from None
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"manifests: {path}: document {i + 1} is not a mapping")
        if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List")
                                         and isinstance(doc.get("items"), list)):
            for item in doc.get("items") or []:
                if not isinstance(item, dict):
                    raise ManifestError(f"manifests: {path}: a List item is not a mapping")
                yield item
        else:
            yield doc


def _labels(raw: dict[str, Any]) -> dict[str, str]:
    meta = raw.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _key(raw: dict[str, Any], namespaced: bool) -> str:
    meta = raw.get("metadata") or {}
    name = meta.get("name")
    if namespaced:
        return f"{meta.get('namespace') or 'default'}/{name}"
    return str(name)


def load(paths: tuple[str, ...], labels: Selector | None = None,
         namespace_labels: Selector | None = None) -> Objects:
    """Read every manifest; raises ManifestError naming the file and the problem."""
    out = Objects()
    for path in paths:
        for file in _files(path):
            for raw in _documents(file):
                _add(out, raw, file, labels, namespace_labels)
    return out


def _add(out: Objects, raw: dict[str, Any], file: str, labels: Selector | None,
         namespace_labels: Selector | None) -> None:
    kind = raw.get("kind")
    meta = raw.get("metadata")
    if kind in ("Service", "EndpointSlice", "Pod") and isinstance(meta, dict):
        meta.setdefault("namespace", "default")  # kubectl's default for namespaced objects
        if labels is not None and not labels.matches(_labels(raw)):
            return
    try:
        if kind == "Service":
            out.services[_key(raw, True)] = svc_from_raw(raw)
        elif kind == "EndpointSlice":
            out.slices[_key(raw, True)] = slice_from_raw(raw)
        elif kind == "Pod":
            pod = pod_from_raw(raw)
            if pod is not None:
                out.pods[_key(raw, True)] = pod
        elif kind == "Namespace":
            if namespace_labels is None or namespace_labels.matches(_labels(raw)):
                ns = namespace_from_raw(raw)
                out.namespaces[ns] = ns
    except KdnsError as e:
        name = meta.get("name") if isinstance(meta, dict) else None
        raise ManifestError(f"manifests: {file}: {kind} {name!r}: {e}") from None
