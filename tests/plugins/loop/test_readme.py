"""The loop README has the standard sections and every corefile example in it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.upstream.corefiles import README_SECTIONS, build_text, readme_corefiles

EXAMPLES = readme_corefiles("loop")


def test_sections() -> None:
    text = (Path(__file__).resolve().parents[3] / "plugins" / "loop" / "README.md").read_text()
    assert [s for s in README_SECTIONS if s not in text] == []
    assert EXAMPLES


@pytest.mark.parametrize("corefile", EXAMPLES)
def test_example_builds(corefile: str) -> None:
    assert build_text(corefile)
