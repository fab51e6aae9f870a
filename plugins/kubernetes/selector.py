"""Kubernetes label selectors: parsed once at config time (so a bad one is a Corefile error)
and matched locally for objects loaded from manifests (the API server matches them otherwise).

Grammar (k8s.io/apimachinery labels.Parse): comma-separated requirements ``key``, ``!key``,
``key=v``, ``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_REQ = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[^\s!=,()]+)"
    r"|(?P<key>[^\s!=,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<val>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^()]*)\))?)\s*$"
)


class SelectorError(ValueError):
    """Invalid label selector."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # exists, !exists, =, !=, in, notin
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.op:
            case "exists":
                return present
            case "!exists":
                return not present
            case "=" | "in":
                return present and labels[self.key] in self.values
            case _:  # != and notin also match objects without the label
                return not present or labels[self.key] not in self.values


@dataclass(frozen=True, slots=True)
class Selector:
    text: str  # normalised text sent to the API server as labelSelector
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError("unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise SelectorError("unbalanced '('")
    parts.append(cur)
    return parts


def _check(key: str, values: list[str]) -> None:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(f"invalid label key {key!r}")
    for v in values:
        if not _VALUE.match(v) or len(v) > 63:
            raise SelectorError(f"invalid label value {v!r}")


def parse_selector(text: str) -> Selector:
    """Parse ``text``; raises SelectorError with a short reason."""
    reqs: list[Requirement] = []
    norm: list[str] = []
    if not text.strip():
        raise SelectorError("empty selector")
    for part in _split(text):
        m = _REQ.match(part)
        if m is None:
            raise SelectorError(f"cannot parse requirement {part.strip()!r}")
        if m["nkey"]:
            _check(m["nkey"], [])
            reqs.append(Requirement(m["nkey"], "!exists", frozenset()))
            norm.append(f"!{m['nkey']}")
        elif m["op"]:
            _check(m["key"], [m["val"]])
            op = "!=" if m["op"] == "!=" else "="
            reqs.append(Requirement(m["key"], op, frozenset([m["val"]])))
            norm.append(f"{m['key']}{op}{m['val']}")
        elif m["setop"]:
            values = [v.strip() for v in m["set"].split(",")]
            if values == [""]:
                raise SelectorError(f"empty value set for {m['key']!r}")
            _check(m["key"], values)
            reqs.append(Requirement(m["key"], m["setop"], frozenset(values)))
            norm.append(f"{m['key']} {m['setop']} ({','.join(values)})")
        else:
            _check(m["key"], [])
            reqs.append(Requirement(m["key"], "exists", frozenset()))
            norm.append(m["key"])
    return Selector(",".join(norm), tuple(reqs))
