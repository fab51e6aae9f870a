"""Every plugin's README is its spec: required sections, and every ```corefile block must load.

Blocks are parsed with kdns.corefile.parse_text and built with kdns.chain.build (which runs each
plugin's setup and constructs its handler, without binding anything). A block that uses a
built-in plugin whose package does not exist yet is skipped, naming the missing plugins.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdns.chain import build
from kdns.corefile import parse_text
from kdns.directives import BUILTIN
from kdns.errors import KdnsError
from tests.chainbuild import StubApp

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
REQUIRED = ("Name", "Description", "Syntax", "Examples")
_FENCE = re.compile(r"^(```|~~~)\s*corefile\s*$")
_METRIC = re.compile(r"""["'](coredns_[a-z0-9_]+)["']""")


@dataclass(frozen=True)
class Block:
    readme: Path
    line: int  # line of the opening fence, 1-based
    text: str

    @property
    def where(self) -> str:
        return f"{self.readme.relative_to(PLUGINS.parent)}:{self.line}"


def plugin_dirs() -> list[Path]:
    return sorted(p for p in PLUGINS.iterdir() if (p / "__init__.py").is_file())


def corefile_blocks(readme: Path) -> list[Block]:
    blocks, lines = [], readme.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(m.group(1)):
            body.append(lines[i])
            i += 1
        blocks.append(Block(readme, start + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


def sections(readme: Path) -> dict[str, str]:
    """'## Title' -> its text up to the next '## '."""
    out: dict[str, str] = {}
    title = None
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            out[title] = ""
        elif title is not None:
            out[title] += line + "\n"
    return out


def _missing_plugins(text: str) -> list[str]:
    """Built-in directives used by ``text`` whose package kdns.plugins.<name> does not exist."""
    missing = set()
    for block in parse_text(text, "README", env={}):
        for d in block.directives:
            if d.name in BUILTIN and importlib.util.find_spec(f"kdns.plugins.{d.name}") is None:
                missing.add(d.name)
    return sorted(missing)


ALL_BLOCKS = [b for p in plugin_dirs() if (p / "README.md").is_file()
              for b in corefile_blocks(p / "README.md")]


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.where for b in ALL_BLOCKS])
def test_corefile_block_loads(block: Block) -> None:
    try:
        missing = _missing_plugins(block.text)
    except KdnsError as e:
        pytest.fail(f"{block.where}: corefile block does not parse: {e}\n{block.text}")
    if missing:
        pytest.skip(f"{block.where}: plugins not implemented yet: {', '.join(missing)}")
    try:
        build(parse_text(block.text, "README", env={}), 53, StubApp())
    except KdnsError as e:
        pytest.fail(f"{block.where}: corefile block does not load: {e}\n{block.text}")


@pytest.mark.parametrize("plugin", plugin_dirs(), ids=[p.name for p in plugin_dirs()])
def test_readme_sections(plugin: Path) -> None:
    readme = plugin / "README.md"
    where = readme.relative_to(PLUGINS.parent)
    assert readme.is_file(), (
        f"{where} is missing; every plugin needs one with sections: {', '.join(REQUIRED)}")
    found = sections(readme)
    missing = [s for s in REQUIRED if s not in found]
    assert not missing, f"{where}: missing section(s) {missing}; found {list(found)}"
    assert any(b.line for b in corefile_blocks(readme) if _in_section(readme, b, "Examples")), (
        f"{where}: the Examples section has no ```corefile block")
    first = readme.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# {plugin.name}", f"{where}:1: title must be '# {plugin.name}', got {first!r}"


@pytest.mark.parametrize("plugin", plugin_dirs(), ids=[p.name for p in plugin_dirs()])
def test_readme_lists_metrics_and_readiness(plugin: Path) -> None:
    readme = plugin / "README.md"
    if not readme.is_file():
        pytest.skip(f"{plugin.name}: no README.md (reported by test_readme_sections)")
    where = readme.relative_to(PLUGINS.parent)
    found = sections(readme)
    metrics_py = plugin / "metrics.py"
    if metrics_py.is_file():
        names = sorted(set(_METRIC.findall(metrics_py.read_text(encoding="utf-8"))))
        assert "Metrics" in found, f"{where}: {metrics_py.name} declares {names} but there is " \
                                   "no '## Metrics' section"
        undocumented = [n for n in names if n not in found["Metrics"]]
        assert not undocumented, f"{where}: '## Metrics' does not mention {undocumented} " \
                                 f"(declared in plugins/{plugin.name}/metrics.py)"
    reporters = [p.name for p in sorted(plugin.glob("*.py"))
                 if re.search(r"^\s+def ready\(self\)", p.read_text(encoding="utf-8"), re.M)]
    if reporters:
        assert "Ready" in found, (
            f"{where}: the plugin reports readiness (def ready in {', '.join(reporters)}) "
            "but the README has no '## Ready' section saying when it is ready")


def _in_section(readme: Path, block: Block, title: str) -> bool:
    current = None
    for n, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("## "):
            current = line[3:].strip()
        if n == block.line:
            return current == title
    return False
