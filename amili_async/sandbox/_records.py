"""The sandbox's in-memory records and their wire (JSON-ready dict) shapes."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import attrs

from .. import models
from ._config import OrgConfig
from ._wire import fmt_ms

__all__ = [
    "ACTIVE_STATUSES",
    "BATCH_STATUSES",
    "BATCH_TYPES",
    "CASE_SUB_STATUSES",
    "INVOICE_STATUSES",
    "INVOICE_TYPES",
    "TERMINAL_STATUSES",
    "BatchRecord",
    "InvoiceRecord",
    "SettlementRecord",
]

# Enum values come from the generated models (i.e. the spec): one place to change them. The
# order matters: the seeded columns store positions in these tuples.
INVOICE_STATUSES = tuple(member.value for member in models.InvoiceStatus)
INVOICE_TYPES = tuple(member.value for member in models.InvoiceType)
CASE_SUB_STATUSES: tuple[str | None, ...] = (
    None,
    *(member.value for member in models.CaseSubStatus),
)
BATCH_STATUSES = tuple(member.value for member in models.BatchStatus)
BATCH_TYPES = tuple(member.value for member in models.BatchType)
# Final invoice/case statuses: no payment, correction or case action applies any more, and
# reaching one sets closedAt. The others are the active ones: still being collected.
TERMINAL_STATUSES = ("CLOSED", "WITHDRAWN")
ACTIVE_STATUSES = ("OPEN", "PAUSED")

# Namespace of the stable creditor ids (uuid5 of the organisation id): any fixed uuid will do.
_DEBTOR_NS = uuid.UUID("6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f")


def _creditor_id(org: OrgConfig) -> str:
    return str(uuid.uuid5(_DEBTOR_NS, "creditor/" + org.id))


@attrs.define(slots=True, eq=False)
class InvoiceRecord:
    """One invoice and its (one) case. Case status is the invoice status.

    Amounts: ``currentAmount = original - credited``; ``remainingAmount = current - paid``
    (so remaining = original - paid - credited), for the invoice and its PRINCIPAL claim.
    """

    id: str
    org: OrgConfig
    invoice_number: str
    case_number: str
    type: str
    status: str
    created_ms: int
    closed_ms: int | None
    original: Decimal
    paid: Decimal
    credited: Decimal
    currency: str
    invoice_date: str
    due_date: str
    ocr: str | None
    usid: str | None
    #: Wire-shaped ``Debtor`` dicts; treat as immutable (seeded ones are shared).
    debtors: list[dict[str, Any]]
    case_id: str
    sub_status: str | None
    description: str | None
    case_token: str
    batch_id: str | None

    @property
    def current(self) -> Decimal:
        """currentAmount: the original amount less credits."""
        return self.original - self.credited

    @property
    def remaining(self) -> Decimal:
        """remainingAmount: what is still owed."""
        return self.original - self.credited - self.paid

    @property
    def customer_number(self) -> str | None:
        """The first debtor's customer number (the settlement's customerReference)."""
        for d in self.debtors:
            cn = d.get("customerNumber")
            if cn:
                return str(cn)
        return None

    def invoice_dict(self) -> dict[str, Any]:
        """The wire ``Invoice`` (exact field order of the docs' GetInvoiceById example)."""
        current = self.original - self.credited
        remaining = current - self.paid
        org = self.org
        return {
            "id": self.id,
            "organization": {
                "id": org.id,
                "organizationNumber": org.organization_number,
                "name": org.name,
            },
            "invoiceNumber": self.invoice_number,
            "collectionCaseNumber": self.case_number,
            "type": self.type,
            "status": self.status,
            "createdAt": fmt_ms(self.created_ms),
            "closedAt": None if self.closed_ms is None else fmt_ms(self.closed_ms),
            "originalInvoiceAmount": self.original,
            "currency": self.currency,
            "invoiceDate": self.invoice_date,
            "dueDate": self.due_date,
            "ocrReferenceNumber": self.ocr,
            "uniqueSourceInvoiceId": self.usid,
            "claims": [
                {
                    "type": "PRINCIPAL",
                    "originalAmount": self.original,
                    "currentAmount": current,
                    "remainingAmount": remaining,
                    "paidAmount": self.paid,
                    "creditedAmount": self.credited,
                    "currency": self.currency,
                    "invoiceId": self.id,
                }
            ],
            "debtors": self.debtors,
            "currentAmount": current,
            "remainingAmount": remaining,
            "paidAmount": self.paid,
            "creditedAmount": self.credited,
        }

    def case_dict(self) -> dict[str, Any]:
        """The wire ``Case`` (DESIGN.md field order)."""
        registered = fmt_ms(self.created_ms)
        remaining = self.original - self.credited - self.paid
        debtors = []
        for k, d in enumerate(self.debtors):
            debtors.append(
                {
                    "debtorId": str(uuid.uuid5(_DEBTOR_NS, f"{self.case_id}/{k}")),
                    "type": d.get("type"),
                    "debtorNumber": f"{self.case_number}-{k + 1}",
                    "customerNumber": d.get("customerNumber"),
                    "firstName": d.get("firstname"),
                    "lastName": d.get("lastname"),
                    "fullName": d.get("name"),
                }
            )
        return {
            "caseId": self.case_id,
            "caseNumber": self.case_number,
            "organizationId": self.org.id,
            "creditorId": _creditor_id(self.org),
            "creditorNumber": self.org.creditor_number,
            "status": self.status,
            "subStatus": self.sub_status,
            "type": self.type,
            "description": self.description,
            "registeredAt": registered,
            "closedAt": None if self.closed_ms is None else fmt_ms(self.closed_ms),
            "caseToken": self.case_token,
            "invoices": [
                {
                    "invoiceId": self.id,
                    "invoiceNumber": self.invoice_number,
                    "caseId": self.case_id,
                    "invoiceDate": self.invoice_date,
                    "dueDate": self.due_date,
                    "batchId": self.batch_id,
                    "registeredAt": registered,
                    "originalAmount": self.original,
                    "remainingAmount": remaining,
                    "remainingPrincipal": remaining,
                    "uniqueSourceInvoiceId": self.usid,
                    "paidAmount": self.paid,
                    "creditedAmount": self.credited,
                    "currency": self.currency,
                }
            ],
            "debtors": debtors,
        }

    def search_text(self) -> str:
        """Lower-case text the cases ``SearchTerm`` filter matches (substring)."""
        parts = [self.case_number, self.invoice_number, self.usid or "", self.ocr or ""]
        for d in self.debtors:
            parts.extend(str(d.get(k) or "") for k in ("name", "customerNumber"))
        parts.append(self.description or "")
        return "\x00".join(parts).lower()


@attrs.define(slots=True, eq=False)
class BatchRecord:
    """One write batch: its request items until processed, then its per-item outcome."""

    id: str
    org_id: str
    type: str
    created_ms: int
    created_by: str
    idempotency_key: str | None
    subject_id: str | None
    #: The validated request items, kept until the batch is processed.
    items: list[dict[str, Any]]
    status: str = "QUEUED"
    finished_ms: int | None = None
    succeeded: list[dict[str, Any]] = attrs.Factory(list)
    failed: list[dict[str, Any]] = attrs.Factory(list)
    #: Loop time at which the worker may process the batch.
    due: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The wire ``Batch``."""
        return {
            "batchId": self.id,
            "type": self.type,
            "status": self.status,
            "createdAt": fmt_ms(self.created_ms),
            "finishedAt": None if self.finished_ms is None else fmt_ms(self.finished_ms),
            "organizationId": self.org_id,
            "createdBy": self.created_by,
            "subjectId": self.subject_id,
            "idempotencyKey": self.idempotency_key,
            "succeeded": self.succeeded,
            "failed": self.failed,
        }


@attrs.define(slots=True, eq=False)
class SettlementRecord:
    """One settlement (a payment passed on to the creditor)."""

    id: str
    org_id: str
    created_ms: int
    invoice_id: str
    invoice_number: str
    case_number: str
    collection_type: str
    currency: str
    customer_reference: str | None
    exchange_rate: Decimal
    settlement_date: str
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        """The wire ``Settlement``."""
        # Documented fields first, in the docs' order; the inferred ones after.
        return {
            "caseNumber": self.case_number,
            "collectionType": self.collection_type,
            "currency": self.currency,
            "customerReference": self.customer_reference,
            "exchangeRate": self.exchange_rate,
            "settlementDate": self.settlement_date,
            "amount": self.amount,
            "invoiceId": self.invoice_id,
            "invoiceNumber": self.invoice_number,
            "organizationId": self.org_id,
            "settlementId": self.id,
        }
