"""The README's quickstart runs as written (against the embedded sandbox)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_readme_example


def test_readme_quickstart_runs() -> None:
    result = run_readme_example("## Quickstart")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("SUCCESS ")
    assert re.fullmatch(r"\d+ open invoices", lines[-1])


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block."""
    return [
        (text[: found.start()].count("\n") + 2, found.group(1))
        for found in re.finditer(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    ]


def test_every_readme_python_block_type_checks_strictly(tmp_path: Path) -> None:
    """A reader copies these blocks into typed code: each is a module `mypy --strict` passes
    (the project's settings, one run over all of them)."""
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 7  # the quickstart, models, listings, export x2, webhooks, pytest
    files = []
    for line, code in blocks:
        path = tmp_path / f"readme_line_{line}.py"
        path.write_text(code)
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *files],
        cwd=ROOT,  # the project's [tool.mypy] settings and cache
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
