"""Kubernetes label and field selectors, as the API server parses and applies them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector string the API server would reject (400 BadRequest)."""


Predicate = Callable[[dict[str, Any]], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # in, notin, exists, !exists
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op == "in":
            return has and labels[self.key] in self.values
        return not has or labels[self.key] not in self.values  # notin


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(text: str | None) -> Predicate:
    """``app=x,tier!=db,env in (a,b),!legacy`` -> predicate over an object."""
    if not text or not text.strip():
        return lambda _obj: True
    reqs: list[_Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(_Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            op = "notin" if m.group(2) == "!=" else "in"
            reqs.append(_Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS_RE.match(part):
            reqs.append(_Requirement(m.group(2), "!exists" if m.group(1) else "exists",
                                     frozenset()))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")

    def predicate(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in reqs)

    return predicate


def _field(obj: dict[str, Any], dotted: str) -> str:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None) -> Predicate:
    """``status.phase!=Failed,metadata.name=x`` (only =, ==, != exist for fields)."""
    if not text or not text.strip():
        return lambda _obj: True
    terms: list[tuple[str, bool, str]] = []
    for part in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid field selector term: {part!r}")
        terms.append((m.group(1), m.group(2) != "!=", m.group(3)))

    def predicate(obj: dict[str, Any]) -> bool:
        return all((_field(obj, path) == value) == equal for path, equal, value in terms)

    return predicate
