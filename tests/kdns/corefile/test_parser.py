from __future__ import annotations

from pathlib import Path

import pytest

from kdns.corefile import parse_text, tokenize
from kdns.corefile.address import parse_key
from kdns.corefile.lexer import Token
from kdns.errors import CorefileError


def test_lexer_quotes_comments_bom_crlf() -> None:
    toks = tokenize('\ufeffa "b c" d#comment\r\n"x\\"y" "multi\nline" e', "F")
    assert [t.text for t in toks] == ["a", "b c", "d", 'x"y', "multi\nline", "e"]
    assert [t.line for t in toks] == [1, 1, 1, 2, 2, 3]
    assert toks[1].quoted and not toks[0].quoted


def test_empty_quoted_token_is_a_token() -> None:
    assert [t.text for t in tokenize('a ""', "F")] == ["a", ""]


def blocks_as_lists(text: str, **kw: object) -> list[tuple[list[str], list[list[str]]]]:
    return [
        ([k.text for k in b.keys], [[t.text for t in d.tokens] for d in b.directives])
        for b in parse_text(text, "Corefile", **kw)  # type: ignore[arg-type]
    ]


def test_several_blocks_and_keys() -> None:
    text = """
example.org:1053 other.org {
    whoami
    forward . 1.1.1.1 {
        max_fails 3
    }
}
.:53 {
  errors
}
"""
    assert blocks_as_lists(text) == [
        (["example.org:1053", "other.org"],
         [["whoami"], ["forward", ".", "1.1.1.1", "{", "max_fails", "3", "}"]]),
        ([".:53"], [["errors"]]),
    ]


def test_comma_separated_keys_continue_on_next_line() -> None:
    text = "a.org,\nb.org {\n whoami\n}\n"
    assert blocks_as_lists(text)[0][0] == ["a.org", "b.org"]


def test_extra_comma_before_brace() -> None:
    with pytest.raises(CorefileError, match=r"Corefile:1 - Error during parsing: Expected another"):
        parse_text("a.org, {\n whoami\n}\n", "Corefile")


def test_legacy_block_without_braces() -> None:
    assert blocks_as_lists("example.org\nwhoami\nlog\n") == [
        (["example.org"], [["whoami"], ["log"]])
    ]


@pytest.mark.parametrize("text,msg", [
    (". {\n whoami\n", "Corefile:2 - Error during parsing: Unexpected EOF"),
    ("}\n", "Corefile:1 - Error during parsing: Unexpected '}' because no matching opening brace"),
    (". {\n forward . 1.1.1.1 {\n", "Unexpected EOF"),
])
def test_brace_errors(text: str, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse_text(text, "Corefile")
    assert msg in str(e.value)


def test_env_substitution_both_forms() -> None:
    env = {"ZONE": "example.org", "PORT": "1053", "PLUGIN": "whoami"}
    got = blocks_as_lists("{$ZONE}:{%PORT%} {\n {$PLUGIN} {$UNSET}x\n}\n", env=env)
    assert got == [(["example.org:1053"], [["whoami", "x"]])]


def test_snippets_and_import(tmp_path: Path) -> None:
    (tmp_path / "extra.conf").write_text("log\n")
    (tmp_path / "more-1.conf").write_text("errors\n")
    (tmp_path / "more-2.conf").write_text("any\n")
    main = tmp_path / "Corefile"
    main.write_text("(common) {\n  whoami\n  import extra.conf\n}\n"
                    ". {\n  import common\n  import more-*.conf\n}\n")
    from kdns.corefile import parse_file

    blocks = parse_file(main, env={})
    assert [[t.text for t in d.tokens] for d in blocks[0].directives] == [
        ["whoami"], ["log"], ["errors"], ["any"]]
    # Imported tokens carry the absolute path of their file.
    assert blocks[0].directives[1].token.file == str((tmp_path / "extra.conf").resolve())


@pytest.mark.parametrize("body,msg", [
    ("import nothere.conf", "File to import not found: nothere.conf"),
    ("import a*b*.conf", "Glob pattern may only contain one wildcard"),
    ("import", "Wrong argument count or unexpected line ending after 'import'"),
])
def test_import_errors(tmp_path: Path, body: str, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse_text(f". {{\n {body}\n}}\n", str(tmp_path / "Corefile"))
    assert msg in str(e.value)
    assert ":2 - Error during parsing" in str(e.value)


def test_snippet_redeclared() -> None:
    with pytest.raises(CorefileError, match="redeclaration of previously declared snippet x"):
        parse_text("(x) {\n whoami\n}\n(x) {\n log\n}\n", "Corefile")


def test_self_importing_snippet_is_bounded() -> None:
    with pytest.raises(CorefileError, match="maximum"):
        parse_text("(x) {\n import x\n}\n. {\n import x\n}\n", "Corefile")


@pytest.mark.parametrize("key,port,expect", [
    ("example.org", 53, ["dns://example.org.:53"]),
    ("EXAMPLE.org.:1053", 53, ["dns://example.org.:1053"]),
    ("dns://.:5300", 53, ["dns://.:5300"]),
    (".", 1053, ["dns://.:1053"]),
    ("10.0.0.0/24", 53, ["dns://0.0.10.in-addr.arpa.:53"]),
    ("10.0.0.0/8:1053", 53, ["dns://10.in-addr.arpa.:1053"]),
])
def test_keys(key: str, port: int, expect: list[str]) -> None:
    assert [str(z) for z in parse_key(Token(key, "Corefile", 1), port)] == expect


def test_cidr_split_on_octet_boundary() -> None:
    zones = parse_key(Token("10.0.0.0/27", "C", 1), 53)
    assert len(zones) == 32
    zones17 = parse_key(Token("10.0.0.0/17", "C", 1), 53)
    assert len(zones17) == 128
    assert zones17[1].zone == "1.0.10.in-addr.arpa."


@pytest.mark.parametrize("key,msg", [
    ("tls://example.org", "transport 'tls://' is not implemented in kdns yet"),
    ("foo://x", "unsupported transport 'foo'"),
    ("example.org:", "expecting data after last colon"),
    ("example.org:99999", "invalid port"),
    ("a..b", "zone is not a valid domain name"),
    ("10.0.0.0/99", "invalid CIDR zone"),
])
def test_bad_keys(key: str, msg: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse_key(Token(key, "Corefile", 3), 53)
    assert msg in str(e.value)
    assert str(e.value).startswith("Corefile:3 - ")
