"""The sandbox's in-memory Amili: organisations, invoices/cases, batches, settlements.

Request handlers stay thin; every rule lives here: batch processing (per-item success or
failure), amounts, case transitions, idempotency, listings. One worker task owned by the
app processes QUEUED batches in submission order after ``batch_delay``.

Failure codes in ``Batch.failed[].code`` (inferred): ``DUPLICATE`` (uniqueSourceInvoiceId
already used in the organisation, or twice in one batch), ``INVALID_AMOUNT`` (<= 0),
``INVALID_DATES`` (dueDate before invoiceDate), ``INVOICE_NOT_FOUND``, ``CURRENCY_MISMATCH``,
``INVOICE_CLOSED`` (closed or withdrawn), ``AMOUNT_EXCEEDS_REMAINING``, ``INTERNAL_ERROR``.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from ._config import OrgConfig, SandboxConfig
from ._events import BATCH_COMPLETED, SETTLEMENT_CREATED, EventBus
from ._norway import kid_mod10
from ._pages import Position
from ._records import (
    CASE_SUB_STATUSES,
    INVOICE_STATUSES,
    INVOICE_TYPES,
    BatchRecord,
    InvoiceRecord,
    SettlementRecord,
)
from ._seed import CASE_NUMBER_BASE, SeededInvoices, seed_invoices
from ._wire import ApiError, day_str, dumps, now_ms, parse_datetime_ms

__all__ = [
    "CASE_ACTIONS",
    "CaseFilters",
    "Clock",
    "InvoiceFilters",
    "OrgState",
    "SandboxState",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_ZERO = Decimal("0.00")
_ONE = Decimal("1")
_CREATED_BY_NS = uuid.UUID("0b8f7c1e-52a4-4d0e-9b61-3c2f1e7d9a10")
_STATUS_CODE = {s: k for k, s in enumerate(INVOICE_STATUSES)}
_TYPE_CODE = {s: k for k, s in enumerate(INVOICE_TYPES)}
_SUB_CODE = {s: k for k, s in enumerate(CASE_SUB_STATUSES)}
_TERMINAL = ("CLOSED", "WITHDRAWN")

#: Case action -> (allowed statuses, allowed sub-statuses or None for any, new status,
#: new sub-status or "keep"). DESIGN.md "Case transitions".
_KEEP = "keep"
_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, str | None, str | None]] = {
    "pause": (("OPEN",), None, "PAUSED", _KEEP),
    "resume": (("PAUSED",), None, "OPEN", _KEEP),
    "withdraw": (("OPEN", "PAUSED"), None, "WITHDRAWN", _KEEP),
    "debt-collection-list/accept": (
        ("OPEN", "PAUSED"),
        ("DEBT_COLLECTION_LIST_MANUAL",),
        None,
        "DEBT_COLLECTION",
    ),
    "debt-collection-list/reject": (
        ("OPEN", "PAUSED"),
        ("DEBT_COLLECTION_LIST_MANUAL",),
        None,
        None,
    ),
    "eviction-request/accept": (
        ("OPEN", "PAUSED"),
        ("EVICTION_REQUESTED",),
        None,
        "EVICTION_CONFIRMATION_REQUESTED",
    ),
    "eviction-request/reject": (("OPEN", "PAUSED"), ("EVICTION_REQUESTED",), None, None),
    "eviction-confirmation/accept": (
        ("OPEN", "PAUSED"),
        ("EVICTION_CONFIRMATION_REQUESTED",),
        None,
        "EVICTION_CONFIRMED",
    ),
    "eviction-confirmation/reject": (
        ("OPEN", "PAUSED"),
        ("EVICTION_CONFIRMATION_REQUESTED",),
        None,
        None,
    ),
}
CASE_ACTIONS = tuple(_ACTIONS)


class Clock:
    """Strictly increasing epoch milliseconds, never earlier than ``floor``."""

    def __init__(self, floor: int = 0) -> None:
        self._last = floor

    def next_ms(self) -> int:
        self._last = max(now_ms(), self._last + 1)
        return self._last


def _key(record: InvoiceRecord | BatchRecord | SettlementRecord) -> Position:
    return record.created_ms, record.id


@attrs.frozen
class InvoiceFilters:
    status: frozenset[str] | None = None
    type: frozenset[str] | None = None
    invoice_number: str | None = None
    usid: str | None = None
    customer_number: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


@attrs.frozen
class CaseFilters:
    status: frozenset[str] | None = None
    type: frozenset[str] | None = None
    case_number: str | None = None
    customer_number: str | None = None
    usid: str | None = None
    search: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


class OrgState:
    """One organisation's data."""

    def __init__(self, org: OrgConfig, seeded: SeededInvoices | None) -> None:
        self.org = org
        self.seeded = seeded
        #: Seeded invoices changed through the API (authoritative over the seed).
        self.overlay: dict[int, InvoiceRecord] = {}
        #: Invoices created through the API, in (createdAt, id) order.
        self.created: list[InvoiceRecord] = []
        self.created_by_id: dict[str, InvoiceRecord] = {}
        self.created_by_case_id: dict[str, InvoiceRecord] = {}
        self.created_usids: set[str] = set()
        self.batches: list[BatchRecord] = []
        self.settlements: list[SettlementRecord] = []
        self.settlements_by_id: dict[str, SettlementRecord] = {}

    # ----------------------------------------------------------------- lookups
    @property
    def invoice_count(self) -> int:
        return (self.seeded.n if self.seeded else 0) + len(self.created)

    def seeded_record(self, i: int, *, for_update: bool) -> InvoiceRecord:
        assert self.seeded is not None
        record = self.overlay.get(i)
        if record is None:
            record = self.seeded.record(i)
            if for_update:
                self.overlay[i] = record
        return record

    def locate(
        self, invoice_id: str | None, case_id: str | None
    ) -> tuple[InvoiceRecord, int] | None:
        """(record, seeded index or -1) by invoice id or case id."""
        found = (
            self.created_by_id.get(invoice_id)
            if invoice_id
            else self.created_by_case_id.get(case_id or "")
        )
        if found is not None:
            return found, -1
        if self.seeded is not None:
            i = (
                self.seeded.index_of_invoice_id(invoice_id)
                if invoice_id
                else self.seeded.index_of_case_id(case_id or "")
            )
            if i is not None:
                return self.seeded_record(i, for_update=False), i
        return None

    def get_invoice(self, invoice_id: str) -> InvoiceRecord | None:
        canonical = _canonical_uuid(invoice_id)
        hit = self.locate(canonical, None) if canonical else None
        return hit[0] if hit else None

    def get_case(self, case_id: str) -> InvoiceRecord | None:
        canonical = _canonical_uuid(case_id)
        hit = self.locate(None, canonical) if canonical else None
        return hit[0] if hit else None

    def for_update_of(
        self, invoice_id: str | None, case_id: str | None
    ) -> tuple[InvoiceRecord, int] | None:
        hit = self.locate(invoice_id, case_id)
        if hit is None:
            return None
        record, i = hit
        if i >= 0:
            record = self.seeded_record(i, for_update=True)
        return record, i

    def sync(self, i: int, record: InvoiceRecord) -> None:
        if i >= 0 and self.seeded is not None:
            self.seeded.sync(i, record)

    def usid_taken(self, usid: str) -> bool:
        if usid in self.created_usids:
            return True
        return self.seeded is not None and self.seeded.index_of_usid(usid) is not None

    def invoice_json(self, item: int | InvoiceRecord) -> str:
        """Compact JSON of a listing item (seeded index: the fast path)."""
        if isinstance(item, int):
            assert self.seeded is not None
            return self.seeded.invoice_json(item)
        return dumps(item.invoice_dict()).decode()

    # ----------------------------------------------------------------- listings
    def _seeded_range(
        self, after: Position | None, from_ms: int | None, to_ms: int | None
    ) -> range:
        seeded = self.seeded
        if seeded is None:
            return range(0)
        created = seeded.created
        lo = 0 if from_ms is None else bisect.bisect_left(created, from_ms)
        hi = seeded.n if to_ms is None else bisect.bisect_left(created, to_ms)
        if after is not None:
            j = bisect.bisect_left(created, after[0])
            while j < seeded.n and created[j] == after[0] and seeded.invoice_id(j) <= after[1]:
                j += 1
            lo = max(lo, j)
        return range(lo, max(lo, hi))

    def _created_slice(
        self, after: Position | None, from_ms: int | None, to_ms: int | None
    ) -> Iterator[InvoiceRecord]:
        lst = self.created
        lo = 0 if from_ms is None else bisect.bisect_left(lst, (from_ms, ""), key=_key)
        hi = len(lst) if to_ms is None else bisect.bisect_left(lst, (to_ms, ""), key=_key)
        if after is not None:
            lo = max(lo, bisect.bisect_right(lst, after, key=_key))
        return itertools.islice(lst, lo, max(lo, hi))

    def iter_invoices(
        self, f: InvoiceFilters, after: Position | None
    ) -> Iterator[tuple[Position, int | InvoiceRecord]]:
        """Matching invoices in (createdAt, id) order after ``after``: a seeded index (not
        changed, render it with the fast path) or a record."""
        seeded = self.seeded
        if seeded is not None:
            rng = self._seeded_range(after, f.from_ms, f.to_ms)
            exact: list[int | None] = []
            if f.invoice_number is not None:
                exact.append(seeded.index_of_invoice_number(f.invoice_number))
            if f.usid is not None:
                exact.append(seeded.index_of_usid(f.usid))
            rng = _narrowed(rng, exact)
            status = _codes(f.status, _STATUS_CODE)
            types = _codes(f.type, _TYPE_CODE)
            customer = _customer_filter(seeded, f.customer_number)
            st_col, ty_col, cu_col, cr_col = (
                seeded.status,
                seeded.type,
                seeded.customer,
                seeded.created,
            )
            overlay = self.overlay
            for i in rng:
                if status is not None and st_col[i] not in status:
                    continue
                if types is not None and ty_col[i] not in types:
                    continue
                if customer != -1 and cu_col[i] != customer:
                    continue
                rec = overlay.get(i)
                yield (cr_col[i], seeded.invoice_id(i)), (i if rec is None else rec)
        for rec in self._created_slice(after, f.from_ms, f.to_ms):
            if f.status is not None and rec.status not in f.status:
                continue
            if f.type is not None and rec.type not in f.type:
                continue
            if f.invoice_number is not None and rec.invoice_number != f.invoice_number:
                continue
            if f.usid is not None and rec.usid != f.usid:
                continue
            if f.customer_number is not None and not _has_customer(rec, f.customer_number):
                continue
            yield _key(rec), rec

    def iter_cases(
        self, f: CaseFilters, after: Position | None
    ) -> Iterator[tuple[Position, InvoiceRecord]]:
        """Matching cases (one per invoice, ``registeredAt`` = the invoice's createdAt)."""
        term = f.search.lower() if f.search else None
        seeded = self.seeded
        if seeded is not None:
            rng = self._seeded_range(after, f.from_ms, f.to_ms)
            exact: list[int | None] = []
            if f.case_number is not None:
                exact.append(seeded.index_of_case_number(f.case_number))
            if f.usid is not None:
                exact.append(seeded.index_of_usid(f.usid))
            rng = _narrowed(rng, exact)
            status = _codes(f.status, _STATUS_CODE)
            types = _codes(f.type, _TYPE_CODE)
            customer = _customer_filter(seeded, f.customer_number)
            for i in rng:
                if status is not None and seeded.status[i] not in status:
                    continue
                if types is not None and seeded.type[i] not in types:
                    continue
                if customer != -1 and seeded.customer[i] != customer:
                    continue
                rec = self.seeded_record(i, for_update=False)
                if term is not None and term not in rec.search_text():
                    continue
                yield (seeded.created[i], seeded.invoice_id(i)), rec
        for rec in self._created_slice(after, f.from_ms, f.to_ms):
            if f.status is not None and rec.status not in f.status:
                continue
            if f.type is not None and rec.type not in f.type:
                continue
            if f.case_number is not None and rec.case_number != f.case_number:
                continue
            if f.usid is not None and rec.usid != f.usid:
                continue
            if f.customer_number is not None and not _has_customer(rec, f.customer_number):
                continue
            if term is not None and term not in rec.search_text():
                continue
            yield _key(rec), rec

    def iter_batches(
        self,
        *,
        states: frozenset[str] | None,
        types: frozenset[str] | None,
        subject_id: str | None,
        idempotency_key: str | None,
        descending: bool,
        after: Position | None,
    ) -> Iterator[tuple[Position, BatchRecord]]:
        lst = self.batches
        if descending:
            hi = len(lst) if after is None else bisect.bisect_left(lst, after, key=_key)
            candidates: Iterator[BatchRecord] = (lst[k] for k in range(hi - 1, -1, -1))
        else:
            lo = 0 if after is None else bisect.bisect_right(lst, after, key=_key)
            candidates = itertools.islice(lst, lo, None)
        for b in candidates:
            if states is not None and b.status not in states:
                continue
            if types is not None and b.type not in types:
                continue
            if subject_id is not None and b.subject_id != subject_id:
                continue
            if idempotency_key is not None and b.idempotency_key != idempotency_key:
                continue
            yield _key(b), b

    def iter_settlements(
        self, from_date: str | None, to_date: str | None, after: Position | None
    ) -> Iterator[tuple[Position, SettlementRecord]]:
        lst = self.settlements
        lo = 0 if after is None else bisect.bisect_right(lst, after, key=_key)
        for s in itertools.islice(lst, lo, None):
            if from_date is not None and s.settlement_date < from_date:
                continue
            if to_date is not None and s.settlement_date >= to_date:
                continue
            yield _key(s), s


