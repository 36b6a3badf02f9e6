"""`amili-async submit`: bulk-create invoices, payments or corrections from a file.

Rows are read lazily, submitted in concurrent chunks, each batch is waited for, and a report
(`<file>.report.csv` unless `--report` says otherwise) gets one line per input row: succeeded
with the ids Amili assigned, failed with the server's reason, or unknown (the outcome could
not be learnt: look at the batch, never resubmit blindly). Lines are flushed chunk by chunk,
so an interrupted run leaves a true partial report.

Every row is keyed by its content (organization, kind, the row as sent, its occurrence among
identical rows) in a ledger beside the file (`<file>.ledger.jsonl`, see `amili_async._ledger`):
running the file again, after an interruption, with another `--chunk-size` or with rows
edited, sends only the rows not created yet (an edited row is a new row); the report's
`already_done` column says which rows an earlier run had created. `--fresh-keys` submits the
file as new items instead (no ledger).
"""

from __future__ import annotations

import csv
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .. import _json, _request_checks, models
from .._client import AmiliClient
from ..bulk import DEFAULT_CHUNK_SIZE, DEFAULT_CONCURRENCY, Ledger
from ..resources._writes import BatchWrites
from ._args import shown
from ._progress import Progress, plural
from ._rows import (
    DEFAULT_ENCODING,
    coerce,
    csv_header,
    file_format,
    read_records,
    unknown_column,
)

MODELS: dict[str, type[Any]] = {
    "invoices": models.NewInvoice,
    "payments": models.NewPayment,
    "corrections": models.NewCorrection,
}

LISTINGS: dict[str, type[Any]] = {"invoices": models.Invoice}
"""What `export` writes for the same kind: its columns that a request does not take (id,
status, amounts paid...) are read-only, and ignored, so an exported file submits as it is."""

SHOWN_PROBLEMS = 200
"""Invalid cells listed at most: every one in a file with a few mistakes, not a flood for a
file in the wrong format altogether (the summary counts them all)."""

REPORT_COLUMNS = [
    "row",
    "status",
    "idempotency_key",
    "batch_id",
    "invoice_id",
    "case_id",
    "reason",
    "already_done",
]


@attrs.frozen
class SubmitSummary:
    ok: int
    failed: int
    report: Path
    unknown: int = 0
    already_done: int = 0
    """Rows an earlier run had created: reported as succeeded, not sent again."""


def report_path(source: Path) -> Path:
    return source.with_name(source.stem + ".report.csv")


def ledger_path(source: Path) -> Path:
    """Where the rows' outcomes are kept across runs: beside the file, whatever `--report`."""
    return source.with_name(source.stem + ".ledger.jsonl")


class InvalidInputError(ValueError):
    """The file cannot be submitted as it is; `details` has one line per thing to fix."""

    def __init__(self, summary: str, details: list[str]) -> None:
        super().__init__(summary)
        self.details = details


@attrs.frozen
class Reading:
    """How to read the input file: its text encoding and CSV separator (None: sniffed)."""

    encoding: str = DEFAULT_ENCODING
    delimiter: str | None = None


