"""Corefile parser: tokens -> server blocks (imports, snippets and {$ENV} expanded).

The parser only counts braces; each plugin parses its own directive's tokens through a Dispenser,
as in CoreDNS/caddy. Errors carry file:line in CoreDNS's wording.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kdns.corefile.lexer import Token, tokenize
from kdns.errors import CorefileError

MAX_IMPORT_DEPTH = 100
MAX_SNIPPET_EXPANSIONS = 10_000
MAX_FILE_EXPANSIONS = 100_000
_ENV = re.compile(r"\{\$([^{}$]*)\}|\{%([^{}%]*)%\}")


@dataclass(frozen=True, slots=True)
class Directive:
    """One directive occurrence: its name token and every token up to the end of its line/block."""

    name: str
    tokens: tuple[Token, ...]

    @property
    def token(self) -> Token:
        return self.tokens[0]


@dataclass(slots=True)
class ServerBlock:
    keys: list[Token]
    directives: list[Directive] = field(default_factory=list)


def parse_error(tok: Token | None, msg: str, file: str = "Corefile") -> CorefileError:
    if tok is None:
        return CorefileError(f"{file}:0 - Error during parsing: {msg}")
    return CorefileError(f"{tok.file}:{tok.line} - Error during parsing: {msg}")


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Replace {$NAME} and {%NAME%} by the variable's value (empty when unset)."""
    if "{" not in text:
        return text
    return _ENV.sub(lambda m: env.get(m.group(1) or m.group(2) or "", ""), text)


def parse_text(
    text: str, file: str = "Corefile", env: Mapping[str, str] | None = None
) -> list[ServerBlock]:
    """Parse Corefile text into server blocks."""
    state = _State(dict(os.environ) if env is None else dict(env))
    tokens = state.expand(tokenize(text, file), Path(file).resolve().parent, 0)
    return _Blocks(tokens, file).parse()


def parse_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[
    ServerBlock
]:
    """Read and parse a Corefile; a file that cannot be read is a CorefileError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CorefileError(f"{path}: cannot read Corefile: {e}") from None
    return parse_text(text, os.fspath(path), env)


def same_line(prev: Token | None, tok: Token) -> bool:
    return (
        prev is not None and prev.file == tok.file and prev.line + prev.newlines == tok.line
    )


class _State:
    """Import/snippet expansion (one pass, so snippets must be defined before use)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.snippets: dict[str, list[Token]] = {}
        self.snippet_uses = 0
        self.file_uses = 0

    def expand(self, tokens: list[Token], base: Path, depth: int) -> list[Token]:
        if depth > MAX_IMPORT_DEPTH:
            raise parse_error(tokens[0] if tokens else None, "maximum import depth exceeded")
        out: list[Token] = []
        i, depth_braces, n = 0, 0, len(tokens)
        while i < n:
            tok = self._env(tokens[i])
            line_start = i == 0 or not same_line(tokens[i - 1], tokens[i])
            if line_start and not tok.quoted and tok.text == "import":
                args = []
                j = i + 1
                while j < n and same_line(tokens[j - 1], tokens[j]):
                    args.append(self._env(tokens[j]))
                    j += 1
                if len(args) != 1:
                    raise parse_error(
                        tok, "Wrong argument count or unexpected line ending after 'import'"
                    )
                out += self._import(args[0], base, depth)
                i = j
                continue
            if (
                depth_braces == 0
                and line_start
                and _is_snippet_name(tok.text)
                and i + 1 < n
                and tokens[i + 1].text == "{"
            ):
                i = self._define_snippet(tokens, i)
                continue
            if tok.text == "{" and not tok.quoted:
                depth_braces += 1
            elif tok.text == "}" and not tok.quoted:
                depth_braces -= 1
            out.append(tok)
            i += 1
        return out

    def _env(self, tok: Token) -> Token:
        text = substitute_env(tok.text, self.env)
        if text == tok.text:
            return tok
        return Token(text, tok.file, tok.line, tok.quoted, tok.newlines)

    def _define_snippet(self, tokens: list[Token], i: int) -> int:
        name_tok = tokens[i]
        name = name_tok.text[1:-1]
        if name in self.snippets:
            raise parse_error(name_tok, f"redeclaration of previously declared snippet {name}")
        depth, j, body = 1, i + 2, []
        while j < len(tokens):
            t = tokens[j]
            if t.text == "{" and not t.quoted:
                depth += 1
            elif t.text == "}" and not t.quoted:
                depth -= 1
                if depth == 0:
                    break
            body.append(t)
            j += 1
        else:
            raise parse_error(tokens[-1], "Unexpected EOF")
        self.snippets[name] = body
        return j + 1

    def _import(self, arg: Token, base: Path, depth: int) -> list[Token]:
        if arg.text in self.snippets:
            self.snippet_uses += 1
            if self.snippet_uses > MAX_SNIPPET_EXPANSIONS:
                raise parse_error(arg, "maximum snippet import depth exceeded")
            return self.expand(self.snippets[arg.text], base, depth + 1)
        pattern = arg.text
        if not os.path.isabs(pattern):
            pattern = str(base / pattern)
        if "[" in pattern or pattern.count("*") + pattern.count("?") > 1:
            raise parse_error(arg, "Glob pattern may only contain one wildcard (*), but more "
                              "wildcards were used")
        if "*" in pattern or "?" in pattern:
            files = sorted(glob.glob(pattern))
            if not files:
                from kdns.log import core_log

                core_log.warning(f"No files matching import glob pattern: {arg.text}")
        else:
            if not os.path.exists(pattern):
                raise parse_error(arg, f"File to import not found: {arg.text}")
            files = [pattern]
        out: list[Token] = []
        for f in files:
            self.file_uses += 1
            if self.file_uses > MAX_FILE_EXPANSIONS or depth >= MAX_IMPORT_DEPTH:
                raise parse_error(arg, "maximum file import depth exceeded")
            path = Path(f).resolve()
            if path.is_dir():
                raise parse_error(arg, f"Could not import {arg.text}: is a directory")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise parse_error(arg, f"Could not import {arg.text}: {e}") from None
            out += self.expand(tokenize(text, str(path)), path.parent, depth + 1)
        return out


