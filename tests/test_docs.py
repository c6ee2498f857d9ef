"""The documentation runs: every `python` code block in README.md and docs/ is executed (the blocks
of one page share a namespace, in order), and the site builds with `mkdocs build --strict`.

A block may be run at quick sizes: an HTML comment right before it,
`<!-- quick: steps=500 -> steps=5; samples=64 -> samples=4 -->`, lists text substitutions made
for the test only; each left-hand side must occur in the block, so the comment cannot go stale.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"(?:<!--\s*quick:(?P<quick>.*?)-->\s*\n)?```python[^\n]*\n(?P<code>.*?)\n```", re.S)


def code_blocks(text: str) -> list[str]:
    """The page's python blocks, each with its quick-size substitutions applied."""
    blocks = []
    for m in _BLOCK.finditer(text):
        code = m["code"]
        for rule in (m["quick"] or "").split(";"):
            if not rule.strip():
                continue
            old, new = (part.strip() for part in rule.split("->"))
            assert old in code, f"quick substitution {old!r} does not occur in its block"
            code = code.replace(old, new)
        blocks.append(code)
    return blocks


def test_quick_substitutions_are_applied_and_checked():
    page = "<!-- quick: steps=500 -> steps=5 -->\n```python\nfit(steps=500)\n```\n```python\nx = 1\n```\n"
    assert code_blocks(page) == ["fit(steps=5)", "x = 1"]
    with pytest.raises(AssertionError, match="does not occur"):
        code_blocks("<!-- quick: absent -> x -->\n```python\ny = 2\n```\n")


@pytest.mark.parametrize("page", [p for p in PAGES if code_blocks(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_page_code_runs(page, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setattr(sys, "argv", ["doc"])
    module = types.ModuleType("doc_example")  # a real module: dataclasses look classes up there
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for i, code in enumerate(code_blocks(page.read_text())):
        exec(compile(code, f"{page.name} block {i + 1}", "exec"), module.__dict__)


def test_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
