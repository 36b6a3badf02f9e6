"""End-to-end helpers: the real SDK against a real sandbox server over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from amili_async import AmiliClient, models
from amili_async.sandbox import SandboxServer, _server
from tests.conformance import _spec


def pytest_configure(config: pytest.Config) -> None:
    """Enable pytester for test_plugin.py.

    `pytest_plugins = ["pytester"]` is refused in a conftest below the rootdir when the whole
    suite runs (pytest's "pytest_plugins in non-top-level conftest" error); registering the
    plugin here works for `pytest tests/e2e` and for `pytest` alike.
    """
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture(autouse=True)
def spec_checked_sandboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[_spec.Log]:
    """Every sandbox an end-to-end test starts checks its requests and answers against the
    spec as it serves them (issue 11): a drift between sandbox and spec fails the test."""
    log = _spec.Log()
    create_app = _server.create_app

    def checked_app(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        _spec.install(app, log)
        return app

    monkeypatch.setattr(_server, "create_app", checked_app)
    yield log
    assert not log.problems, "sandbox and spec disagree:\n" + "\n".join(
        sorted(set(log.problems))[:20]
    )


INVOICE_DATE = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
DUE_DATE = dt.datetime(2024, 5, 15, tzinfo=dt.UTC)


def new_invoice(
    n: int,
    *,
    usid: str | None = None,
    amount: Decimal | str = "4500.10",
    due_date: dt.datetime = DUE_DATE,
    customer_number: str | None = None,
) -> models.NewInvoice:
    """A valid NewInvoice; `n` makes the invoice number and (by default) the source id unique."""
    return models.NewInvoice(
        type=models.InvoiceType.NOTICE,
        invoice_number=f"E2E-{n:06d}",
        original_invoice_amount=Decimal(amount),
        currency="NOK",
        invoice_date=INVOICE_DATE,
        due_date=due_date,
        unique_source_invoice_id=usid if usid is not None else f"e2e-src-{n:06d}",
        description="Husleie mai",
        debtors=[
            models.Debtor(
                type=models.DebtorType.PRIVATE,
                firstname="Kari",
                lastname="Nordmann",
                customer_number=customer_number or f"C-{n:06d}",
            )
        ],
    )


@asynccontextmanager
async def connect(
    server: SandboxServer,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    **kwargs: Any,
) -> AsyncIterator[AmiliClient]:
    """An AmiliClient for `server` (default credentials unless given), closed on exit."""
    async with AmiliClient(
        client_id=client_id or server.client_id,
        client_secret=client_secret or server.client_secret,
        base_url=server.base_url,
        token_url=server.token_url,
        **kwargs,
    ) as client:
        yield client


async def created_invoice(
    client: AmiliClient, org: str, invoice: models.NewInvoice
) -> tuple[models.Batch, models.Invoice]:
    """Create one invoice, wait for its batch, read it back."""
    reference = await client.invoices.create(org, [invoice])
    batch = await client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    assert batch.status == models.BatchStatus.SUCCESS, batch.failed
    assert batch.succeeded is not None
    invoice_id = batch.succeeded[0].invoice_id
    assert invoice_id is not None
    return batch, await client.invoices.get(org, invoice_id)


def sandbox_invoice_count(server: SandboxServer, org: str | None = None) -> int:
    """How many invoices the sandbox holds for `org` (seeded + created), from its own state."""
    return server.state.orgs[org or server.default_org_id].invoice_count


def seeded_ids(server: SandboxServer) -> list[str]:
    """The seeded invoice ids in listing order, straight from the sandbox's state."""
    seeded = server.state.default_org.seeded
    assert seeded is not None
    return [seeded.invoice_id(i) for i in range(seeded.n)]


@attrs.frozen
class Run:
    """How a CLI run ended: its exit status and what it printed."""

    code: int
    stdout: str
    stderr: str


async def run_cli(*args: str | Path, env: Mapping[str, str], timeout: float) -> Run:
    """Run `python -m amili_async ARGS` to completion (killed after `timeout` seconds)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amili_async",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def assert_one_line_error(run: Run) -> str:
    """The CLI failed with exit 1 and one `amili-async: error:` line, no traceback."""
    assert run.code == 1, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("amili-async: error: ")
    return lines[0]
