"""Typed, defensive readers for raw Kubernetes JSON: wrong types raise MalformedObject.

``where`` is the field path used in the error message (``spec.ports[2].port``).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from kdns.k8s.errors import MalformedObject

Labels = tuple[tuple[str, str], ...]


def obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedObject(f"{where}: expected an object, got {type(value).__name__}")
    return value


def array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedObject(f"{where}: expected a list, got {type(value).__name__}")
    return value


def string(value: Any, where: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise MalformedObject(f"{where}: expected a string, got {type(value).__name__}")
    return value


def opt_string(value: Any, where: str) -> str | None:
    return None if value is None else string(value, where)


def interned(value: Any, where: str, default: str = "") -> str:
    """A string that repeats across many objects (node, zone, protocol): stored once."""
    return sys.intern(string(value, where, default))


def opt_interned(value: Any, where: str) -> str | None:
    return None if value is None else sys.intern(string(value, where))


def integer(value: Any, where: str, lo: int = -(2**63), hi: int = 2**63 - 1) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedObject(f"{where}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise MalformedObject(f"{where}: {value} is outside {lo}..{hi}")
    return value


def boolean(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise MalformedObject(f"{where}: expected true/false, got {type(value).__name__}")
    return value


def strings(value: Any, where: str) -> tuple[str, ...]:
    items = array(value, where)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise MalformedObject(f"{where}[{i}]: expected a string, got {type(v).__name__}")
    return tuple(items)


def labels(value: Any, where: str) -> Labels:
    items = obj(value, where)
    return tuple(
        sorted((sys.intern(k), sys.intern(string(v, f"{where}.{k}"))) for k, v in items.items())
    )


def identity(meta: dict[str, Any], namespaced: bool) -> tuple[str, str]:
    """(namespace, name) from ``metadata``; namespace is "" for cluster-scoped objects."""
    name = string(meta.get("name"), "metadata.name")
    if not name:
        raise MalformedObject("metadata.name: missing")
    if not namespaced:
        return "", name
    namespace = string(meta.get("namespace"), "metadata.namespace")
    if not namespace:
        raise MalformedObject("metadata.namespace: missing")
    return sys.intern(namespace), name


def timestamp(value: Any) -> float | None:
    """Unix seconds of an RFC 3339 timestamp; None when absent or unparsable (never fatal)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
