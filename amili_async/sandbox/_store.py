"""One organisation's in-memory data and its listings, in (createdAt, id) order so keyset
pages neither repeat nor skip; seeded invoices are filtered on columns, not records."""

from __future__ import annotations

import bisect
import itertools
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator

import attrs

from ._config import OrgConfig
from ._pages import Position
from ._records import BatchRecord, InvoiceRecord, SettlementRecord
from ._seed import STATUS_CODES, TYPE_CODES, SeededInvoices
from ._wire import dumps, now_ms

__all__ = ["CaseFilters", "Clock", "InvoiceFilters", "OrgState", "canonical_uuid"]

# Customer codes of the seeded column are >= 0, so -1 matches no seeded invoice: the code of
# a customer number nobody has.
_NO_CUSTOMER = -1


class Clock:
    """Strictly increasing epoch milliseconds, never earlier than ``floor``: distinct
    createdAt values keep every listing's (createdAt, id) order stable."""

    def __init__(self, floor: int = 0) -> None:
        self._last = floor

    def next_ms(self) -> int:
        """The next timestamp: now, or one past the previous one if the clock stood still."""
        self._last = max(now_ms(), self._last + 1)
        return self._last


def canonical_uuid(value: str) -> str | None:
    """``value`` as a lower-case hyphenated UUID, or None when it is not one."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _key(record: InvoiceRecord | BatchRecord | SettlementRecord) -> Position:
    return record.created_ms, record.id


@attrs.frozen(kw_only=True)
class _ListingFilters:
    """The filters the invoice and case listings share."""

    status: frozenset[str] | None = None
    type: frozenset[str] | None = None
    usid: str | None = None
    customer_number: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


@attrs.frozen(kw_only=True)
class InvoiceFilters(_ListingFilters):
    """Query filters of ``GET /invoices``."""

    invoice_number: str | None = None


@attrs.frozen(kw_only=True)
class CaseFilters(_ListingFilters):
    """Query filters of ``GET /cases``; ``search`` is a case-insensitive substring."""

    case_number: str | None = None
    search: str | None = None


@attrs.frozen
class _NumberField:
    """A listing's own exact-number filter: where a number sits in the seed and a record."""

    seeded_index: Callable[[SeededInvoices, str], int | None]
    of: Callable[[InvoiceRecord], str]


# The invoice listing's InvoiceNumber filter and the case listing's CaseNumber filter.
_INVOICE_NUMBER = _NumberField(
    SeededInvoices.index_of_invoice_number, operator.attrgetter("invoice_number")
)
_CASE_NUMBER = _NumberField(SeededInvoices.index_of_case_number, operator.attrgetter("case_number"))


