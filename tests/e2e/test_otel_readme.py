"""The README's Observability example runs as written and shows the spans it describes."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_readme_observability_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Observability") :]
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
    assert "25 invoices" in lines
    names = [line.split()[1] for line in lines if line.startswith("span ")]
    # The token POST, three pages (each its GET), then the listing's span when it ended.
    assert names == [
        "POST",
        "GET",
        "page",
        "GET",
        "page",
        "GET",
        "page",
        "GetInvoicesByOrganization",
    ]
    assert "'amili.items': 25" in lines[names.index("GetInvoicesByOrganization")]
    assert not any("?" in line or "PageToken" in line for line in lines)
    assert "metric http.client.request.duration" in lines
