"""Command-line conventions, through the entry point: help, --force, connection errors."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from amili_async import AmiliClient, BadRequestError, UnprocessableEntityError
from amili_async.sandbox import SandboxConfig, SandboxServer
from amili_async.sandbox._faults import FAULT_SPEC_KEYS

from .conftest import assert_one_line_error, run_cli
from .test_cli import base_env

CHILD_TIMEOUT = 60.0


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=12, seed=5)


async def cli(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    run = await run_cli(*args, env=env or base_env(), timeout=CHILD_TIMEOUT)
    return run.code, run.stdout, run.stderr


HELP_DEFAULTS = {
    "sandbox": {"--port": "8080", "--invoices": "1000", "--host": "127.0.0.1"},
    "export": {"--timeout": "60.0", "--max-retries": "2", "--retry-for": "300.0"},
    "submit": {"--chunk-size": "500", "--concurrency": "4"},
    "demo": {"--out": "demo-out", "--invoices": "20,000"},
}


async def test_help_shows_every_flags_default() -> None:
    helps = await asyncio.gather(*(cli(command, "--help") for command in HELP_DEFAULTS))
    for (command, defaults), (code, out, _) in zip(HELP_DEFAULTS.items(), helps, strict=True):
        assert code == 0
        options = out[out.index("options:") :]
        for flag, default in defaults.items():
            block = " ".join(options[options.index(flag) :].split()[:30])
            assert re.search(rf"\(default: {re.escape(default)}\)", block), (command, flag)


async def test_sandbox_help_lists_every_fault_key_and_export_the_page_size_limit() -> None:
    _, sandbox, _ = await cli("sandbox", "--help")
    for key in FAULT_SPEC_KEYS:
        assert re.search(rf"^  {key}\s", sandbox, re.MULTILINE), key
    for key in ("drop_before", "drop_after", "truncate", "html", "jitter", "retry_after"):
        assert key in sandbox
    _, export, _ = await cli("export", "--help")
    assert "1 to 1000 (the API's limit" in " ".join(export.split())


async def test_a_finished_export_is_overwritten_only_with_force(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = base_env(
        AMILI_BASE_URL=amili_sandbox.base_url,
        AMILI_CLIENT_ID=amili_sandbox.client_id,
        AMILI_CLIENT_SECRET=amili_sandbox.client_secret,
    )
    out = tmp_path / "invoices.jsonl"
    args = ("export", "invoices", "--org", amili_sandbox.default_org_id, "--out", out)
    code, stdout, _ = await cli(*args, "--no-progress", env=env)
    assert code == 0
    assert "exported 12 invoices" in stdout
    out.write_text("precious\n")

    code, stdout, stderr = await cli(*args, env=env)
    assert code == 1
    assert out.read_text() == "precious\n"  # untouched
    code, stdout, stderr = await cli(*args, "--force", "--no-progress", env=env)
    assert code == 0, stderr
    assert len(out.read_text().splitlines()) == 12


async def test_a_wrong_port_names_host_and_port(tmp_path: Path) -> None:
    env = base_env(
        AMILI_BASE_URL="http://127.0.0.1:9/collection/v1",
        AMILI_CLIENT_ID="sandbox",
        AMILI_CLIENT_SECRET="sandbox-secret",
    )
    out = tmp_path / "x.jsonl"
    run = await run_cli(
        "export", "invoices", "--org", "o", "--out", out, "--max-retries", "0",
        "--retry-for", "0", env=env, timeout=CHILD_TIMEOUT,
    )  # fmt: skip
    line = assert_one_line_error(run)
    assert "(connecting to 127.0.0.1:9)" in line
    assert "sandbox-secret" not in line
    assert not out.exists()  # no empty file left behind


async def test_the_servers_explanation_is_in_the_message(
    amili_sandbox: SandboxServer, amili_client: AmiliClient
) -> None:
    org = amili_sandbox.default_org_id
    invoice = {
        "type": "BOGUS",
        "invoiceNumber": "E-1",
        "originalInvoiceAmount": 10,  # a number (int or Decimal), as in a model
        "currency": "NOK",
        "invoiceDate": "2024-05-01",
        "dueDate": "2024-05-15",
        "uniqueSourceInvoiceId": "e-1",
    }
    with pytest.raises(UnprocessableEntityError) as refused:
        await amili_client.invoices.create(org, [invoice])
    assert str(refused.value).endswith(
        "One or more validation errors occurred. - invoices[0].type: 'BOGUS' is not one of: "
        "PAYMENT_REMINDER, NOTICE, COLLECTION_NOTICE."
    ), str(refused.value)
    with pytest.raises(BadRequestError) as bad:
        await amili_client.invoices.list(org, page_size=5000).collect()
    assert str(bad.value).endswith(
        "Bad Request - PageSize must be between 1 and 1000. - PageSize: Must be between 1 and 1000."
    )
