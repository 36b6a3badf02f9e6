"""Deterministic seeded invoices (and their cases), columnar and materialised on demand.

A seeded invoice is a pure function of (seed, index): per index we keep a 64-bit hash and a
few compact columns (createdAt, status, type, case sub-status, customer) for filtering; the
full record is built only when a page or a lookup needs it. Ids are a keyed, invertible
permutation of the index, so id -> index needs no dictionary. 1,000,000 invoices cost about
30 MB and a second or two.
"""

from __future__ import annotations

import array
import hashlib
import random
from decimal import Decimal
from typing import Any

from ._config import DEFAULT_ORGS, OrgConfig
from ._norway import (
    CITIES,
    COMPANY_SUFFIXES,
    DESCRIPTIONS,
    FEMALE_NAMES,
    LAST_NAMES,
    MALE_NAMES,
    MONTHS,
    STREETS,
    fake_national_id,
    kid_mod10,
    org_number,
)
from ._records import CASE_SUB_STATUSES, INVOICE_STATUSES, INVOICE_TYPES, InvoiceRecord
from ._wire import DAY_MS, day_str, dumps, fmt_ms

__all__ = [
    "CASE_NUMBER_BASE",
    "STATUS_CODES",
    "TYPE_CODES",
    "SeededInvoices",
    "org_seed",
    "seed_invoices",
]

# Masks of the 64-bit hashes and of the 48-bit id permutation (12 hex digits of a uuid).
_M64 = (1 << 64) - 1
_M48 = (1 << 48) - 1
_PERM_A = 0x5DEECE66D  # odd, hence invertible modulo 2**48
# Its inverse turns an id back into its index.
_PERM_A_INV = pow(_PERM_A, -1, 1 << 48)

#: Seeded createdAt: from 2024-01-02T07:00:00Z, one invoice every STEP_MS (with jitter);
#: 30 s apart puts 1M invoices within a year, as a busy creditor's would be.
SEED_START_MS = 1_704_178_800_000
STEP_MS = 30_000
#: Case numbers start here (the docs' webhook example shows "5000001").
CASE_NUMBER_BASE = 5_000_001

#: Codes of the status, type and sub-status columns: positions in the spec's enum tuples,
#: one byte per invoice.
STATUS_CODES = {s: k for k, s in enumerate(INVOICE_STATUSES)}
TYPE_CODES = {s: k for k, s in enumerate(INVOICE_TYPES)}
_SUB_CODE = {s: k for k, s in enumerate(CASE_SUB_STATUSES)}
# The terminal statuses' codes: these invoices are paid up or withdrawn, with a closedAt.
_CLOSED = STATUS_CODES["CLOSED"]
_WITHDRAWN = STATUS_CODES["WITHDRAWN"]
# Every 20th case has one of these sub-statuses (and is OPEN), so every case action has
# a seeded target: indices 3, 7, 11, 15 (mod 20).
_SUB_BY_MOD20 = {
    3: _SUB_CODE["DEBT_COLLECTION_LIST_MANUAL"],
    7: _SUB_CODE["EVICTION_REQUESTED"],
    11: _SUB_CODE["EVICTION_CONFIRMATION_REQUESTED"],
    15: _SUB_CODE["DEBT_COLLECTION"],
}
_DUE_DAYS = (10, 14, 14, 20, 30)
_MIDNIGHT = "T00:00:00.000Z"


