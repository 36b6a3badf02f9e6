"""The README's quickstart runs as written (against the embedded sandbox)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_readme_quickstart_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("SUCCESS ")
    assert re.fullmatch(r"\d+ open invoices", lines[-1])
