"""Typed, defensive readers for raw Kubernetes JSON: wrong types raise MalformedObject.

``where`` + ``field`` is the field path used in the error message (``spec.ports[2]`` +
``.port``); they are joined only on error, because reducers call these ~15 times per endpoint.
Exact ``type() is`` checks: JSON decoding only ever produces the exact builtin types.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from kdns.k8s.errors import MalformedObject

Labels = tuple[tuple[str, str], ...]


def _at(where: str, field: str) -> str:
    return where + field


def obj(value: Any, where: str, field: str = "") -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise MalformedObject(f"{_at(where, field)}: expected an object, got {_kind(value)}")
    return value


def array(value: Any, where: str, field: str = "") -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise MalformedObject(f"{_at(where, field)}: expected a list, got {_kind(value)}")
    return value


def string(value: Any, where: str, field: str = "", *, default: str = "") -> str:
    if value is None:
        return default
    if type(value) is not str:
        raise MalformedObject(f"{_at(where, field)}: expected a string, got {_kind(value)}")
    return value


def opt_string(value: Any, where: str, field: str = "") -> str | None:
    if value is None or type(value) is str:
        return value
    raise MalformedObject(f"{_at(where, field)}: expected a string, got {_kind(value)}")


def interned(value: Any, where: str, field: str = "", *, default: str = "") -> str:
    """A string that repeats across many objects (node, zone, protocol): stored once."""
    return sys.intern(string(value, where, field, default=default))


def opt_interned(value: Any, where: str, field: str = "") -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return sys.intern(value)
    raise MalformedObject(f"{_at(where, field)}: expected a string, got {_kind(value)}")


def integer(
    value: Any, where: str, field: str = "", *, lo: int = -(2**63), hi: int = 2**63 - 1
) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise MalformedObject(f"{_at(where, field)}: expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise MalformedObject(f"{_at(where, field)}: {value} is outside {lo}..{hi}")
    return value


def boolean(value: Any, where: str, field: str = "") -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise MalformedObject(f"{_at(where, field)}: expected true/false, got {_kind(value)}")


def strings(value: Any, where: str, field: str = "") -> tuple[str, ...]:
    items = array(value, where, field)
    for i, v in enumerate(items):
        if type(v) is not str:
            raise MalformedObject(f"{_at(where, field)}[{i}]: expected a string, got {_kind(v)}")
    return tuple(items)


def labels(value: Any, where: str) -> Labels:
    items = obj(value, where)
    return tuple(
        sorted((sys.intern(k), sys.intern(string(v, where, f".{k}"))) for k, v in items.items())
    )


def _kind(value: Any) -> str:
    return type(value).__name__


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