class OrgState:
    """One organisation's data: lookups, the created-record indexes and the listings."""

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
        """Seeded plus created invoices (one case each)."""
        return (self.seeded.n if self.seeded else 0) + len(self.created)

    def seeded_record(self, i: int, *, for_update: bool) -> InvoiceRecord:
        """Seeded invoice ``i`` as a record; ``for_update`` keeps it in the overlay."""
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
        """The invoice with this id (any UUID spelling), or None."""
        canonical = canonical_uuid(invoice_id)
        hit = self.locate(canonical, None) if canonical else None
        return hit[0] if hit else None

    def find_case(self, case_id: str) -> tuple[InvoiceRecord, int] | None:
        """(record, seeded index or -1) of the case with this id (any UUID spelling)."""
        canonical = canonical_uuid(case_id)
        return self.locate(None, canonical) if canonical else None

    def get_case(self, case_id: str) -> InvoiceRecord | None:
        """The case (its invoice record) with this id, or None."""
        hit = self.find_case(case_id)
        return hit[0] if hit else None

    def for_update_of(
        self, invoice_id: str | None, case_id: str | None
    ) -> tuple[InvoiceRecord, int] | None:
        """Like ``locate``, with a seeded record kept in the overlay for changing."""
        hit = self.locate(invoice_id, case_id)
        if hit is None:
            return None
        record, i = hit
        if i >= 0:
            record = self.seeded_record(i, for_update=True)
        return record, i

    def sync(self, i: int, record: InvoiceRecord) -> None:
        """Write a changed seeded record's status back into the filter columns."""
        if i >= 0 and self.seeded is not None:
            self.seeded.sync(i, record)

    def usid_taken(self, usid: str) -> bool:
        """Whether an invoice of this organisation already has this uniqueSourceInvoiceId."""
        if usid in self.created_usids:
            return True
        return self.seeded is not None and self.seeded.index_of_usid(usid) is not None

    def invoice_json(self, item: int | InvoiceRecord) -> str:
        """Compact JSON of a listing item (seeded index: the fast path)."""
        if isinstance(item, int):
            assert self.seeded is not None
            return self.seeded.invoice_json(item)
        return dumps(item.invoice_dict()).decode()

    # ----------------------------------------------------------------- writes
    def add_invoices(self, records: Iterable[InvoiceRecord]) -> None:
        """Store invoices created with one createdAt, in id order to keep the listing order."""
        for record in sorted(records, key=lambda r: r.id):
            self.created.append(record)
            self.created_by_id[record.id] = record
            self.created_by_case_id[record.case_id] = record
            if record.usid is not None:
                self.created_usids.add(record.usid)

    def add_settlement(self, settlement: SettlementRecord) -> None:
        """Store a settlement; the caller adds them in (createdAt, id) order."""
        self.settlements.append(settlement)
        self.settlements_by_id[settlement.id] = settlement

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
        return self._matching(f, after, _INVOICE_NUMBER, f.invoice_number, None)

    def iter_cases(
        self, f: CaseFilters, after: Position | None
    ) -> Iterator[tuple[Position, InvoiceRecord]]:
        """Matching cases (one per invoice, ``registeredAt`` = the invoice's createdAt)."""
        term = f.search.lower() if f.search else None
        for pos, item in self._matching(f, after, _CASE_NUMBER, f.case_number, term):
            yield (
                pos,
                (self.seeded_record(item, for_update=False) if isinstance(item, int) else item),
            )

    def _matching(
        self,
        f: _ListingFilters,
        after: Position | None,
        field: _NumberField,
        number: str | None,
        term: str | None,
    ) -> Iterator[tuple[Position, int | InvoiceRecord]]:
        """The one filter loop of both listings: the seeded range on its columns, then the
        created invoices; ``number`` is matched in ``field``, ``term`` in the search text.
        A seeded hit that is unchanged and needed no record comes back as its index."""
        seeded = self.seeded
        if seeded is not None:
            rng = self._seeded_range(after, f.from_ms, f.to_ms)
            exact: list[int | None] = []
            if number is not None:
                exact.append(field.seeded_index(seeded, number))
            if f.usid is not None:
                exact.append(seeded.index_of_usid(f.usid))
            rng = _narrowed(rng, exact)
            status = _codes(f.status, STATUS_CODES)
            types = _codes(f.type, TYPE_CODES)
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
                if customer is not None and cu_col[i] != customer:
                    continue
                rec = overlay.get(i)
                if term is not None:
                    if rec is None:
                        rec = seeded.record(i)
                    if term not in rec.search_text():
                        continue
                yield (cr_col[i], seeded.invoice_id(i)), (i if rec is None else rec)
        for rec in self._created_slice(after, f.from_ms, f.to_ms):
            if f.status is not None and rec.status not in f.status:
                continue
            if f.type is not None and rec.type not in f.type:
                continue
            if number is not None and field.of(rec) != number:
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
        """Matching batches after ``after``, oldest first or (``descending``) newest first."""
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
        """Settlements after ``after`` whose settlementDate is in [from_date, to_date)."""
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


def _narrowed(rng: range, exact: list[int | None]) -> range:
    """Narrow a seeded range to the one index every exact-match filter agrees on (if any)."""
    if not exact:
        return rng
    first = exact[0]
    only = first if first is not None and all(x == first for x in exact) else None
    return range(only, only + 1) if only is not None and only in rng else range(0)


def _customer_filter(seeded: SeededInvoices, customer_number: str | None) -> int | None:
    """Customer code to match in the seeded column: None for no filter."""
    if customer_number is None:
        return None
    code = seeded.customer_code(customer_number)
    return _NO_CUSTOMER if code is None else code
