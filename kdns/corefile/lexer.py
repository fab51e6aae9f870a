"""Corefile lexer: text -> tokens carrying file:line (CoreDNS/caddy lexing rules).

Rules (corefile-and-plugins.md 1.1): tokens split on whitespace; a token *starting* with a double
quote runs to the closing quote (only \\" is an escape) and may span lines; ``#`` outside quotes
starts a comment even mid-word; ``\\r`` and a leading BOM are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    file: str
    line: int
    quoted: bool = False
    # Newlines inside a quoted token: the next token is on line + newlines when on the "same line".
    newlines: int = 0


def tokenize(text: str, file: str) -> list[Token]:
    """Split Corefile text into tokens."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r", "")
    tokens: list[Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == '"':
            i, tok = _quoted(text, i + 1, file, line)
            tokens.append(tok)
            line += tok.newlines
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] != "#":
                i += 1
            tokens.append(Token(text[start:i], file, line))
    return tokens


def _quoted(text: str, i: int, file: str, line: int) -> tuple[int, Token]:
    out: list[str] = []
    newlines = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == '"':
            out.append('"')
            i += 2
            continue
        if c == '"':
            return i + 1, Token("".join(out), file, line, True, newlines)
        if c == "\n":
            newlines += 1
        out.append(c)
        i += 1
    # Unterminated quote: CoreDNS takes the rest of the file as the token.
    return i, Token("".join(out), file, line, True, newlines)
