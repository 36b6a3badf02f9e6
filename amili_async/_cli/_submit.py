"""`amili-async submit`: bulk-create invoices, payments or corrections from a file.

Rows are read lazily, submitted in concurrent chunks, each batch is waited for, and a report
(`<file>.report.csv` unless `--report` says otherwise) gets one line per input row: ok with
the ids Amili assigned, or failed with the server's reason.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .. import _serde, models
from .._client import AmiliClient
from ..bulk import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    BulkCorrections,
    BulkInvoices,
    BulkPayments,
)
from ._progress import Progress
from ._rows import coerce, read_rows

MODELS: dict[str, type[Any]] = {
    "invoices": models.NewInvoice,
    "payments": models.NewPayment,
    "corrections": models.NewCorrection,
}

REPORT_COLUMNS = ["row", "status", "batch_id", "invoice_id", "case_id", "reason"]


@attrs.frozen
class SubmitSummary:
    ok: int
    failed: int
    report: Path


def report_path(source: Path) -> Path:
    return source.with_name(source.stem + ".report.csv")


def _models(path: Path, cls: type[Any]) -> Iterator[Any]:
    """Parse each row into the request model; a malformed row stops with its row number."""
    for number, row in enumerate(read_rows(path), 1):
        try:
            yield _serde.structure(coerce(row, cls), cls)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path.name} row {number}: {error}") from None


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
) -> SubmitSummary:
    """Submit every row of `source` and write the per-row report."""
    # Two passes, memory flat: validate every row before sending any, then stream them.
    total = sum(1 for _ in _models(source, MODELS[what]))
    resources: dict[str, BulkInvoices | BulkPayments | BulkCorrections] = {
        "invoices": client.invoices,
        "payments": client.payments,
        "corrections": client.corrections,
    }
    resource = resources[what]
    report = report or report_path(source)
    counter = Progress(what, total=total) if progress else None
    ok = failed = 0
    with report.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        async for result in resource.create_many(
            organization_id,
            _models(source, MODELS[what]),
            chunk_size=chunk_size,
            concurrency=concurrency,
        ):
            entry = result.succeeded or result.failed
            writer.writerow(
                {
                    "row": result.index + 1,
                    "status": "ok" if result.ok else "failed",
                    "batch_id": result.batch_id or "",
                    "invoice_id": getattr(entry, "invoice_id", None) or "",
                    "case_id": getattr(result.succeeded, "case_id", None) or "",
                    "reason": result.reason or "",
                }
            )
            ok, failed = (ok + 1, failed) if result.ok else (ok, failed + 1)
            if counter is not None:
                counter.advance()
    if counter is not None:
        counter.close()
    return SubmitSummary(ok, failed, report)
