"""``log [NAMES...] [FORMAT] { class CLASSES...; minDuration [DURATION] }`` (CoreDNS setup.go).

One ``log`` line may name several zones; the last argument is a format when it contains ``{``.
The block's classes and minDuration apply to every rule of that line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kdns.plugin import Controller

COMMON_FORMAT: Final = ('{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} '
                        '{>bufsize}" {rcode} {>rflags} {rsize} {duration}')
COMBINED_FORMAT: Final = COMMON_FORMAT + ' "{>opcode}"'
CLASSES: Final = frozenset({"all", "success", "denial", "error"})
DEFAULT_MIN_DURATION: Final = 0.1  # CoreDNS's DefaultMinDuration, for a bare "minDuration"


@dataclass(frozen=True, slots=True)
class Rule:
    zone: str  # lower-case fqdn the qname must fall in
    format: str = COMMON_FORMAT
    classes: frozenset[str] = frozenset({"all"})
    min_duration: float = 0.0  # log anything slower than this even outside ``classes``


def fqdn(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _format(arg: str) -> str:
    if arg == "{common}":
        return COMMON_FORMAT
    if arg == "{combined}":
        return COMBINED_FORMAT
    return arg


def parse(c: Controller) -> tuple[Rule, ...]:
    d = c.d
    args = d.args()
    fmt = COMMON_FORMAT
    # CoreDNS reads a lone "{combined}" as a zone name (and then logs nothing); kdns takes any
    # last argument containing "{" as the format.
    if args and "{" in args[-1]:
        fmt = _format(args.pop())
    zones = [fqdn(a) for a in args] or ["."]
    classes: set[str] = set()
    min_duration = 0.0
    for key in d.block():
        if key == "class":
            for cls in d.args(min=1):
                if cls not in CLASSES:
                    raise d.err(f"invalid Class: {cls}")
                classes.add(cls)
        elif key == "minDuration":
            dur = d.args(max=1)
            min_duration = DEFAULT_MIN_DURATION
            if dur:
                min_duration = d.to_duration(dur[0], "minDuration")
                if min_duration < 0:
                    raise d.err(f"Illegal duration found: '{dur[0]}'")
        else:
            raise d.unknown_property()
    final = frozenset(classes or {"all"})
    return tuple(Rule(z, fmt, final, min_duration) for z in zones)