def _mix(x: int) -> int:
    """splitmix64 finaliser."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _ascii(s: str) -> str:
    return (
        s.lower()
        .replace("æ", "ae")
        .replace("ø", "o")
        .replace("å", "a")
        .replace(" ", "")
        .replace("é", "e")
    )


class _IdSpace:
    """uuid-shaped ids that encode an index in [0, n) with a keyed 48-bit permutation."""

    __slots__ = ("_key", "_prefix")

    def __init__(self, seed: int, kind: str) -> None:
        digest = hashlib.sha256(f"amili-sandbox/{seed}/{kind}".encode()).digest()
        self._key = int.from_bytes(digest[:6], "big")
        a, b, c, d = digest[6:10].hex(), digest[10:12].hex(), digest[12:14].hex(), digest[14]
        self._prefix = f"{a}-{b}-4{c[1:]}-{'89ab'[d & 3]}{digest[15:17].hex()[1:]}-"

    def make(self, index: int) -> str:
        return f"{self._prefix}{((index * _PERM_A) & _M48) ^ self._key:012x}"

    def index(self, ident: str) -> int | None:
        if len(ident) != 36 or not ident.startswith(self._prefix):
            return None
        try:
            v = int(ident[24:], 16)
        except ValueError:
            return None
        return ((v ^ self._key) * _PERM_A_INV) & _M48


class SeededInvoices:
    """``n`` seeded invoices of one organisation: columns plus on-demand records."""

    def __init__(
        self, n: int, seed: int, org: OrgConfig, case_base: int = CASE_NUMBER_BASE
    ) -> None:
        if n < 0:
            raise ValueError("invoice count must be >= 0")
        self.n = n
        self.seed = seed
        self.org = org
        #: collectionCaseNumber of invoice 0: each seeded organisation has its own range.
        self.case_base = case_base
        self._cust_key = _mix(seed * 0x2545F4914F6CDD1D + 7)
        # About eight invoices per customer (think monthly rent): realistic, and the
        # per-customer debtor JSON cache then serves most of a listing.
        self.n_customers = max(1, n // 8)
        self._ids = _IdSpace(seed, "invoice")
        self._case_ids = _IdSpace(seed, "case")
        rng = random.Random(seed)
        hashes = array.array("Q")
        hashes.frombytes(rng.randbytes(8 * n))
        self.hashes = hashes
        start, step = SEED_START_MS, STEP_MS
        self.created = array.array(
            "q", [start + i * step + (h & 0xFFFFF) % step for i, h in enumerate(hashes)]
        )
        status_table = bytes(
            0 if r < 820 else 2 if r < 943 else 1 if r < 994 else 3 for r in range(1024)
        )
        type_table = bytes(0 if r < 600 else 1 if r < 850 else 2 for r in range(1024))
        status = bytearray(status_table[(h >> 20) & 1023] for h in hashes)
        sub = bytearray(n)
        for mod, code in _SUB_BY_MOD20.items():
            sub[mod::20] = bytes([code]) * len(range(mod, n, 20))
            status[mod::20] = bytes(len(range(mod, n, 20)))  # OPEN
        self.status = status
        self.sub = sub
        self.type = bytearray(type_table[(h >> 30) & 1023] for h in hashes)
        nc = self.n_customers
        self.customer = array.array("I", [(h >> 40) % nc for h in hashes])
        self._debtor_cache: dict[int, str] = {}
        self._org_json = dumps(
            {"id": org.id, "organizationNumber": org.organization_number, "name": org.name}
        ).decode()

    # ----------------------------------------------------------------- ids and lookups
    def invoice_id(self, i: int) -> str:
        """The id of invoice ``i``."""
        return self._ids.make(i)

    def case_id(self, i: int) -> str:
        """The id of case ``i`` (invoice ``i``'s case)."""
        return self._case_ids.make(i)

    def index_of_invoice_id(self, ident: str) -> int | None:
        """The index of the invoice with this id, or None."""
        i = self._ids.index(ident.lower())
        return i if i is not None and i < self.n else None

    def index_of_case_id(self, ident: str) -> int | None:
        """The index of the case with this id, or None."""
        i = self._case_ids.index(ident.lower())
        return i if i is not None and i < self.n else None

    def invoice_number(self, i: int) -> str:
        """``INV-<year>-<i + 1>``: unique, and its index can be read back."""
        year = day_str(self.created[i] // DAY_MS)[:4]
        return f"INV-{year}-{i + 1:06d}"

    def index_of_invoice_number(self, value: str) -> int | None:
        """The index of the invoice with this invoiceNumber, or None."""
        head, _, tail = value.rpartition("-")
        if not head.startswith("INV-") or not tail.isdigit():
            return None
        i = int(tail) - 1
        return i if 0 <= i < self.n and self.invoice_number(i) == value else None

    @staticmethod
    def usid(i: int) -> str:
        """The uniqueSourceInvoiceId of invoice ``i`` (an ERP order number)."""
        return f"erp-order-{i + 1:07d}"

    def index_of_usid(self, value: str) -> int | None:
        """The index of the invoice with this uniqueSourceInvoiceId, or None."""
        if not value.startswith("erp-order-") or not value[10:].isdigit():
            return None
        i = int(value[10:]) - 1
        return i if 0 <= i < self.n and self.usid(i) == value else None

    def index_of_case_number(self, value: str) -> int | None:
        """The index of the case with this collectionCaseNumber, or None."""
        if not value.isdigit():
            return None
        i = int(value) - self.case_base
        return i if 0 <= i < self.n and str(self.case_base + i) == value else None

    @staticmethod
    def customer_number(c: int) -> str:
        """The customer number of customer ``c``."""
        return f"{200_001 + c}"

    def customer_code(self, value: str) -> int | None:
        """The customer with this customer number, or None."""
        if not value.isdigit():
            return None
        c = int(value) - 200_001
        return c if 0 <= c < self.n_customers and self.customer_number(c) == value else None

    # ------------------------------------------------------------------ materialising
    def debtor(self, c: int) -> dict[str, Any]:
        """The wire ``Debtor`` of customer ``c`` (a fresh dict)."""
        h = _mix(self._cust_key ^ (c * 0x9E3779B97F4A7C15 & _M64))
        h2 = _mix(h)
        city, zips = CITIES[h % len(CITIES)]
        zip_code = zips[(h >> 8) % len(zips)]
        street = f"{STREETS[(h >> 16) % len(STREETS)]} {1 + (h >> 24) % 120}"
        phone_digits = f"{'49'[(h2 >> 3) & 1]}{(h2 >> 8) % 10_000_000:07d}"
        phone = {
            "countryCode": "+47",
            "originalValue": f"+47 {phone_digits[:3]} {phone_digits[3:5]} {phone_digits[5:]}",
            "value": f"+47{phone_digits}",
        }
        address = {"street": street, "city": city, "zipCode": zip_code, "countryCode": "NO"}
        customer_number = self.customer_number(c)
        last = LAST_NAMES[(h >> 32) % len(LAST_NAMES)]
        if (h >> 40) % 100 < 12:
            name = f"{last} {COMPANY_SUFFIXES[(h >> 48) % len(COMPANY_SUFFIXES)]}"
            return {
                "type": "COMPANY",
                "firstname": None,
                "lastname": None,
                "name": name,
                "customerNumber": customer_number,
                "identificationNumber": None,
                "organizationNumber": org_number(h2 >> 20),
                "dateOfBirth": None,
                "emails": [{"value": f"post@{_ascii(last)}{c}.example"}],
                "phoneNumbers": [phone],
                "addresses": [address],
            }
        female = (h >> 44) & 1
        names = FEMALE_NAMES if female else MALE_NAMES
        first = names[(h >> 48) % len(names)]
        year = 1945 + (h2 >> 30) % 60
        month = 1 + (h2 >> 36) % 12
        day = 1 + (h2 >> 40) % 28
        individual = (h2 >> 44) % 500
        fnr = None
        while fnr is None:
            fnr = fake_national_id(day, month, year, individual)
            individual = (individual + 1) % 500
        return {
            "type": "PRIVATE",
            "firstname": first,
            "lastname": last,
            "name": f"{first} {last}",
            "customerNumber": customer_number,
            "identificationNumber": fnr,
            "organizationNumber": None,
            "dateOfBirth": f"{year:04d}-{month:02d}-{day:02d}",
            "emails": [{"value": f"{_ascii(first)}.{_ascii(last)}{c % 100}@epost.example"}],
            "phoneNumbers": [phone],
            "addresses": [address],
        }

    def _debtors_json(self, c: int) -> str:
        """``[Debtor]`` of customer ``c`` as compact JSON text (cached; str is not GC-tracked)."""
        text = self._debtor_cache.get(c)
        if text is None:
            text = dumps([self.debtor(c)]).decode()
            if len(self._debtor_cache) >= 300_000:
                self._debtor_cache.clear()
            self._debtor_cache[c] = text
        return text

    def _facts(self, i: int) -> tuple[int, int, int, int, int, int | None, int, int]:
        """(hash, createdAt ms, status code, original øre, paid øre, closedAt ms,
        invoice day, due day) of seeded invoice ``i``."""
        h = _mix(self.hashes[i])
        created = self.created[i]
        status_code = self.status[i]
        original = 15_000 + h % 2_500_000
        if status_code == _CLOSED:
            paid = original
        elif status_code == 0 and (h >> 32) % 10 == 0:
            paid = original * (10 + (h >> 40) % 50) // 100
        else:
            paid = 0
        closed = None
        if status_code in (_CLOSED, _WITHDRAWN):
            closed = created + (1 + (h >> 28) % 20) * DAY_MS + (h >> 12) % 3_600_000
        invoice_day = created // DAY_MS - 5 - (h >> 20) % 30
        due_day = invoice_day + _DUE_DAYS[(h >> 25) % 5]
        return h, created, status_code, original, paid, closed, invoice_day, due_day

    def _ocr(self, i: int) -> str:
        return kid_mod10(f"{self.customer[i] % 10_000_000:07d}{(i + 1) % 10_000_000:07d}")

    def record(self, i: int) -> InvoiceRecord:
        """Materialise seeded invoice ``i`` (its current column values included)."""
        h, created, status_code, original, paid, closed, invoice_day, due_day = self._facts(i)
        description = (
            f"{DESCRIPTIONS[(h >> 48) % len(DESCRIPTIONS)]} "
            f"{MONTHS[int(day_str(invoice_day)[5:7]) - 1]}"
        )
        return InvoiceRecord(
            id=self._ids.make(i),
            org=self.org,
            invoice_number=self.invoice_number(i),
            case_number=str(self.case_base + i),
            type=INVOICE_TYPES[self.type[i]],
            status=INVOICE_STATUSES[status_code],
            created_ms=created,
            closed_ms=closed,
            original=Decimal(original).scaleb(-2),
            paid=Decimal(paid).scaleb(-2),
            credited=Decimal("0.00"),
            currency="NOK",
            invoice_date=day_str(invoice_day) + _MIDNIGHT,
            due_date=day_str(due_day) + _MIDNIGHT,
            ocr=self._ocr(i),
            usid=self.usid(i),
            debtors=[self.debtor(self.customer[i])],
            case_id=self._case_ids.make(i),
            sub_status=CASE_SUB_STATUSES[self.sub[i]],
            description=description,
            case_token=f"{_mix(h):016x}",
            batch_id=None,
        )

    def invoice_json(self, i: int) -> str:
        """Compact JSON of seeded invoice ``i`` exactly as ``dumps(record(i).invoice_dict())``
        would give it, without building the record (the listing's fast path)."""
        _, created, status_code, original, paid, closed, invoice_day, due_day = self._facts(i)
        ident = self._ids.make(i)
        orig = f"{original // 100}.{original % 100:02d}"
        rem_ore = original - paid
        rem = f"{rem_ore // 100}.{rem_ore % 100:02d}"
        paid_s = f"{paid // 100}.{paid % 100:02d}"
        closed_s = "null" if closed is None else f'"{fmt_ms(closed)}"'
        return (
            f'{{"id":"{ident}","organization":{self._org_json},'
            f'"invoiceNumber":"{self.invoice_number(i)}",'
            f'"collectionCaseNumber":"{self.case_base + i}",'
            f'"type":"{INVOICE_TYPES[self.type[i]]}","status":"{INVOICE_STATUSES[status_code]}",'
            f'"createdAt":"{fmt_ms(created)}","closedAt":{closed_s},'
            f'"originalInvoiceAmount":{orig},"currency":"NOK",'
            f'"invoiceDate":"{day_str(invoice_day)}{_MIDNIGHT}",'
            f'"dueDate":"{day_str(due_day)}{_MIDNIGHT}",'
            f'"ocrReferenceNumber":"{self._ocr(i)}","uniqueSourceInvoiceId":"{self.usid(i)}",'
            f'"claims":[{{"type":"PRINCIPAL","originalAmount":{orig},"currentAmount":{orig},'
            f'"remainingAmount":{rem},"paidAmount":{paid_s},"creditedAmount":0.00,'
            f'"currency":"NOK","invoiceId":"{ident}"}}],'
            f'"debtors":{self._debtors_json(self.customer[i])},'
            f'"currentAmount":{orig},"remainingAmount":{rem},"paidAmount":{paid_s},'
            f'"creditedAmount":0.00}}'
        )

    def sync(self, i: int, record: InvoiceRecord) -> None:
        """Write a changed record's status and sub-status back into the filter columns."""
        self.status[i] = STATUS_CODES[record.status]
        self.sub[i] = _SUB_CODE[record.sub_status]


def seed_invoices(
    n: int, seed: int = 1, org: OrgConfig = DEFAULT_ORGS[0], case_base: int = CASE_NUMBER_BASE
) -> SeededInvoices:
    """``n`` realistic Norwegian-looking invoices (NOK), deterministic per ``seed``."""
    return SeededInvoices(n, seed, org, case_base)


def org_seed(seed: int, k: int) -> int:
    """The seed of the ``k``-th seeded organisation: the sandbox's own for the first (its data
    unchanged by seeding more), a derived one for the others, so their invoices and ids differ."""
    if k == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"amili-sandbox/{seed}/org/{k}".encode()).digest()[:8])
