"""The log line: CoreDNS's replacer (plugin/pkg/replacer), pure functions.

``compile_format`` splits a format into literal, label and metadata nodes once per rule, exactly
as CoreDNS's parseFormat does (an unknown ``{X}`` stays literal text); ``compile_line`` turns the
nodes into strings and getters, and ``render_line`` fills them from a ``LineData`` snapshot of
one query and its reply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

EMPTY: Final = "-"
LABELS: Final = frozenset({
    "{type}", "{name}", "{class}", "{proto}", "{size}", "{remote}", "{port}", "{local}",
    "{>id}", "{>opcode}", "{>do}", "{>bufsize}", "{rcode}", "{rsize}", "{duration}",
    "{>rflags}",
})
LITERAL, LABEL, METADATA = 0, 1, 2

# Header flag bits in the order CoreDNS prints them.
_FLAGS: Final = (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100),
                 ("ra", 0x0080), ("z", 0x0040), ("ad", 0x0020), ("cd", 0x0010))

Node = tuple[int, str]


def compile_format(fmt: str) -> tuple[Node, ...]:
    """Split ``fmt`` into nodes: find each '}' then the nearest '{' before it (parseFormat)."""
    nodes: list[Node] = []
    s = fmt
    while (j := s.find("}")) >= 0:
        i = s.rfind("{", 0, j)
        if i < 0:
            nodes.append((LITERAL, s[:j + 1]))
            s = s[j + 1:]
            continue
        val = s[i:j + 1]
        if val in LABELS:
            kind = LABEL
        elif val.startswith("{/"):
            kind, val = METADATA, val[2:-1]
        else:
            kind, val = LITERAL, s[:j + 1]
        if i != 0 and kind != LITERAL:
            nodes.append((LITERAL, s[:i]))
        nodes.append((kind, val))
        s = s[j + 1:]
    if s:
        nodes.append((LITERAL, s))
    return tuple(nodes)


@dataclass(slots=True)
class LineData:
    """Everything a log line can show about one query and its reply."""

    qtype: str
    name: str
    qclass: str
    proto: str
    size: int
    remote: str
    port: int
    local: str
    id: int
    opcode: int
    do: bool
    bufsize: int
    rcode: str
    rsize: int
    duration_ns: int
    flags: int | None  # reply header flags; None when no reply exists
    metadata: dict[str, str] = field(default_factory=dict)


def rfc3986(ip: str) -> str:
    """IPv6 addresses in brackets, as in a URL."""
    return f"[{ip}]" if ":" in ip else ip


def flags_text(flags: int) -> str:
    return ",".join(name for name, bit in _FLAGS if flags & bit)


def seconds_text(ns: int) -> str:
    """Go's FormatFloat(seconds, 'f', -1): shortest round-trip digits, never an exponent."""
    text = format(Decimal(repr(ns / 1e9)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "s"


def _duration(d: LineData) -> str:
    return seconds_text(d.duration_ns)


def _rflags(d: LineData) -> str:
    return EMPTY if d.flags is None else flags_text(d.flags)


Getter = Callable[[LineData], str]
GETTERS: Final[dict[str, Getter]] = {
    "{type}": lambda d: d.qtype,
    "{name}": lambda d: d.name,
    "{class}": lambda d: d.qclass,
    "{proto}": lambda d: d.proto,
    "{size}": lambda d: str(d.size),
    "{remote}": lambda d: rfc3986(d.remote),
    "{port}": lambda d: str(d.port),
    "{local}": lambda d: rfc3986(d.local) if d.local else EMPTY,
    "{>id}": lambda d: str(d.id),
    "{>opcode}": lambda d: str(d.opcode),
    "{>do}": lambda d: "true" if d.do else "false",
    "{>bufsize}": lambda d: str(d.bufsize),
    "{rcode}": lambda d: d.rcode,
    "{rsize}": lambda d: str(d.rsize),
    "{duration}": _duration,
    "{>rflags}": _rflags,
}
assert GETTERS.keys() == LABELS


def _metadata(label: str) -> Getter:
    return lambda d: d.metadata.get(label, EMPTY)


def compile_line(fmt: str) -> tuple[str | Getter, ...]:
    """The format as literal strings and value getters, ready for ``render_line``."""
    parts: list[str | Getter] = []
    for kind, value in compile_format(fmt):
        if kind == LITERAL:
            parts.append(value)
        elif kind == LABEL:
            parts.append(GETTERS[value])
        else:
            parts.append(_metadata(value))
    return tuple(parts)


def render_line(parts: tuple[str | Getter, ...], d: LineData) -> str:
    return "".join(p if isinstance(p, str) else p(d) for p in parts)
