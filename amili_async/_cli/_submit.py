"""`amili-async submit`: bulk-create invoices, payments or corrections from a file.

Rows are read lazily, submitted in concurrent chunks, each batch is waited for, and a report
(`<file>.report.csv` unless `--report` says otherwise) gets one line per input row: succeeded
with the ids Amili assigned, failed with the server's reason, or unknown (the outcome could
not be learnt: look at the batch, never resubmit blindly). Lines are flushed chunk by chunk,
so an interrupted run leaves a true partial report.

Each chunk's idempotency key is derived from the organization, the kind of item, the chunk's
position and its rows (`bulk.content_key`): running the same file again after an interruption
re-sends every chunk with the key it had, and nothing is created or paid twice.
`--fresh-keys` submits the file as new items instead.
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
    content_key,
)
from ._progress import Progress
from ._rows import coerce, read_rows

MODELS: dict[str, type[Any]] = {
    "invoices": models.NewInvoice,
    "payments": models.NewPayment,
    "corrections": models.NewCorrection,
}

REPORT_COLUMNS = [
    "row",
    "status",
    "idempotency_key",
    "batch_id",
    "invoice_id",
    "case_id",
    "reason",
]


@attrs.frozen
class SubmitSummary:
    ok: int
    failed: int
    report: Path
    unknown: int = 0


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
    fresh_keys: bool = False,
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
    counts = dict.fromkeys(("succeeded", "failed", "unknown"), 0)
    chunk_key = None if fresh_keys else content_key(f"{organization_id}/{what}")
    with report.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        stream.flush()
        async for result in resource.create_many(
            organization_id,
            _models(source, MODELS[what]),
            chunk_size=chunk_size,
            concurrency=concurrency,
            chunk_key=chunk_key,
        ):
            entry = result.succeeded or result.failed
            writer.writerow(
                {
                    "row": result.index + 1,
                    "status": result.outcome,
                    "idempotency_key": result.idempotency_key or "",
                    "batch_id": result.batch_id or "",
                    "invoice_id": getattr(entry, "invoice_id", None) or "",
                    "case_id": getattr(result.succeeded, "case_id", None) or "",
                    "reason": result.reason or "",
                }
            )
            counts[result.outcome] += 1
            if (result.index + 1) % chunk_size == 0:
                stream.flush()  # a chunk's rows reach the file before the next chunk's
            if counter is not None:
                counter.advance()
    if counter is not None:
        counter.close()
    return SubmitSummary(counts["succeeded"], counts["failed"], report, counts["unknown"])