class Spool:
    """The rows `validate` found valid, each kept as its wire JSON (`_request_checks.Sealed`:
    checked and encoded once) in a temporary file until they are sent: every row is read once
    and memory stays flat whatever the file's length. Debtor data: the file is a
    `tempfile.TemporaryFile` (owner-only, without a name on POSIX), gone after the `with`."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed on leaving `with`)

    def add(self, sealed: _request_checks.Sealed) -> None:
        # One line a row: the source id (JSON: never a raw tab or newline), a tab, the row's
        # wire JSON (compact JSON: no raw newline either).
        self._file.write(_json.dumps(sealed.unique_source_invoice_id))
        self._file.write(b"\t")
        self._file.write(bytes(sealed.wire))
        self._file.write(b"\n")

    def items(self, cls: type[Any]) -> Iterator[_request_checks.Sealed]:
        """The rows added, in order, as `Sealed` items of `cls`."""
        self._file.seek(0)
        sealed, fragment, loads = _request_checks.Sealed, _json.Fragment, _json.loads
        for line in self._file:
            source, _, wire = line.partition(b"\t")
            yield sealed(cls, fragment(wire[:-1]), loads(source))

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def validate(
    path: Path, what: str, reading: Reading = Reading(), *, keep: Spool | None = None
) -> tuple[int, list[str]]:
    """(rows, read-only columns ignored) after checking every row and column of `path`.

    Raises InvalidInputError listing every header problem, every unknown column (with a
    suggestion) and every invalid row or line: its number, the column, the value (shortened)
    and why. `keep` gets every valid row, checked and encoded (sent from there: each row is
    read once).
    """
    cls, listing = MODELS[what], LISTINGS.get(what)
    unknown: dict[str, str] = {}
    ignored: list[str] = []

    def classify(column: str) -> None:
        if column in unknown or column in ignored:
            return
        suggestion = unknown_column(column, cls)
        if suggestion is None:
            return
        if listing is not None and unknown_column(column, listing) is None:
            ignored.append(column)  # an exported file's read-only column (id, status...)
        else:
            unknown[column] = suggestion

    for column in csv_header(path, encoding=reading.encoding, delimiter=reading.delimiter):
        classify(column)
    jsonl = file_format(path) == "jsonl"
    problems: list[str] = []
    header_issues: list[str] = []
    bad_rows: set[int] = set()
    rows = 0
    for record in read_records(path, encoding=reading.encoding, delimiter=reading.delimiter):
        number, row = record.number, record.data
        if number == 0:  # the header names a column twice, or one field two ways
            header_issues.append(record.problem or "")
            continue
        rows += 1
        if row is None:  # not a JSON object, or cells the header does not name
            problems.append(record.problem or "")
            bad_rows.add(number)
            continue
        if jsonl:
            for key in row:
                classify(key)
        data = coerce(row, cls)
        try:
            sealed = _request_checks.seal(data, cls, decoded=True)
        except (TypeError, ValueError) as error:  # every problem of the row, not the first
            found = _request_checks.problems(data, cls, decoded=True) or [("$", str(error))]
        else:
            found = []
            if keep is not None:
                keep.add(sealed)
        for where, why in found:
            column, value = _cell(row, where)
            shown_value = f" = {shown(str(value))}" if value is not None else ""
            problems.append(f"{path.name} row {number}, column {column}{shown_value}: {why}")
            bad_rows.add(number)
    details = header_issues + [
        f"{path.name}: unknown column {column!r}"
        + (f" (did you mean {suggestion!r}?)" if suggestion else "")
        for column, suggestion in unknown.items()
    ]
    if len(problems) > SHOWN_PROBLEMS:
        more = len(problems) - SHOWN_PROBLEMS
        problems = [*problems[:SHOWN_PROBLEMS], f"... and {more:,} more"]
    details += problems
    if details:
        parts = []
        if header_issues:
            parts.append(plural(len(header_issues), "header problems"))
        if unknown:
            parts.append(plural(len(unknown), "unknown columns"))
        if bad_rows:
            parts.append(f"{plural(len(bad_rows), 'invalid rows')} of {rows:,}")
        raise InvalidInputError(
            f"{path.name}: {' and '.join(parts)} (listed above); nothing was sent", details
        )
    return rows, ignored


def _cell(row: dict[str, Any], where: str) -> tuple[str, Any]:
    """(CSV column, the value in the file) for a wire path such as `$.debtors[0].dateOfBirth`."""
    parts = [p for p in re.split(r"[.\[\]]+", where.removeprefix("$")) if p]
    node: Any = row
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
            break
    value = node if not isinstance(node, dict | list) else None
    return ".".join(parts) or "(row)", value


async def submit(
    client: AmiliClient,
    what: str,
    organization_id: str,
    source: Path,
    *,
    report: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: bool = True,
    fresh_keys: bool = False,
    reading: Reading = Reading(),
) -> SubmitSummary:
    """Submit every row of `source` and write the per-row report."""
    # Every row is validated before any is sent; each is kept, encoded, in a spool on disk
    # and sent from there (read once, memory flat).
    with Spool() as spool:
        return await _send(client, what, organization_id, source, spool, report=report,
            chunk_size=chunk_size, concurrency=concurrency, progress=progress,
            fresh_keys=fresh_keys, reading=reading)  # fmt: skip


async def _send(
    client: AmiliClient,
    what: str,
    organization_id: str,
    source: Path,
    spool: Spool,
    *,
    report: Path | None,
    chunk_size: int,
    concurrency: int,
    progress: bool,
    fresh_keys: bool,
    reading: Reading,
) -> SubmitSummary:
    """`submit` with its spool: validate into it, then send from it and write the report."""
    total, ignored = validate(source, what, reading, keep=spool)
    items = spool.items(MODELS[what])
    if ignored:
        names = ", ".join(ignored[:5]) + (
            f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
        )
        print(f"{source.name}: ignoring read-only columns of an export: {names}", file=sys.stderr)
    resources: dict[str, BatchWrites[Any]] = {
        "invoices": client.invoices,
        "payments": client.payments,
        "corrections": client.corrections,
    }
    resource = resources[what]
    report = report or report_path(source)
    counter = Progress(what, total=total) if progress else None
    counts = dict.fromkeys(("succeeded", "failed", "unknown"), 0)
    already_done = 0
    ledger = None if fresh_keys else Ledger(ledger_path(source))
    with report.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)  # a tuple per row, in REPORT_COLUMNS' order
        writer.writerow(REPORT_COLUMNS)
        stream.flush()
        async for result in resource.create_many(
            organization_id,
            items,
            chunk_size=chunk_size,
            concurrency=concurrency,
            ledger=ledger,
        ):
            entry = result.succeeded or result.failed
            writer.writerow(
                (
                    result.index + 1,  # row
                    result.outcome,  # status
                    result.idempotency_key or "",
                    result.batch_id or "",
                    getattr(entry, "invoice_id", None) or "",
                    getattr(result.succeeded, "case_id", None) or "",
                    result.reason or "",
                    "yes" if result.already_done else "",  # already_done
                )
            )
            counts[result.outcome] += 1
            already_done += result.already_done
            if (result.index + 1) % chunk_size == 0 or result.index + 1 == total:
                stream.flush()  # a chunk's rows reach the file before the next chunk's
                if counter is not None:
                    counter.advance(result.index + 1 - counter.count)
    if counter is not None:
        counter.close()
    if already_done:
        print(
            f"{source.name}: {plural(already_done, 'rows')} had been created by an earlier run "
            "(not sent again; the report's already_done column names them)",
            file=sys.stderr,
        )
    return SubmitSummary(
        counts["succeeded"], counts["failed"], report, counts["unknown"], already_done
    )
