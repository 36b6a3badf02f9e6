"""The bundled pytest plugin, used the way a user's test suite uses it (through pytester)."""

from __future__ import annotations

import pytest

# asyncio_mode=auto as the README assumes; warnings (unclosed sessions included) are errors.
# pytest-asyncio and amili_async.testing load through their entry points (`-p asyncio` would
# only add a "module already imported" warning in-process).
INNER_OPTIONS = (
    "-o",
    "asyncio_mode=auto",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
    "-W",
    "error",
    "-q",
)

USER_TESTS = """
from amili_async import AmiliClient, models
from amili_async.sandbox import SandboxServer


async def test_export(amili_client, amili_sandbox):
    invoices = await amili_client.invoices.list(amili_sandbox.default_org_id).collect()
    assert invoices
    assert len(invoices) == amili_sandbox.state.default_org.invoice_count


async def test_fixture_types(amili_client, amili_sandbox):
    assert isinstance(amili_client, AmiliClient)
    assert isinstance(amili_sandbox, SandboxServer)
    assert amili_client.base_url == amili_sandbox.base_url
    assert not amili_client.closed


async def test_writes(amili_client, amili_sandbox):
    org = amili_sandbox.default_org_id
    invoice = {
        "type": "NOTICE",
        "invoiceNumber": "PLUGIN-1",
        "originalInvoiceAmount": 10,  # a number (int or Decimal), as in a model
        "currency": "NOK",
        "invoiceDate": "2024-05-01T00:00:00Z",
        "dueDate": "2024-05-15T00:00:00Z",
        "uniqueSourceInvoiceId": "plugin-1",
    }
    ref = await amili_client.invoices.create(org, [invoice])
    batch = await amili_client.batches.wait(org, ref.batch_id, poll_interval=0.01)
    assert batch.status == models.BatchStatus.SUCCESS


async def test_fresh_sandbox_per_test(amili_client, amili_sandbox):
    # test_writes created an invoice in its own sandbox; this one starts from the seed again.
    found = await amili_client.invoices.list(
        amili_sandbox.default_org_id, unique_source_invoice_id="plugin-1"
    ).collect()
    assert found == []
"""


def test_user_suite_with_plugin_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)

    result = pytester.runpytest(*INNER_OPTIONS)

    result.assert_outcomes(passed=4)


def test_overriding_the_sandbox_config(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest
from amili_async.sandbox import FaultConfig, SandboxConfig


@pytest.fixture
def amili_sandbox_config():
    return SandboxConfig(invoices=7, seed=3, faults=FaultConfig(rate_503=0.3, retry_after=0))
"""
    )
    pytester.makepyfile(
        test_user="""
async def test_seven(amili_client, amili_sandbox):
    assert amili_sandbox.config.invoices == 7
    invoices = await amili_client.invoices.list(
        amili_sandbox.default_org_id, page_size=1
    ).collect()
    assert len(invoices) == 7
"""
    )

    result = pytester.runpytest(*INNER_OPTIONS)

    result.assert_outcomes(passed=1)


def test_a_failing_user_test_is_reported(pytester: pytest.Pytester) -> None:
    """The plugin must not swallow failures (an always-green fixture would hide bugs)."""
    pytester.makepyfile(
        test_user="""
from amili_async import NotFoundError


async def test_unknown_invoice(amili_client, amili_sandbox):
    await amili_client.invoices.get(amili_sandbox.default_org_id, "no-such-invoice")
"""
    )

    result = pytester.runpytest(*INNER_OPTIONS)

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NotFoundError*"])


def test_plugin_is_installed_as_an_entry_point(pytester: pytest.Pytester) -> None:
    """In a fresh interpreter, nothing but the installed package provides the fixtures."""
    pytester.makepyfile(
        test_user="""
async def test_export(amili_client, amili_sandbox):
    invoices = await amili_client.invoices.list(amili_sandbox.default_org_id).collect()
    assert len(invoices) == 50
"""
    )

    result = pytester.runpytest_subprocess(*INNER_OPTIONS)

    result.assert_outcomes(passed=1)


BLOCK_PYTEST_ASYNCIO = """
import sys


class BlockPytestAsyncio:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pytest_asyncio":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, BlockPytestAsyncio())
"""


def _readme_snippet() -> str:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Testing your integration") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def test_readme_snippet_runs_as_written_in_strict_mode(pytester: pytest.Pytester) -> None:
    """A fresh project: no ini file, pytest-asyncio's default mode (strict), the snippet as is."""
    pytester.makepyfile(test_amili=_readme_snippet())

    result = pytester.runpytest_subprocess("-o", "asyncio_mode=strict", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_without_pytest_asyncio_the_fixtures_say_what_to_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest-asyncio made unimportable (and its plugin not loaded): as if it were not installed.
    pytester.makepyfile(sitecustomize=BLOCK_PYTEST_ASYNCIO)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    pytester.makepyfile(test_amili=_readme_snippet().replace("@pytest.mark.asyncio\n", ""))
    pytester.makepyfile(
        test_other="def test_unrelated():\n    assert True\n"
    )  # the rest of the suite is not affected

    # --assert=plain: pytest's rewriting import hook would find pytest_asyncio past the block.
    result = pytester.runpytest_subprocess(
        "-p", "no:asyncio", "-p", "no:cacheprovider", "--assert=plain"
    )

    result.assert_outcomes(passed=1, errors=1)
    assert 'need pytest-asyncio: pip install "amili-async[pytest]"' in result.stdout.str()
