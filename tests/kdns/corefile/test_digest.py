"""kdns.corefile.digest: the reload checksum ignores layout and comments, sees imports."""

from __future__ import annotations

from pathlib import Path

from kdns.corefile import parse_text
from kdns.corefile.digest import config_digest


def digest(text: str) -> str:
    return config_digest(parse_text(text, "Corefile", env={}))


def test_layout_and_comments_do_not_count() -> None:
    a = digest(". {\n    whoami\n    log\n}\n")
    assert a == digest("# comment\n.   {\n\twhoami   # trailing\n\n  log\n}\n")
    assert len(a) == 128 and int(a, 16) >= 0


def test_tokens_keys_and_order_count() -> None:
    base = digest(". {\n    whoami\n    log\n}\n")
    assert base != digest(". {\n    log\n    whoami\n}\n")
    assert base != digest("example.org {\n    whoami\n    log\n}\n")
    assert base != digest(". {\n    whoami\n    log . {combined}\n}\n")


def test_an_edit_inside_an_import_counts(tmp_path: Path) -> None:
    inc = tmp_path / "extra.conf"
    inc.write_text("log\n")
    text = f". {{\n    whoami\n    import {inc}\n}}\n"
    before = digest(text)
    inc.write_text("errors\n")
    assert digest(text) != before
