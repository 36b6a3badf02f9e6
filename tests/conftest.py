"""Shared paths and fixtures of the test suite, and how it is spread over xdist workers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core
import pytest
from yarl import URL

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "openapi" / "amili-autocollect.yaml"
# The read-only docs facts sit beside the repository (../shared), locally and in CI alike.
DOCS = ROOT.parent / "shared" / "amili-docs"


def run_readme_example(heading: str) -> subprocess.CompletedProcess[str]:
    """The first Python block under ``heading`` in README.md, run as written in a fresh
    interpreter (its output captured)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, f"no Python block under {heading!r}"
    return subprocess.run(
        [sys.executable, "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def docs_dir() -> Path:
    if not DOCS.is_dir():
        pytest.skip("../shared/amili-docs is not beside this checkout")
    return DOCS


class _CompatClientResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.14 requires
    (pnuckowski/aioresponses#289); an already-sent request only reads its ``output_size``."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_on_aiohttp_3_14(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatClientResponse)


# Modules whose module-scoped servers are expensive to start: under xdist (--dist loadgroup,
# pyproject's addopts) each such module runs on one worker, so its server starts once.
_ONE_WORKER = {
    "tests/export/test_dask.py": "dask-cluster",
    "tests/reliability/test_webhooks_stores.py": "postgres",
    "tests/conformance/test_schemathesis.py": "schemathesis-sandbox",
}


def _unique_nodeid(item: pytest.Item) -> None:
    """Schemathesis gives every operation's item its function's nodeid (the name holds the
    operation); xdist schedules by nodeid, so 23 of the 24 were silently dropped. Each item
    gets the nodeid its name implies."""
    parent = item.parent.nodeid if item.parent is not None else ""
    wanted = f"{parent}::{item.name}"
    original = getattr(item, "originalname", item.name)
    if item.nodeid != wanted and item.nodeid == f"{parent}::{original}":
        item._nodeid = wanted  # type: ignore[attr-defined]  # pytest keeps the nodeid there


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        _unique_nodeid(item)
        group = _ONE_WORKER.get(item.nodeid.partition("::")[0])
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
