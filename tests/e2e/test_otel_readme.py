"""The README's Observability example runs as written and shows the spans it describes."""

from __future__ import annotations

from tests.conftest import run_readme_example


def test_readme_observability_example_runs() -> None:
    result = run_readme_example("## Observability")
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
