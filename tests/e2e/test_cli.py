"""The `amili-async` command line as a user runs it: a subprocess against a live sandbox.

The sandbox runs in the test's event loop, which keeps serving while the test awaits the child.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import signal
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from amili_async import AmiliClient
from amili_async.sandbox import DEFAULT_WEBHOOK_SECRET, SandboxConfig, SandboxServer, make_orgs

from ..export._interrupt import BACKGROUND_CLI
from ..export._state import exported_rows, stage_files, work_dir
from .conftest import Run, assert_one_line_error, run_cli, sandbox_invoice_count, seeded_ids

SEEDED = 250
CHILD_TIMEOUT = 60.0


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, seed=11, batch_delay=0.01)


def base_env(**values: str) -> dict[str, str]:
    """The parent's environment without any AMILI_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_")}
    env.update(values)
    return env


@pytest.fixture
def env(amili_sandbox: SandboxServer) -> dict[str, str]:
    return base_env(
        AMILI_BASE_URL=amili_sandbox.base_url,
        AMILI_CLIENT_ID=amili_sandbox.client_id,
        AMILI_CLIENT_SECRET=amili_sandbox.client_secret,
    )


@pytest.fixture
def org(amili_sandbox: SandboxServer) -> str:
    return amili_sandbox.default_org_id


async def cli(*args: str | Path, env: Mapping[str, str]) -> Run:
    """Run `python -m amili_async ARGS` to completion."""
    return await run_cli(*args, env=env, timeout=CHILD_TIMEOUT)


def jsonl_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_text().splitlines()]


def csv_ids(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as stream:
        return [row["id"] for row in csv.DictReader(stream)]


# --------------------------------------------------------------------------- export


async def test_export_jsonl_writes_exactly_the_sandbox_invoices(
    amili_sandbox: SandboxServer, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    out = tmp_path / "invoices.jsonl"

    run = await cli("export", "invoices", "--org", org, "--out", out, "--page-size", "40", env=env)

    assert run.code == 0, run.stderr
    ids = jsonl_ids(out)
    assert ids == seeded_ids(amili_sandbox)
    assert f"exported {SEEDED} invoices" in run.stdout
    first = orjson.loads(out.read_text().splitlines()[0])
    assert first["organization"]["id"] == org
    assert "remainingAmount" in first
    assert not work_dir(out).exists()  # done: nothing to resume


async def test_export_csv_has_a_header_and_one_row_per_invoice(
    amili_sandbox: SandboxServer,
    amili_client: AmiliClient,
    env: dict[str, str],
    org: str,
    tmp_path: Path,
) -> None:
    out = tmp_path / "invoices.csv"

    run = await cli("export", "invoices", "--org", org, "--out", out, "--no-progress", env=env)

    assert run.code == 0, run.stderr
    with out.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["id"] for row in rows] == seeded_ids(amili_sandbox)
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"id", "invoiceNumber", "organization.name", "remainingAmount"} <= set(header)
    assert {"debtors", "debtors.0.customerNumber", "debtors.0.addresses.0.city"} <= set(header)
    api = {i.id: i for i in await amili_client.invoices.list(org, page_size=1000).collect()}
    for row in rows[::25]:
        invoice = api[row["id"]]
        assert Decimal(row["remainingAmount"]) == invoice.remaining_amount
        assert row["organization.name"] == "Nordlys Eiendom AS"
        debtors = invoice.debtors or []
        if len(debtors) == 1:  # one debtor: dotted columns, the JSON column stays empty
            assert row["debtors.0.customerNumber"] == (debtors[0].customer_number or "")
            assert not row["debtors"]
        else:  # several (or none): the whole list as JSON
            assert [d["customerNumber"] for d in orjson.loads(row["debtors"])] == [
                d.customer_number for d in debtors
            ]


