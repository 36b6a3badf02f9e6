"""Shared paths of the test suite."""

from __future__ import annotations

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
