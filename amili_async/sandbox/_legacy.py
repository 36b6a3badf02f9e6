"""The legacy ``/webapi/api`` endpoints' data (batch export, posted batches, attachments),
served from the same organisations because older integrations still call them."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from ._config import SandboxConfig
from ._records import ACTIVE_STATUSES, InvoiceRecord
from ._store import CaseFilters, OrgState

__all__ = ["LegacyStore", "find_case"]

# The cases a batch export lists unless closed ones are asked for.
_ACTIVE = frozenset(ACTIVE_STATUSES)
# The creditor contact of every exported creditor: fixed, plausibly Norwegian sample data.
_CONTACT: dict[str, Any] = {
    "fullname": "Kari Nordmann",
    "workphone": "+4722000000",
    "email": "regnskap@kreditor.example",
    "isinvoicequery": True,
    "isremittancereport": True,
    "isorderconfirmation": False,
    "iscollectionlist": True,
    "isweb": True,
}


class LegacyStore:
    """Legacy batches posted by clients and attachments uploaded, by their ids."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self.batches: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[str, Any]] = {}

    def export(
        self,
        accessible: list[OrgState],
        *,
        creditor_id: str | None,
        customer_ref: str | None,
        include_closed: bool,
        last_settlement_id: str | None,
    ) -> dict[str, Any]:
        """``GET /webapi/api/Batch``: creditors, cases (up to ``legacy_batch_limit``) and the
        settlements after ``last_settlement_id`` of the accessible organisations."""
        orgs = [
            o
            for o in accessible
            if creditor_id is None
            or creditor_id in (o.org.id, o.org.organization_number, o.org.creditor_number)
        ]
        limit = self._config.legacy_batch_limit
        cases: list[dict[str, Any]] = []
        settlements: list[dict[str, Any]] = []
        creditors = []
        for o in orgs:
            creditors.append(_creditor(o))
            filters = CaseFilters(
                status=None if include_closed else _ACTIVE, customer_number=customer_ref
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

    def store_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /webapi/api/Batch``: keep the batch under a new batchid; answer it."""
        stored = dict(body)
        stored["batchid"] = str(uuid.uuid4())
        stored.setdefault("offline", False)
        for key in ("creditor", "case", "settlement"):
            stored.setdefault(key, [])
        self.batches[stored["batchid"]] = stored
        return stored

    def store_attachment(
        self, filename: str | None, content_type: str | None, data: bytes, case_id: str | None
    ) -> str:
        """``POST /webapi/api/Attachment``: keep the file's metadata and digest; answer its id."""
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


def find_case(orgs: list[OrgState], case_id: str) -> InvoiceRecord | None:
    """The case with this id in any of ``orgs`` (legacy calls name no organisation)."""
    for o in orgs:
        rec = o.get_case(case_id)
        if rec is not None:
            return rec
    return None


def _creditor(o: OrgState) -> dict[str, Any]:
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
        "contact": dict(_CONTACT),
        "casehandler": dict(_CONTACT, fullname="Ola Nordmann"),
        "sourceid": 0,
        "reminderflow": 0,
        "debtcollectiontransfer": 0,
        "invoicearchive": 0,
        "hasforeigndebtors": False,
        "hasforeigncurrency": False,
        "disabled": False,
        "lastsettlementid": o.settlements[-1].id if o.settlements else None,
    }