async def test_export_with_status_filter(
    amili_client: AmiliClient, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    out = tmp_path / "closed.jsonl"

    run = await cli("export", "invoices", "--org", org, "--out", out, "--status", "CLOSED", env=env)

    assert run.code == 0, run.stderr
    closed = await amili_client.invoices.list(org, status="CLOSED").collect()
    assert 0 < len(closed) < SEEDED
    assert jsonl_ids(out) == [i.id for i in closed]


async def test_export_partitioned(
    amili_sandbox: SandboxServer, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    out = tmp_path / "all.jsonl"

    run = await cli(
        "export", "invoices", "--org", org, "--out", out, "--partitions", "3",
        "--from", "2023-12-01T00:00:00Z", "--to", "2030-01-01T00:00:00Z", "--page-size", "30",
        env=env,
    )  # fmt: skip

    assert run.code == 0, run.stderr
    ids = jsonl_ids(out)
    assert len(ids) == len(set(ids)) == SEEDED
    assert set(ids) == set(seeded_ids(amili_sandbox))


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
async def test_export_resumes_after_a_kill(
    amili_sandbox: SandboxServer, env: dict[str, str], org: str, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"invoices.{suffix}"
    read_ids = jsonl_ids if suffix == "jsonl" else csv_ids
    amili_sandbox.set_faults("latency=30ms")  # 50 pages of 5: about 1.5 s for the whole export
    args = ("export", "invoices", "--org", org, "--out", out, "--page-size", "5", "--no-progress")

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amili_async",
        *map(str, args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        count = await _wait_for_checkpoint(out, proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < count < SEEDED, "the export must have been killed midway"
    (stage,) = stage_files(out)  # rows are staged as JSON Lines, whatever the output format
    with stage.open("ab") as stream:  # a page that was only half written when the process died
        stream.write(b'{"id":"half-written-invoi')
    assert not out.exists()  # nothing is published before the whole export is staged

    amili_sandbox.set_faults(None)
    run = await cli(*args, "--resume", env=env)

    assert run.code == 0, run.stderr
    assert "resumed at" in run.stdout
    assert read_ids(out) == seeded_ids(amili_sandbox)  # every invoice exactly once, in order
    assert not work_dir(out).exists()  # removed once the export is complete
    if suffix == "csv":
        assert out.read_text(encoding="utf-8").count("id,organization.id,") == 1  # one header

    again = await cli(*args, env=env)  # a finished export is not overwritten without --force
    assert "exists: pass --force" in assert_one_line_error(again)
    assert read_ids(out) == seeded_ids(amili_sandbox)


async def _wait_for_checkpoint(out: Path, proc: asyncio.subprocess.Process) -> int:
    """Poll (bounded) until the child's checkpoints record at least one exported page."""
    async with asyncio.timeout(CHILD_TIMEOUT):
        while proc.returncode is None:
            count = exported_rows(out)
            if count:
                return count
            await asyncio.sleep(0.01)
    raise AssertionError(f"the export ended (exit {proc.returncode}) before it was killed")


async def test_export_cases_batches_and_settlements(
    amili_client: AmiliClient, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    invoice = (await amili_client.invoices.list(org, status="OPEN").collect(limit=1))[0]
    payment = {"invoiceId": invoice.id, "type": "DIRECT_PAYMENT", "amount": 10}
    reference = await amili_client.payments.create(org, [{**payment, "currency": "NOK"}])
    await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    expected = {
        "cases": [c.case_id for c in await amili_client.collections.list_cases(org).collect()],
        "batches": [reference.batch_id],
        "settlements": [
            s.settlement_id for s in await amili_client.settlements.list(org).collect()
        ],
    }
    key = {"cases": "caseId", "batches": "batchId", "settlements": "settlementId"}

    runs = await asyncio.gather(
        *(
            cli("export", what, "--org", org, "--out", tmp_path / f"{what}.jsonl", env=env)
            for what in expected
        )
    )

    for what, run in zip(expected, runs, strict=True):
        assert run.code == 0, run.stderr
        lines = (tmp_path / f"{what}.jsonl").read_text().splitlines()
        assert [orjson.loads(line)[key[what]] for line in lines] == expected[what]
    assert len(expected["cases"]) == SEEDED
    assert len(expected["settlements"]) == 1


async def test_sandbox_command_serves_until_interrupted() -> None:
    proc = await asyncio.create_subprocess_exec(
        *BACKGROUND_CLI,  # SIGINT stops it although it inherited SIGINT ignored
        "sandbox",
        "--port",
        "0",
        "--invoices",
        "30",
        "--faults",
        "503=0.2,retry_after=0,seed=4",
        "--log-requests",
        "--orgs",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=base_env(),
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(CHILD_TIMEOUT):
            banner = (await proc.stdout.readline()).decode()
            settings = (await proc.stdout.readline()).decode()
            orgs = [(await proc.stdout.readline()).decode() for _ in range(3)]
            webhooks = (await proc.stdout.readline()).decode()
        # Every organisation is listed, with its seeded invoices, and the webhook secret.
        listed = [re.fullmatch(r"  org (\S+)  30 invoices  .+\n", line) for line in orgs]
        assert all(listed), orgs
        assert [m.group(1) for m in listed if m] == [o.id for o in make_orgs(3)]
        assert f"webhooks signed with secret {DEFAULT_WEBHOOK_SECRET!r}" in webhooks
        assert "faults 503=0.2 seed=4 retry_after=0s; rate limit none" in settings
        assert "logging requests" in settings
        found = re.search(r"API (\S+)\s+token (\S+)\s+client .*\s+org (\S+)", banner)
        assert found is not None, banner
        base_url, token_url, org = found.groups()
        async with AmiliClient(
            client_id="sandbox",
            client_secret="sandbox-secret",
            base_url=base_url,
            token_url=token_url,
            max_retries=10,
        ) as client:
            invoices = await client.invoices.list(org, page_size=7).collect()
        assert len(invoices) == 30
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(CHILD_TIMEOUT):
            _, err = await proc.communicate()
    assert proc.returncode == 130
    log = err.decode()
    assert "Traceback" not in log
    # One line per request: method, path, status, the injected fault; no query, no token.
    lines = [line for line in log.splitlines() if line.startswith(("GET ", "POST "))]
    assert re.fullmatch(r"POST /token 200 \d+ms", lines[0]), lines[0]
    listed = [line for line in lines if f"/orgs/{org}/invoices " in line]
    assert sum(" 200 " in line for line in listed) == 5  # 30 invoices in pages of 7
    assert any(line.endswith("fault=503") and " 503 " in line for line in listed)
    assert "?" not in log
    assert "PageSize" not in log
    assert "sandbox-secret" not in log
    assert "Bearer" not in log


async def test_sandbox_json_banner_lists_every_org_for_scripts() -> None:
    proc = await asyncio.create_subprocess_exec(
        *BACKGROUND_CLI, "sandbox", "--port", "0", "--invoices", "4",
        "--orgs", "3", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=base_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(CHILD_TIMEOUT):
            banner = orjson.loads(await proc.stdout.readline())
        assert [o["id"] for o in banner["orgs"]] == [o.id for o in make_orgs(3)]
        assert [o["invoices"] for o in banner["orgs"]] == [4, 4, 4]
        assert banner["webhook_secret"] == DEFAULT_WEBHOOK_SECRET
        async with AmiliClient(
            client_id=banner["client_id"],
            client_secret=banner["client_secret"],
            base_url=banner["base_url"],
            token_url=banner["token_url"],
        ) as client:
            for org in banner["orgs"]:
                assert len(await client.invoices.list(org["id"]).collect()) == 4
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(CHILD_TIMEOUT):
            await proc.communicate()
    assert proc.returncode == 130


async def test_sandbox_never_prints_a_webhook_secret_of_ones_own() -> None:
    own = "own-s3cret-never-printed"
    proc = await asyncio.create_subprocess_exec(
        *BACKGROUND_CLI, "sandbox", "--port", "0", "--invoices", "1",
        "--json", "--webhook-secret", own,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=base_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(CHILD_TIMEOUT):
            line = await proc.stdout.readline()
        assert orjson.loads(line)["webhook_secret"] is None
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)  # what a container runtime or systemd sends
        async with asyncio.timeout(CHILD_TIMEOUT):
            out, err = await proc.communicate()
    assert proc.returncode == 143  # 128 + SIGTERM: a clean stop, as a shell reports it
    assert err.decode().splitlines()[-1:] == ["interrupted"]
    assert own.encode() not in line + out + err


# --------------------------------------------------------------------------- submit


def _row(n: int, **changes: str) -> dict[str, str]:
    row = {
        "type": "NOTICE",
        "invoiceNumber": f"CLI-{n:04d}",
        "originalInvoiceAmount": "1250.50",
        "currency": "NOK",
        "invoiceDate": "2024-05-01T00:00:00Z",
        "dueDate": "2024-05-15T00:00:00Z",
        "uniqueSourceInvoiceId": f"cli-src-{n:04d}",
        "vat": "false",  # CSV text coerced to the model's boolean
        "fees": "true",
        "debtors.0.type": "PRIVATE",
        "debtors.0.firstname": "Ola",
        "debtors.0.lastname": "Nordmann",
        "debtors.0.customerNumber": f"CLI-C-{n}",
        "debtors.0.dateOfBirth": "",
    }
    row.update(changes)
    return row


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


async def test_submit_reports_every_row_and_fails_when_some_rows_fail(
    amili_sandbox: SandboxServer,
    amili_client: AmiliClient,
    env: dict[str, str],
    org: str,
    tmp_path: Path,
) -> None:
    rows = [
        _row(1),
        _row(2, uniqueSourceInvoiceId="erp-order-0000001"),  # a seeded invoice's source id
        _row(3),
        _row(4, originalInvoiceAmount="0"),
        _row(5, dueDate="2024-04-01T00:00:00Z"),
        _row(6, uniqueSourceInvoiceId="cli-src-0001"),  # repeats row 1
        _row(7),
    ]
    source = write_csv(tmp_path / "rows.csv", rows)

    run = await cli("submit", "invoices", source, "--org", org, "--chunk-size", "3", env=env)

    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr
    report = read_report(tmp_path / "rows.report.csv")
    assert [r["row"] for r in report] == [str(k) for k in range(1, 8)]
    assert [r["status"] for r in report] == [
        "succeeded",
        "failed",
        "succeeded",
        "failed",
        "failed",
        "failed",
        "succeeded",
    ]
    for entry in report:
        if entry["status"] == "succeeded":
            assert entry["batch_id"]
            assert entry["case_id"]
            assert not entry["reason"]
            invoice = await amili_client.invoices.get(org, entry["invoice_id"])
            assert invoice.invoice_number == f"CLI-{int(entry['row']):04d}"
            assert invoice.original_invoice_amount == Decimal("1250.50")
        else:
            assert entry["reason"]
    assert "already exists" in report[1]["reason"]
    assert "greater than 0" in report[3]["reason"]
    assert "dueDate" in report[4]["reason"]
    assert "3 succeeded, 4 failed, 0 unknown" in run.stdout
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 3


async def test_submit_all_ok_exits_0(
    amili_sandbox: SandboxServer,
    amili_client: AmiliClient,
    env: dict[str, str],
    org: str,
    tmp_path: Path,
) -> None:
    source = write_csv(tmp_path / "good.csv", [_row(n) for n in range(1, 6)])
    report = tmp_path / "out" / "report.csv"
    report.parent.mkdir()

    run = await cli("submit", "invoices", source, "--org", org, "--report", report, env=env)

    assert run.code == 0, run.stderr
    assert [r["status"] for r in read_report(report)] == ["succeeded"] * 5
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 5

    # Payments from JSON Lines, wire shape.
    target = read_report(report)[0]["invoice_id"]
    payments = tmp_path / "payments.jsonl"
    payments.write_bytes(
        orjson.dumps(
            {"invoiceId": target, "type": "DIRECT_PAYMENT", "amount": 250.25, "currency": "NOK"}
        )
        + b"\n"
    )
    run = await cli("submit", "payments", payments, "--org", org, env=env)
    assert run.code == 0, run.stderr
    assert [r["status"] for r in read_report(tmp_path / "payments.report.csv")] == ["succeeded"]
    paid = await amili_client.invoices.get(org, target)
    assert paid.remaining_amount == Decimal("1000.25")


async def test_submit_validates_every_row_before_sending_any(
    amili_sandbox: SandboxServer, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    rows = [
        _row(1),
        _row(2, originalInvoiceAmount="twelve", vat="maybe"),
        _row(3),
        _row(4, **{"dueDate": "2024-05-15T00:00:00", "debtors.0.dateOfBirth": "1 May 1970"}),
        _row(5, invoiceNumber=""),
    ]
    source = write_csv(tmp_path / "bad.csv", rows)

    run = await cli("submit", "invoices", source, "--org", org, env=env)

    assert run.code == 1, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines[-1] == (
        "amili-async: error: bad.csv: 3 invalid rows of 5 (listed above); nothing was sent"
    )
    assert lines[:-1] == [
        "bad.csv row 2, column originalInvoiceAmount = 'twelve': "
        "not a decimal number: a str that does not parse as one",
        "bad.csv row 2, column vat = 'maybe': expected a boolean, got str",
        "bad.csv row 4, column dueDate = '2024-05-15T00:00:00': a date-time without a timezone:"
        " which timezone did you mean? Add one: Z or +02:00 in text, tzinfo=datetime.UTC or"
        " ZoneInfo('Europe/Oslo') in Python",
        "bad.csv row 4, column debtors.0.dateOfBirth = '1 May 1970': "
        "not an ISO 8601 date: a str that does not parse as one",
        "bad.csv row 5, column invoiceNumber: required field missing",
    ]
    assert sandbox_invoice_count(amili_sandbox) == SEEDED  # the good rows were not sent either
    assert not (tmp_path / "bad.report.csv").exists()


async def test_submit_refuses_unknown_columns_with_a_suggestion(
    amili_sandbox: SandboxServer, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    row = _row(1)
    row["invoiceNumbr"] = row.pop("invoiceNumber")
    row["debtors.0.frstname"] = row.pop("debtors.0.firstname")
    row["colour"] = "blue"
    source = write_csv(tmp_path / "typo.csv", [row])

    run = await cli("submit", "invoices", source, "--org", org, env=env)

    lines = run.stderr.strip().splitlines()
    assert run.code == 1, run
    assert "typo.csv: unknown column 'invoiceNumbr' (did you mean 'invoiceNumber'?)" in lines
    assert (
        "typo.csv: unknown column 'debtors.0.frstname' (did you mean 'debtors.0.firstname'?)"
        in lines
    )
    assert "typo.csv: unknown column 'colour'" in lines
    assert lines[-1].startswith("amili-async: error: typo.csv: 3 unknown columns and 1 invalid row")
    assert sandbox_invoice_count(amili_sandbox) == SEEDED


async def test_a_row_the_server_refuses_fails_alone_and_the_rest_is_resubmitted(
    amili_sandbox: SandboxServer,
    amili_client: AmiliClient,
    env: dict[str, str],
    org: str,
    tmp_path: Path,
) -> None:
    # Three decimals pass the SDK (Decimal is exact) but the API refuses them with a 422 that
    # names the item: only that row fails, the chunk's other rows are created.
    rows = [_row(n) for n in range(1, 6)]
    rows[2]["originalInvoiceAmount"] = "100.125"
    source = write_csv(tmp_path / "mixed.csv", rows)

    run = await cli("submit", "invoices", source, "--org", org, "--chunk-size", "5", env=env)

    assert run.code == 1, run.stderr
    report = read_report(tmp_path / "mixed.report.csv")
    assert [r["status"] for r in report] == ["succeeded"] * 2 + ["failed"] + ["succeeded"] * 2
    assert report[2]["reason"] == (
        "originalInvoiceAmount: The amount must have at most 2 decimal places."
    )
    keys = {r["idempotency_key"] for r in report}
    assert len(keys) == 2  # the refused chunk's key, and a new one for the rest
    assert report[0]["idempotency_key"] != report[2]["idempotency_key"]
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 4
    assert "4 succeeded, 1 failed, 0 unknown" in run.stdout


async def test_export_csv_submits_again_round_trip(
    amili_sandbox: SandboxServer,
    amili_client: AmiliClient,
    env: dict[str, str],
    org: str,
    tmp_path: Path,
) -> None:
    """An exported CSV is a valid submit input: same columns, read-only ones ignored."""
    created = write_csv(tmp_path / "new.csv", [_row(n) for n in range(1, 4)])
    first = await cli("submit", "invoices", created, "--org", org, env=env)
    assert first.code == 0, first.stderr
    exported = tmp_path / "all.csv"
    run = await cli("export", "invoices", "--org", org, "--out", exported, "--no-progress", env=env)
    assert run.code == 0, run.stderr
    with exported.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        header = list(reader.fieldnames or [])
        ours = [row for row in reader if row["invoiceNumber"].startswith("CLI-")]
    assert len(ours) == 3
    for row in ours:  # the same invoices again, under new numbers (as a migration would)
        row["invoiceNumber"] = row["invoiceNumber"].replace("CLI-", "RT-")
        row["uniqueSourceInvoiceId"] = "rt-" + row["uniqueSourceInvoiceId"]
    again = tmp_path / "again.csv"
    with again.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=header)
        writer.writeheader()
        writer.writerows(ours)

    run = await cli("submit", "invoices", again, "--org", org, env=env)

    assert run.code == 0, run.stderr
    assert "ignoring read-only columns of an export: id, organization.id" in run.stderr
    for entry, row in zip(read_report(tmp_path / "again.report.csv"), ours, strict=True):
        copy = await amili_client.invoices.get(org, entry["invoice_id"])
        original = await amili_client.invoices.get(org, row["id"])
        assert copy.invoice_number == original.invoice_number.replace("CLI-", "RT-")
        assert copy.original_invoice_amount == original.original_invoice_amount
        assert (copy.invoice_date, copy.due_date) == (original.invoice_date, original.due_date)
        assert copy.debtors is not None
        assert original.debtors is not None
        assert [d.customer_number for d in copy.debtors] == [
            d.customer_number for d in original.debtors
        ]


# --------------------------------------------------------------------------- errors


async def test_usage_errors_exit_1_with_one_line(
    env: dict[str, str], org: str, tmp_path: Path
) -> None:
    cases: list[tuple[tuple[Any, ...], str]] = [
        (
            ("export", "invoices", "--org", org, "--out", tmp_path / "y.jsonl", "--resume"),
            "nothing to resume",
        ),
        (
            ("export", "invoices", "--org", "00000000-0000-4000-8000-000000000000",
             "--out", tmp_path / "w.jsonl"),
            "404",
        ),
    ]  # fmt: skip
    runs = await asyncio.gather(*(cli(*args, env=env) for args, _ in cases))
    for (args, expected), run in zip(cases, runs, strict=True):
        line = assert_one_line_error(run)
        assert expected in line, (args, line)
    assert not (tmp_path / "w.jsonl").exists()  # a failed export leaves no empty file
    assert not work_dir(tmp_path / "w.jsonl").exists()


BAD_ARGUMENTS: list[tuple[tuple[str, ...], str]] = [
    (("export", "invoices", "--out", "x.jsonl"), "the following arguments are required: --org"),
    (("export", "everything", "--org", "o", "--out", "x.jsonl"), "what: invalid choice"),
    (
        ("export", "invoices", "--org", "o", "--out", "x.jsonl", "--page-size", "many"),
        "--page-size: not an integer: 'many'",
    ),
    (
        ("export", "invoices", "--org", "o", "--out", "x.jsonl", "--page-size", "5000"),
        "--page-size: must be from 1 to 1000, got 5000",
    ),
    (
        ("export", "invoices", "--org", "o", "--out", "x.jsonl", "--from", "yesterday"),
        "--from: not an ISO 8601 date-time: 'yesterday'",
    ),
    (("export", "invoices", "--org", "o", "--out", "x.txt"), "--out: 'x.txt': use a .jsonl"),
    (
        ("export", "invoices", "--org", "o", "--out", "no/such/dir/x.csv"),
        "--out: 'no/such/dir/x.csv': directory 'no/such/dir' does not exist",
    ),
    (
        ("export", "settlements", "--org", "o", "--out", "s.jsonl", "--partitions", "2"),
        "--partitions: only supported for invoices",
    ),
    (
        ("export", "invoices", "--org", "o", "--out", "s.jsonl", "--partitions", "2"),
        "--partitions: needs --from and --to",
    ),
    (("submit", "invoices", "--org", "o"), "the following arguments are required: file"),
    (("submit", "invoices", "missing.csv", "--org", "o"), "file: 'missing.csv': no such file"),
    (
        ("submit", "invoices", "{csv}", "--org", "o", "--chunk-size", "0"),
        "--chunk-size: must be from 1 to 1000, got 0",
    ),
    (("sandbox", "--port", "99999"), "--port: must be from 0 to 65535, got 99999"),
    (("sandbox", "--faults", "429=lots"), "--faults: fault spec 429='lots': not a probability"),
    (("sandbox", "--faults", "flood=1"), "--faults: unknown fault spec key 'flood'"),
    (("frobnicate",), "COMMAND: invalid choice: 'frobnicate'"),
    ((), "the following arguments are required: COMMAND"),
]


async def test_bad_arguments_exit_2_with_one_line_naming_the_flag(tmp_path: Path) -> None:
    existing = write_csv(tmp_path / "rows.csv", [_row(1)])
    # No sandbox: a bad argument must be refused before any network call.
    env = base_env(AMILI_BASE_URL="http://127.0.0.1:9/collection/v1")
    runs = await asyncio.gather(
        *(
            cli(*(str(existing) if a == "{csv}" else a for a in args), env=env)
            for args, _ in BAD_ARGUMENTS
        )
    )
    for (args, expected), run in zip(BAD_ARGUMENTS, runs, strict=True):
        assert run.code == 2, (args, run)
        assert "Traceback" not in run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, (args, run.stderr)
        assert lines[0].startswith("amili-async")
        assert ": error: " + expected in lines[0], (args, lines[0])
        assert lines[0].endswith("--help)")


async def test_missing_settings_exit_2_naming_them_without_echoing_secrets(
    amili_sandbox: SandboxServer, org: str, tmp_path: Path
) -> None:
    secret = "s3cr3t-9f1c-never-print-me"
    out = tmp_path / "x.jsonl"
    export = ("export", "invoices", "--org", org, "--out", out)
    no_id = base_env(AMILI_BASE_URL=amili_sandbox.base_url, AMILI_CLIENT_SECRET=secret)
    no_secret = base_env(AMILI_BASE_URL=amili_sandbox.base_url, AMILI_CLIENT_ID="sandbox")
    no_host = base_env(AMILI_CLIENT_ID="sandbox", AMILI_CLIENT_SECRET=secret)
    wrong = base_env(
        AMILI_BASE_URL=amili_sandbox.base_url, AMILI_CLIENT_ID="sandbox", AMILI_CLIENT_SECRET=secret
    )

    runs = await asyncio.gather(
        *(cli(*export, env=e) for e in (no_id, no_secret, no_host, wrong)),
        cli("webhooks", "listen", "--port", "0", env=base_env()),
    )

    for run in runs[:3] + runs[4:]:
        assert run.code == 2, run
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert lines[0].endswith("--help)")
    for run in runs:
        assert secret not in run.stderr + run.stdout
    assert "error: credentials missing: give --client-id (or set AMILI_CLIENT_ID)" in (
        runs[0].stderr
    )
    assert "error: credentials missing: give --client-secret (or set AMILI_CLIENT_SECRET)" in (
        runs[1].stderr
    )
    assert "error: no API host: give --environment staging|production or --base-url" in (
        runs[2].stderr
    )
    assert "401" in assert_one_line_error(runs[3])  # given but wrong: the API says so
    assert runs[4].stderr.startswith(
        "amili-async webhooks listen: error: give --secret or set AMILI_WEBHOOK_SECRET"
    )
    assert not out.exists() or not out.read_text()


async def test_flags_override_missing_environment(
    amili_sandbox: SandboxServer, org: str, tmp_path: Path
) -> None:
    out = tmp_path / "flags.jsonl"
    run = await cli(
        "export", "invoices", "--org", org, "--out", out,
        "--base-url", amili_sandbox.base_url, "--token-url", amili_sandbox.token_url,
        "--client-id", amili_sandbox.client_id, "--client-secret", amili_sandbox.client_secret,
        env=base_env(),
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert len(jsonl_ids(out)) == SEEDED
    assert amili_sandbox.client_secret not in run.stdout + run.stderr


# --------------------------------------------------------------------------- demo


async def test_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"

    run = await cli("demo", "--out", out, "--invoices", "2000", env=base_env())

    assert run.code == 0, run.stdout + run.stderr
    ids = jsonl_ids(out / "invoices.jsonl")
    assert len(ids) == len(set(ids)) == 2000 + 18  # seeded + the demo's 18 good rows
    report = read_report(out / "new-invoices.report.csv")
    assert [r["status"] for r in report].count("succeeded") == 18
    assert "matches" in run.stdout
    # The two refused rows are announced as deliberate, each with why and the server's reason.
    assert "rows 19 and 20 are wrong on purpose" in run.stdout
    assert "row 19 (it repeats row 1's uniqueSourceInvoiceId): uniqueSourceInvoiceId" in run.stdout
    assert "row 20 (it is due before it was issued): dueDate" in run.stdout


async def test_resume_with_other_filters_is_refused(
    amili_sandbox: SandboxServer, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    out = tmp_path / "open.jsonl"
    args = ("export", "invoices", "--org", org, "--out", out, "--page-size", "5")
    amili_sandbox.set_faults("latency=30ms")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "amili_async", *map(str, args), "--status", "OPEN", "--no-progress",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        await _wait_for_checkpoint(out, proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    amili_sandbox.set_faults(None)
    again = await cli(*args, "--status", "CLOSED", "--resume", env=env)
    line = assert_one_line_error(again)
    assert "another export" in line
    assert "--status (OPEN in the interrupted run, CLOSED now)" in line
    assert "--page-size" not in line  # only the options that differ are named
    other_size = (*args[:-1], "7", "--status", "OPEN", "--resume")  # --page-size 7, not 5
    line = assert_one_line_error(await cli(*other_size, env=env))
    assert "--page-size (5 in the interrupted run, 7 now)" in line
    assert "--status" not in line
    fresh = await cli(*args, "--status", "CLOSED", env=env)
    assert "interrupted export: --resume" in assert_one_line_error(fresh)
    same = await cli(*args, "--status", "OPEN", "--resume", env=env)
    assert same.code == 0, same
