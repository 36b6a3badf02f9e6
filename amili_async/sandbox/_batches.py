"""Write batches: the queue, the one worker and their processing, where each invoice, payment
or correction item succeeds or fails on its own and a successful payment makes a settlement."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from decimal import Decimal
from typing import Any

from ._config import SandboxConfig
from ._events import BATCH_COMPLETED, CASE, CASE_UPDATED, SETTLEMENT_CREATED, EventBus, case_data
from ._norway import kid_mod10
from ._records import TERMINAL_STATUSES, BatchRecord, InvoiceRecord, SettlementRecord
from ._store import Clock, OrgState
from ._wire import DAY_MS, day_str, dumps, parse_datetime_ms

__all__ = ["BatchQueue"]

# Failure codes in ``Batch.failed[].code`` (inferred): DUPLICATE (uniqueSourceInvoiceId
# already used in the organisation, or twice in one batch), INVALID_AMOUNT (<= 0),
# INVALID_DATES (dueDate before invoiceDate), INVOICE_NOT_FOUND, CURRENCY_MISMATCH,
# INVOICE_CLOSED (closed or withdrawn), AMOUNT_EXCEEDS_REMAINING, INVALID_CURRENCY (not an
# ISO 4217 code), INTERNAL_ERROR.

_log = logging.getLogger(__name__)
# Amounts are kept to the cent (øre), as the wire shows them.
_CENT = Decimal("0.01")
# An ISO 4217 currency code (three capital letters).
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# A new invoice starts with nothing paid or credited.
_ZERO = Decimal("0.00")
# Every sandbox settlement is in the invoice's own currency: no conversion.
_ONE = Decimal("1")
# Namespace of createdBy: a stable uuid per API client id, as the docs' examples show a uuid.
_CREATED_BY_NS = uuid.UUID("0b8f7c1e-52a4-4d0e-9b61-3c2f1e7d9a10")


class BatchQueue:
    """QUEUED batches of every organisation, processed in submission order by one worker
    task (owned by the app), each no earlier than ``batch_delay`` after its submission."""

    def __init__(
        self,
        config: SandboxConfig,
        orgs: dict[str, OrgState],
        clock: Clock,
        events: EventBus,
        next_case_number: int,
    ) -> None:
        self._config = config
        self._orgs = orgs
        self._clock = clock
        self._events = events
        self._next_case_number = next_case_number
        self._queue: asyncio.Queue[BatchRecord] = asyncio.Queue()
        self.by_id: dict[str, BatchRecord] = {}
        # Cleared by hold(): the worker leaves due batches QUEUED until release(), so a test
        # sees QUEUED without racing the batch delay.
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        """Keep every batch not yet processed QUEUED until :meth:`release` (a test's knob)."""
        self._open.clear()

    def release(self) -> None:
        """Process held batches again (each still no earlier than its due time)."""
        self._open.set()

    def submit(
        self,
        org: OrgState,
        batch_type: str,
        client_id: str,
        idempotency_key: str | None,
        items: list[dict[str, Any]],
        batch_url_base: str,
    ) -> bytes:
        """Store a QUEUED batch and queue it for the worker; answer the 202 body."""
        batch = BatchRecord(
            id=str(uuid.uuid4()),
            org_id=org.org.id,
            type=batch_type,
            created_ms=self._clock.next_ms(),
            created_by=str(uuid.uuid5(_CREATED_BY_NS, client_id)),
            idempotency_key=idempotency_key,
            subject_id=_subject_of(batch_type, items),
            items=items,
        )
        org.batches.append(batch)
        self.by_id[batch.id] = batch
        loop = asyncio.get_running_loop()
        batch.due = loop.time() + max(0.0, self._config.batch_delay)
        self._queue.put_nowait(batch)
        return dumps(
            {
                "summary": {"status": "SUCCESS"},
                "data": {"batchId": batch.id, "batchUrl": f"{batch_url_base}/{batch.id}"},
            }
        )

    async def run_worker(self) -> None:
        """Process queued batches in order, each no earlier than its due time."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._queue.get()
            # sleep(0) when due: processing never happens inside the submitting request.
            await asyncio.sleep(max(0.0, batch.due - loop.time()))
            await self._open.wait()
            try:
                self.process(batch)
            except Exception:
                _log.exception("sandbox batch %s failed", batch.id)
                self._finish_internal_error(batch)

    def process(self, batch: BatchRecord) -> None:
        """Process a QUEUED batch now (anything else is left alone) and publish the outcome."""
        if batch.status != "QUEUED":
            return
        org = self._orgs[batch.org_id]
        when = self._clock.next_ms()
        if batch.type == "INVOICE":
            self._process_invoices(org, batch, when)
        elif batch.type == "PAYMENT":
            self._process_amounts(org, batch, when, payment=True)
        else:
            self._process_amounts(org, batch, when, payment=False)
        self._finish(batch, when)

    def _finish(self, batch: BatchRecord, when: int) -> None:
        batch.items = []
        if not batch.failed:
            batch.status = "SUCCESS"
        elif not batch.succeeded:
            batch.status = "FAILED"
        else:
            batch.status = "PARTIAL"
        batch.finished_ms = when
        # The one place BATCH_COMPLETED is published.
        self._events.publish(
            BATCH_COMPLETED,
            {"batchId": batch.id, "organizationId": batch.org_id, "status": batch.status},
        )

    def _finish_internal_error(self, batch: BatchRecord) -> None:
        if batch.status != "QUEUED":
            return
        done = {e["index"] for e in batch.succeeded} | {e["index"] for e in batch.failed}
        for k in range(len(batch.items)):
            if k not in done:
                batch.failed.append(_failure(k, None, "INTERNAL_ERROR", "Internal error."))
        self._finish(batch, self._clock.next_ms())

    def _process_invoices(self, org: OrgState, batch: BatchRecord, when: int) -> None:
        new: list[InvoiceRecord] = []
        in_batch: set[str] = set()
        for k, item in enumerate(batch.items):
            usid = item["uniqueSourceInvoiceId"]
            failure = None
            if item["originalInvoiceAmount"] <= 0:
                failure = ("INVALID_AMOUNT", "originalInvoiceAmount must be greater than 0.")
            elif not _CURRENCY.match(item["currency"]):
                failure = ("INVALID_CURRENCY", "currency must be an ISO 4217 code such as NOK.")
            elif parse_datetime_ms(item["dueDate"]) < parse_datetime_ms(item["invoiceDate"]):
                failure = ("INVALID_DATES", "dueDate is before invoiceDate.")
            elif usid is not None and (usid in in_batch or org.usid_taken(usid)):
                failure = (
                    "DUPLICATE",
                    f"uniqueSourceInvoiceId '{usid}' already exists in this organization.",
                )
            if failure is not None:
                batch.failed.append(
                    {
                        "index": k,
                        "invoiceId": None,
                        "invoiceNumber": item["invoiceNumber"],
                        "uniqueSourceInvoiceId": usid,
                        "code": failure[0],
                        "reason": failure[1],
                    }
                )
                continue
            if usid is not None:
                in_batch.add(usid)
            record = self._new_invoice(org, batch, item, when)
            new.append(record)
            batch.succeeded.append(
                {
                    "index": k,
                    "invoiceId": record.id,
                    "invoiceNumber": record.invoice_number,
                    "caseId": record.case_id,
                    "uniqueSourceInvoiceId": usid,
                }
            )
        org.add_invoices(new)
        if self._events.wants(CASE):
            for record in new:
                # The one place CASE is published: every new invoice opens its case.
                self._events.publish(CASE, case_data(record))

    def _new_invoice(
        self, org: OrgState, batch: BatchRecord, item: dict[str, Any], when: int
    ) -> InvoiceRecord:
        case_number = self._next_case_number
        self._next_case_number += 1
        debtors = item["debtors"]
        customer = next((d["customerNumber"] for d in debtors if d.get("customerNumber")), None)
        ocr = item["ocrReferenceNumber"]
        if ocr is None:
            digits = "".join(c for c in (customer or "") if c.isdigit())[-7:]
            ocr = kid_mod10(f"{digits or '0'}{case_number:07d}")
        return InvoiceRecord(
            id=str(uuid.uuid4()),
            org=org.org,
            invoice_number=item["invoiceNumber"],
            case_number=str(case_number),
            type=item["type"],
            status="OPEN",
            created_ms=when,
            closed_ms=None,
            original=item["originalInvoiceAmount"],
            paid=_ZERO,
            credited=_ZERO,
            currency=item["currency"],
            invoice_date=item["invoiceDate"],
            due_date=item["dueDate"],
            ocr=ocr,
            usid=item["uniqueSourceInvoiceId"],
            debtors=debtors,
            case_id=str(uuid.uuid4()),
            sub_status=None,
            description=item["description"],
            case_token=secrets.token_hex(8),
            batch_id=batch.id,
        )

    def _process_amounts(
        self, org: OrgState, batch: BatchRecord, when: int, *, payment: bool
    ) -> None:
        settlements: list[SettlementRecord] = []
        for k, item in enumerate(batch.items):
            amount: Decimal = item["amount"]
            hit = org.for_update_of(item["invoiceId"], None)
            record = hit[0] if hit else None
            code = reason = None
            if amount <= 0:
                code, reason = "INVALID_AMOUNT", "amount must be greater than 0."
            elif record is None:
                code, reason = "INVOICE_NOT_FOUND", f"No invoice {item['invoiceId']}."
            elif record.status in TERMINAL_STATUSES:
                code, reason = "INVOICE_CLOSED", f"The invoice is {record.status}."
            elif item["currency"] != record.currency:
                code = "CURRENCY_MISMATCH"
                reason = f"The invoice is in {record.currency}, not {item['currency']}."
            elif amount > record.remaining:
                code = "AMOUNT_EXCEEDS_REMAINING"
                reason = f"amount {amount} exceeds the remaining amount {record.remaining}."
            if code is not None:
                batch.failed.append(_failure(k, record, code, reason or code, item["invoiceId"]))
                continue
            assert hit is not None
            assert record is not None
            if payment:
                record.paid = (record.paid + amount).quantize(_CENT)
            else:
                record.credited = (record.credited + amount).quantize(_CENT)
            fields = ["amounts"]
            if record.remaining == 0:
                record.status = "CLOSED"
                record.closed_ms = when
                fields.append("status")
            org.sync(hit[1], record)
            if self._events.wants(CASE_UPDATED):
                self._events.publish(CASE_UPDATED, case_data(record, fields))
            entry = {
                "index": k,
                "invoiceId": record.id,
                "invoiceNumber": record.invoice_number,
                "caseId": record.case_id,
                "uniqueSourceInvoiceId": record.usid,
            }
            if payment:
                entry["paymentId"] = str(uuid.uuid4())
                settlements.append(_settlement(org, record, item, amount, when))
            else:
                entry["correctionId"] = str(uuid.uuid4())
            batch.succeeded.append(entry)
        self._add_settlements(org, settlements)

    def _add_settlements(self, org: OrgState, settlements: list[SettlementRecord]) -> None:
        # One createdAt per batch: append in id order to keep the listing order.
        for s in sorted(settlements, key=lambda s: s.id):
            org.add_settlement(s)
            # The one place SETTLEMENT_CREATED is published.
            self._events.publish(
                SETTLEMENT_CREATED,
                {
                    "settlementId": s.id,
                    "organizationId": s.org_id,
                    "settlementDate": s.settlement_date,
                    "invoiceId": s.invoice_id,
                    "invoiceNumber": s.invoice_number,
                    "caseNumber": s.case_number,
                },
            )


def _settlement(
    org: OrgState, record: InvoiceRecord, item: dict[str, Any], amount: Decimal, when: int
) -> SettlementRecord:
    """The settlement of a successful payment ``item`` of ``amount`` on ``record``."""
    return SettlementRecord(
        id=str(uuid.uuid4()),
        org_id=org.org.id,
        created_ms=when,
        invoice_id=record.id,
        invoice_number=record.invoice_number,
        case_number=record.case_number,
        collection_type=(
            "DEBT_COLLECTION" if record.sub_status == "DEBT_COLLECTION" else "REMINDER"
        ),
        currency=record.currency,
        customer_reference=record.customer_number,
        exchange_rate=_ONE,
        settlement_date=item["paymentDate"] or day_str(when // DAY_MS),
        amount=amount,
    )


def _subject_of(batch_type: str, items: list[dict[str, Any]]) -> str | None:
    """Inferred: a payment/correction batch about exactly one invoice has it as subject."""
    if batch_type == "INVOICE":
        return None
    ids = {item["invoiceId"] for item in items}
    return next(iter(ids)) if len(ids) == 1 else None


def _failure(
    k: int, record: InvoiceRecord | None, code: str, reason: str, invoice_id: str | None = None
) -> dict[str, Any]:
    return {
        "index": k,
        "invoiceId": record.id if record else invoice_id,
        "invoiceNumber": record.invoice_number if record else None,
        "uniqueSourceInvoiceId": record.usid if record else None,
        "code": code,
        "reason": reason,
    }
