"""The public surface: what importing the package loads, and names that say one thing each."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import amili_async
from amili_async import export


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(run.stdout.split())


def test_importing_the_package_loads_no_server_side_code() -> None:
    loaded = _modules_after("import amili_async")
    assert "amili_async" in loaded
    assert "aiohttp.web" not in loaded
    assert not any(name.startswith("amili_async.webhooks") for name in loaded)


def test_webhook_error_is_still_exported_and_loads_on_first_use() -> None:
    loaded = _modules_after("from amili_async import WebhookError")
    assert "amili_async.webhooks" in loaded  # the control: the probe sees a lazy import
    from amili_async.webhooks import WebhookError

    assert amili_async.WebhookError is WebhookError
    assert "WebhookError" in amili_async.__all__
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        amili_async.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_the_two_unit_runners_have_two_names() -> None:
    pytest.importorskip("distributed")
    from amili_async.export import dask as export_dask

    assert inspect.iscoroutinefunction(export.run_units)
    assert not inspect.iscoroutinefunction(export_dask.run_units_on_dask)
    assert not hasattr(export_dask, "run_units")
    assert "run_units" not in export_dask.__all__
