"""Rulesets -> ``nft -f -`` text: full syncs, partial (diff) syncs and cleanup. Pure functions.

A full sync assumes nothing about the kernel: it (re)creates every object, flushes everything
except affinity sets (their elements are the affinity state) and re-adds all rules and elements,
so one transaction converges any table. A partial sync sends only the difference between the
last applied ruleset and the new one. Chains that became unused are flushed at once but deleted
in a later transaction: before Linux 6.2 a chain that a just-deleted map element pointed to still
counts as referenced for a moment (kube-proxy does the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kdns.proxy.render import Chain, Element, Ruleset, SetDecl

TABLE_COMMENT = "rules for kdns-proxy"


@dataclass(frozen=True, slots=True)
class Existing:
    """What a table held in the kernel before a full sync (from ``nft -j list table``)."""

    chains: frozenset[str] = frozenset()
    sets: Mapping[str, str] = field(default_factory=dict)  # name -> "set" | "map"


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def _element_text(key: str, el: Element) -> str:
    comment = f" comment {_quote(el.comment)}" if el.comment else ""
    value = f" : {el.value}" if el.value else ""
    return f"{key}{comment}{value}"


def _add_chain(t: str, c: Chain) -> str:
    return f"add chain {t} {c.name} {{ {c.hook} ; }}" if c.hook else f"add chain {t} {c.name}"


def _add_set(t: str, s: SetDecl) -> str:
    return f"add {s.kind} {t} {s.name} {{ {s.spec} }}"


def _rules(t: str, chains: Iterable[Chain]) -> list[str]:
    return [f"add rule {t} {c.name} {r}" for c in chains for r in c.rules]


def _elements(t: str, elements: Mapping[str, Mapping[str, Element]]) -> list[str]:
    return [
        f"add element {t} {name} {{ {_element_text(k, el)} }}"
        for name in sorted(elements)
        for k, el in sorted(elements[name].items())
    ]


def table_ref(rs: Ruleset) -> str:
    return f"{rs.family} {rs.table}"


def full(desired: Ruleset, existing: Existing | None = None) -> str:
    """One transaction that makes the table exactly ``desired`` whatever it held before."""
    t = table_ref(desired)
    existing = existing or Existing()
    out = [f"add table {t} {{ comment {_quote(TABLE_COMMENT)} ; }}"]
    chains = [desired.chains[n] for n in sorted(desired.chains)]
    for c in chains:
        if c.hook:
            # Delete and re-add so a changed hook priority takes effect (kube-proxy does this).
            out += [_add_chain(t, c), f"delete chain {t} {c.name}", _add_chain(t, c)]
        else:
            out += [_add_chain(t, c), f"flush chain {t} {c.name}"]
    for name in sorted(desired.sets):
        s = desired.sets[name]
        out.append(_add_set(t, s))
        if not s.keep_elements:
            out.append(f"flush {s.kind} {t} {name}")
    out += [f"flush chain {t} {n}" for n in sorted(existing.chains - desired.chains.keys())]
    out += [
        f"delete {kind} {t} {name}"
        for name, kind in sorted(existing.sets.items())
        if name not in desired.sets
    ]
    out += _rules(t, chains)
    out += _elements(t, desired.elements)
    return "\n".join(out) + "\n"


def stale_after_full(desired: Ruleset, existing: Existing | None) -> frozenset[str]:
    """Chains a full sync flushed but left in place for a later delete."""
    return frozenset((existing or Existing()).chains - desired.chains.keys())


def _element_diff(t: str, old: Ruleset, new: Ruleset) -> tuple[list[str], list[str]]:
    deletes, adds = [], []
    for name in sorted(old.elements.keys() | new.elements.keys()):
        before = old.elements.get(name, {})
        after = new.elements.get(name, {})
        gone = [k for k in sorted(before) if before[k] != after.get(k)]
        if name in new.sets:  # a set deleted as a whole takes its elements with it
            deletes += [f"delete element {t} {name} {{ {k} }}" for k in gone]
        adds += [
            f"add element {t} {name} {{ {_element_text(k, el)} }}"
            for k, el in sorted(after.items())
            if before.get(k) != el
        ]
    return deletes, adds


def partial(old: Ruleset, new: Ruleset, delete_chains: Iterable[str] = ()) -> str:
    """The difference between two rulesets as one transaction ("" when nothing changed).

    ``delete_chains`` are chains flushed by an earlier sync that may now be deleted; any that
    ``new`` uses again are skipped.
    """
    t = table_ref(new)
    added = sorted(new.chains.keys() - old.chains.keys())
    both = new.chains.keys() & old.chains.keys()
    changed = sorted(n for n in both if new.chains[n] != old.chains[n])
    removed = sorted(old.chains.keys() - new.chains.keys())
    out = [_add_chain(t, new.chains[n]) for n in added]
    out += [_add_set(t, new.sets[n]) for n in sorted(new.sets.keys() - old.sets.keys())]
    out += [f"flush chain {t} {n}" for n in changed]
    out += _rules(t, (new.chains[n] for n in sorted([*added, *changed])))
    deletes, adds = _element_diff(t, old, new)
    out += deletes + adds
    out += [f"flush chain {t} {n}" for n in removed]
    out += [
        f"delete {old.sets[n].kind} {t} {n}" for n in sorted(old.sets.keys() - new.sets.keys())
    ]
    out += [f"delete chain {t} {n}" for n in sorted(set(delete_chains) - new.chains.keys())]
    return "\n".join(out) + "\n" if out else ""


def cleanup(family: str, table: str) -> str:
    """Deletes the table if it exists (add first so the delete cannot fail on nft 1.0.6)."""
    return f"add table {family} {table}\ndelete table {family} {table}\n"