def _codes(values: frozenset[str] | None, table: dict[str, int]) -> frozenset[int] | None:
    return None if values is None else frozenset(table[v] for v in values if v in table)


def _has_customer(rec: InvoiceRecord, customer_number: str) -> bool:
    return any(d.get("customerNumber") == customer_number for d in rec.debtors)


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _fingerprint(items: Any) -> str:
    return hashlib.sha256(dumps(items)).hexdigest()


def _money_sum(*values: Decimal) -> Decimal:
    return sum(values, _ZERO).quantize(Decimal("0.01"))


class SandboxState:
    """All organisations plus the batch worker, events and legacy stores."""

    def __init__(self, config: SandboxConfig, events: EventBus | None = None) -> None:
        if not config.orgs:
            raise ValueError("SandboxConfig.orgs must name at least one organisation")
        self.config = config
        self.events = events or EventBus()
        self.orgs: dict[str, OrgState] = {}
        seeded = seed_invoices(config.invoices, config.seed, config.orgs[0])
        floor = seeded.created[-1] if seeded.n else 0
        for k, org in enumerate(config.orgs):
            self.orgs[org.id] = OrgState(org, seeded if k == 0 else None)
        self.clock = Clock(floor)
        self.batches_by_id: dict[str, BatchRecord] = {}
        self._next_case_number = CASE_NUMBER_BASE + seeded.n
        self._queue: asyncio.Queue[BatchRecord] = asyncio.Queue()
        self.legacy_batches: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[str, Any]] = {}
        #: (scope, operation, IdempotencyKey) -> (request fingerprint, result) of every POST.
        self.idempotent_results: dict[tuple[str, str, str], tuple[str, Any]] = {}

    @property
    def default_org(self) -> OrgState:
        return next(iter(self.orgs.values()))

    # ------------------------------------------------------------------ writes
    def submit_batch(
        self,
        org: OrgState,
        batch_type: str,
        client_id: str,
        idempotency_key: str | None,
        items: list[dict[str, Any]],
        batch_url_base: str,
    ) -> bytes:
        """Queue a write batch; answer the 202 body. Synchronous, so two identical
        requests cannot race between the idempotency check and the store.

        Idempotency follows Stripe (see ``run_idempotent``): a repeat with the same
        ``IdempotencyKey`` (per organisation and operation) gets the original response and
        creates nothing; the same key with a different body is a 409 Conflict.
        """
        return self.run_idempotent(
            org.org.id,
            batch_type,
            idempotency_key,
            items,
            lambda: self._queue_batch(
                org, batch_type, client_id, idempotency_key, items, batch_url_base
            ),
        )

    def _queue_batch(
        self,
        org: OrgState,
        batch_type: str,
        client_id: str,
        idempotency_key: str | None,
        items: list[dict[str, Any]],
        batch_url_base: str,
    ) -> bytes:
        batch = BatchRecord(
            id=str(uuid.uuid4()),
            org_id=org.org.id,
            type=batch_type,
            created_ms=self.clock.next_ms(),
            created_by=str(uuid.uuid5(_CREATED_BY_NS, client_id)),
            idempotency_key=idempotency_key,
            subject_id=_subject_of(batch_type, items),
            items=items,
        )
        org.batches.append(batch)
        self.batches_by_id[batch.id] = batch
        loop = asyncio.get_running_loop()
        batch.due = loop.time() + max(0.0, self.config.batch_delay)
        self._queue.put_nowait(batch)
        return dumps(
            {
                "summary": {"status": "SUCCESS"},
                "data": {"batchId": batch.id, "batchUrl": f"{batch_url_base}/{batch.id}"},
            }
        )

    def run_idempotent(
        self, scope: str, operation: str, key: str | None, request: Any, run: Callable[[], _T]
    ) -> _T:
        """Run ``run`` at most once per ``IdempotencyKey`` (DESIGN.md: every POST, Stripe's rule).

        A repeat with the same key (per scope, e.g. the organisation, and operation) and the
        same ``request`` gets the first result again and changes nothing, so a client retrying
        a case action whose answer was lost does not meet a 409 for its own first attempt;
        the same key with another request is a 409. Failed attempts are not remembered.
        """
        if key is None:
            return run()
        fingerprint = _fingerprint(request)
        slot = (scope, operation, key)
        seen = self.idempotent_results.get(slot)
        if seen is not None:
            if seen[0] != fingerprint:
                raise ApiError(
                    409,
                    "This IdempotencyKey was already used with a different request body.",
                    title="Idempotency key reuse",
                )
            result: _T = seen[1]
            return result
        result = run()
        self.idempotent_results[slot] = (fingerprint, result)
        return result

    async def run_worker(self) -> None:
        """Process queued batches in order, each no earlier than its due time."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._queue.get()
            # sleep(0) when due: processing never happens inside the submitting request.
            await asyncio.sleep(max(0.0, batch.due - loop.time()))
            try:
                self.process_batch(batch)
            except Exception:
                _log.exception("sandbox batch %s failed", batch.id)
                self._finish_internal_error(batch)

    def process_batch(self, batch: BatchRecord) -> None:
        if batch.status != "QUEUED":
            return
        org = self.orgs[batch.org_id]
        when = self.clock.next_ms()
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
        self.events.publish(
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
        self._finish(batch, self.clock.next_ms())

    def _process_invoices(self, org: OrgState, batch: BatchRecord, when: int) -> None:
        new: list[InvoiceRecord] = []
        in_batch: set[str] = set()
        for k, item in enumerate(batch.items):
            usid = item["uniqueSourceInvoiceId"]
            failure = None
            if item["originalInvoiceAmount"] <= 0:
                failure = ("INVALID_AMOUNT", "originalInvoiceAmount must be greater than 0.")
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
        # Same createdAt for the whole batch, so keep (createdAt, id) order by id.
        for record in sorted(new, key=lambda r: r.id):
            org.created.append(record)
            org.created_by_id[record.id] = record
            org.created_by_case_id[record.case_id] = record
            if record.usid is not None:
                org.created_usids.add(record.usid)

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
            elif record.status in _TERMINAL:
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
                record.paid = _money_sum(record.paid, amount)
            else:
                record.credited = _money_sum(record.credited, amount)
            if record.remaining == 0:
                record.status = "CLOSED"
                record.closed_ms = when
            org.sync(hit[1], record)
            entry = {
                "index": k,
                "invoiceId": record.id,
                "invoiceNumber": record.invoice_number,
                "caseId": record.case_id,
                "uniqueSourceInvoiceId": record.usid,
            }
            if payment:
                entry["paymentId"] = str(uuid.uuid4())
                settlements.append(
                    SettlementRecord(
                        id=str(uuid.uuid4()),
                        org_id=org.org.id,
                        created_ms=when,
                        invoice_id=record.id,
                        invoice_number=record.invoice_number,
                        case_number=record.case_number,
                        collection_type=(
                            "DEBT_COLLECTION"
                            if record.sub_status == "DEBT_COLLECTION"
                            else "REMINDER"
                        ),
                        currency=record.currency,
                        customer_reference=record.customer_number,
                        exchange_rate=_ONE,
                        settlement_date=item["paymentDate"] or day_str(when // 86_400_000),
                        amount=amount,
                    )
                )
            else:
                entry["correctionId"] = str(uuid.uuid4())
            batch.succeeded.append(entry)
        self._add_settlements(org, settlements)

    def _add_settlements(self, org: OrgState, settlements: list[SettlementRecord]) -> None:
        # One createdAt per batch: append in id order to keep the listing order.
        for s in sorted(settlements, key=lambda s: s.id):
            org.settlements.append(s)
            org.settlements_by_id[s.id] = s
            # The one place SETTLEMENT_CREATED is published.
            self.events.publish(
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

    # ------------------------------------------------------------------ cases
    def case_action(self, org: OrgState, case_ids: list[str], action: str) -> None:
        """Apply ``action`` to all of ``case_ids`` or to none (404 unknown, 409 illegal)."""
        statuses, subs, new_status, new_sub = _ACTIONS[action]
        targets: list[tuple[InvoiceRecord, int]] = []
        for case_id in case_ids:
            canonical = _canonical_uuid(case_id)
            hit = org.locate(None, canonical) if canonical else None
            if hit is None:
                raise ApiError(404, f"Case {case_id} was not found.")
            record = hit[0]
            if record.status not in statuses or (
                subs is not None and record.sub_status not in subs
            ):
                raise ApiError(
                    409,
                    f"Cannot {action.replace('/', ' ')} case {case_id}: status {record.status}, "
                    f"subStatus {record.sub_status}.",
                    title="Illegal case transition",
                )
            targets.append(hit)
        when = self.clock.next_ms() if new_status in _TERMINAL else None
        for found, i in targets:
            record = org.seeded_record(i, for_update=True) if i >= 0 else found
            if new_status is not None:
                record.status = new_status
                if when is not None:
                    record.closed_ms = when
            if new_sub != _KEEP:
                record.sub_status = new_sub
            org.sync(i, record)

    # ------------------------------------------------------------------ legacy
    def legacy_batch(
        self,
        accessible: list[OrgState],
        *,
        creditor_id: str | None,
        customer_ref: str | None,
        include_closed: bool,
        last_settlement_id: str | None,
    ) -> dict[str, Any]:
        orgs = [
            o
            for o in accessible
            if creditor_id is None
            or creditor_id in (o.org.id, o.org.organization_number, o.org.creditor_number)
        ]
        limit = self.config.legacy_batch_limit
        cases: list[dict[str, Any]] = []
        settlements: list[dict[str, Any]] = []
        creditors = []
        for o in orgs:
            creditors.append(_legacy_creditor(o))
            filters = CaseFilters(
                status=None if include_closed else frozenset(("OPEN", "PAUSED")),
                customer_number=customer_ref,
            )
            for _, rec in o.iter_cases(filters, None):
                if len(cases) >= limit:
                    break
                cases.append(rec.case_dict())
            start = 0
            if last_settlement_id is not None:
                for k, s in enumerate(o.settlements):
                    if s.id == last_settlement_id:
                        start = k + 1
                        break
            settlements.extend(s.to_dict() for s in o.settlements[start:])
        return {
            "batchid": str(uuid.uuid4()),
            "offline": False,
            "creditor": creditors,
            "case": cases,
            "settlement": settlements,
        }

    def store_legacy_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = dict(body)
        stored["batchid"] = str(uuid.uuid4())
        stored.setdefault("offline", False)
        for key in ("creditor", "case", "settlement"):
            stored.setdefault(key, [])
        self.legacy_batches[stored["batchid"]] = stored
        return stored

    def store_attachment(
        self, filename: str | None, content_type: str | None, data: bytes, case_id: str | None
    ) -> str:
        attachment_id = str(uuid.uuid4())
        self.attachments[attachment_id] = {
            "attachmentid": attachment_id,
            "filename": filename,
            "contentType": content_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "caseid": case_id,
        }
        return attachment_id

    def find_case_any(self, orgs: list[OrgState], case_id: str) -> InvoiceRecord | None:
        for o in orgs:
            rec = o.get_case(case_id)
            if rec is not None:
                return rec
        return None


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


def _legacy_creditor(o: OrgState) -> dict[str, Any]:
    contact = {
        "fullname": "Kari Nordmann",
        "workphone": "+4722000000",
        "email": "regnskap@kreditor.example",
        "isinvoicequery": True,
        "isremittancereport": True,
        "isorderconfirmation": False,
        "iscollectionlist": True,
        "isweb": True,
    }
    return {
        "idnumber": o.org.organization_number,
        "parentidnumber": None,
        "onlydebtcollection": False,
        "vattype": 0,
        "fullname": o.org.name,
        "street": "Storgata 1",
        "city": "Oslo",
        "zipcode": "0155",
        "countrycode": "NO",
        "bankaccountno": "12345678903",
        "contact": contact,
        "casehandler": dict(contact, fullname="Ola Nordmann"),
        "sourceid": 0,
        "reminderflow": 0,
        "debtcollectiontransfer": 0,
        "invoicearchive": 0,
        "hasforeigndebtors": False,
        "hasforeigncurrency": False,
        "disabled": False,
        "lastsettlementid": o.settlements[-1].id if o.settlements else None,
    }


def _narrowed(rng: range, exact: list[int | None]) -> range:
    """Narrow a seeded range to the one index every exact-match filter agrees on (if any)."""
    if not exact:
        return rng
    first = exact[0]
    only = first if first is not None and all(x == first for x in exact) else None
    return range(only, only + 1) if only is not None and only in rng else range(0)


def _customer_filter(seeded: SeededInvoices, customer_number: str | None) -> int:
    """Customer code to match in the seeded column: -1 no filter, -2 a number nobody has."""
    if customer_number is None:
        return -1
    code = seeded.customer_code(customer_number)
    return -2 if code is None else code
