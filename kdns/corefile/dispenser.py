"""Dispenser: the token cursor a plugin's ``parse`` walks (caddy's Dispenser, typed).

A directive's tokens look like ``name arg arg {`` ``key arg`` ... ``}``. ``args()`` returns the
rest of the current line; ``block()`` yields the first token of each line inside the braces.
Every error it builds names file:line in CoreDNS's wording.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from kdns.corefile.lexer import Token
from kdns.corefile.parser import Directive, same_line
from kdns.errors import CorefileError


class Dispenser:
    def __init__(self, directive: Directive) -> None:
        self.name = directive.name
        self._toks = directive.tokens
        self._i = 0  # index of the current token

    @property
    def token(self) -> Token:
        return self._toks[min(self._i, len(self._toks) - 1)]

    @property
    def val(self) -> str:
        return self.token.text

    def _is_brace(self, i: int, brace: str) -> bool:
        t = self._toks[i]
        return t.text == brace and not t.quoted

    def next_arg(self) -> str | None:
        """The next token if it is on the current line and not an opening brace."""
        j = self._i + 1
        if j >= len(self._toks) or self._is_brace(j, "{") or self._is_brace(j, "}"):
            return None
        if not same_line(self._toks[self._i], self._toks[j]):
            return None
        self._i = j
        return self._toks[j].text

    def args(self, min: int = 0, max: int | None = None) -> list[str]:
        """The remaining arguments on the current line, checked against min/max count."""
        out = []
        while (a := self.next_arg()) is not None:
            out.append(a)
        if len(out) < min or (max is not None and len(out) > max):
            raise self.arg_err()
        return out

    def block(self) -> Iterator[str]:
        """Yield the key of each line inside the block that follows; consumes the block."""
        j = self._i + 1
        if j >= len(self._toks) or not self._is_brace(j, "{"):
            return
        self._i = j
        while True:
            j = self._i + 1
            if j >= len(self._toks):
                raise self.err("Unexpected EOF")
            if self._is_brace(j, "}"):
                self._i = j
                return
            self._i = j
            start = j
            yield self._toks[j].text
            if self._i == start:
                # The caller did not consume arguments: skip them, and any nested block.
                self.args()
                for _ in self.block():
                    pass

    def has_block(self) -> bool:
        j = self._i + 1
        return j < len(self._toks) and self._is_brace(j, "{")

    def err(self, msg: str) -> CorefileError:
        t = self.token
        return CorefileError(
            f"plugin/{self.name}: {t.file}:{t.line} - Error during parsing: {msg}"
        )

    def arg_err(self) -> CorefileError:
        return self.err(f"Wrong argument count or unexpected line ending after '{self.val}'")

    def unknown_property(self) -> CorefileError:
        return self.err(f"unknown property '{self.val}'")

    # Typed argument helpers: errors name the bad value.
    def to_int(self, value: str, what: str, minimum: int | None = None,
               maximum: int | None = None) -> int:
        try:
            n = int(value, 10)
        except ValueError:
            raise self.err(f"{what} must be an integer: {value!r}") from None
        if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
            raise self.err(f"{what} out of range: {n}")
        return n

    def to_duration(self, value: str, what: str = "duration") -> float:
        """A Go-style duration (``5s``, ``1m30s``, ``250ms``); a bare integer means seconds."""
        secs = parse_duration(value)
        if secs is None:
            raise self.err(f"invalid {what}: {value!r}")
        return secs

    def to_cidr(self, value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise self.err(f"invalid CIDR: {value!r}") from None


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float | None:
    """Parse a Go duration string; None when invalid. A bare number means seconds."""
    if value.isdigit():
        return float(value)
    text, total, seen = value, 0.0, False
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    while text:
        i = 0
        while i < len(text) and (text[i].isdigit() or text[i] == "."):
            i += 1
        if i == 0:
            return None
        num = text[:i]
        j = i
        while j < len(text) and not (text[j].isdigit() or text[j] == "."):
            j += 1
        unit = text[i:j]
        if unit not in _UNITS:
            return None
        try:
            total += float(num) * _UNITS[unit]
        except ValueError:
            return None
        seen = True
        text = text[j:]
    if not seen:
        return None
    return -total if neg else total