def _is_snippet_name(text: str) -> bool:
    return len(text) > 2 and text.startswith("(") and text.endswith(")")


class _Blocks:
    """Groups the expanded token stream into server blocks and directives."""

    def __init__(self, tokens: list[Token], file: str) -> None:
        self.toks = tokens
        self.i = 0
        self.file = file

    def parse(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while self.i < len(self.toks):
            blocks.append(self._block())
        return blocks

    def _peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _keys(self) -> list[Token]:
        keys: list[Token] = []
        prev: Token | None = None
        while (tok := self._peek()) is not None:
            if tok.text == "{" and not tok.quoted:
                if keys and prev is not None and prev.text.endswith(","):
                    raise parse_error(
                        tok, "Expected another address but had '{' - check for extra comma"
                    )
                break
            if tok.text == "}" and not tok.quoted:
                raise parse_error(tok, "Unexpected '}' because no matching opening brace")
            if prev is not None and not same_line(prev, tok) and not prev.text.endswith(","):
                break
            self.i += 1
            for part in tok.text.split(","):
                if part:
                    keys.append(Token(part, tok.file, tok.line))
            prev = tok
        return keys

    def _block(self) -> ServerBlock:
        block = ServerBlock(self._keys())
        tok = self._peek()
        if tok is not None and tok.text == "{" and not tok.quoted:
            self.i += 1
            self._body(block, braced=True)
        else:
            # Caddy v1 legacy: keys without braces take the rest of the file.
            self._body(block, braced=False)
        return block

    def _body(self, block: ServerBlock, braced: bool) -> None:
        while (tok := self._peek()) is not None:
            if tok.text == "}" and not tok.quoted:
                if not braced:
                    raise parse_error(tok, "Unexpected '}' because no matching opening brace")
                self.i += 1
                return
            if tok.text == "{" and not tok.quoted:
                raise parse_error(tok, "Unexpected '{' where a directive was expected")
            block.directives.append(self._directive())
        if braced:
            last = self.toks[-1] if self.toks else None
            raise parse_error(last, "Unexpected EOF", self.file)

    def _directive(self) -> Directive:
        first = self.toks[self.i]
        toks = [first]
        self.i += 1
        depth = 0
        while (tok := self._peek()) is not None:
            opening = tok.text == "{" and not tok.quoted
            closing = tok.text == "}" and not tok.quoted
            if depth == 0:
                if closing:
                    break
                if not same_line(toks[-1], tok) and not opening:
                    break
            if opening:
                depth += 1
            elif closing:
                depth -= 1
            toks.append(tok)
            self.i += 1
            if depth == 0 and closing:
                break
        if depth > 0:
            raise parse_error(toks[-1], "Unexpected EOF")
        return Directive(first.text, tuple(toks))
