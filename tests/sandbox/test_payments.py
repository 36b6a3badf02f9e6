from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from amili_async.sandbox import SETTLEMENT_CREATED

from ._support import Api, new_invoice


async def _invoice(api: Api, n: int = 1, **over: Any) -> dict[str, Any]:
    b = await api.submit("invoices", {"invoices": [new_invoice(n, **over)]})
    status, inv = await api.get(f"{api.org}/invoices/{b['succeeded'][0]['invoiceId']}")
    assert status == 200
    return inv["data"]  # type: ignore[no-any-return]


def _payment(invoice_id: str, amount: Any, **over: Any) -> dict[str, Any]:
    p = {"invoiceId": invoice_id, "type": "DIRECT_PAYMENT", "amount": amount, "currency": "NOK"}
    p.update(over)
    return p


async def test_payment_changes_amounts_exactly_and_creates_a_settlement(api: Api) -> None:
    inv = await _invoice(api)
    settled = api.server.events.wait_for(SETTLEMENT_CREATED)
    b = await api.submit(
        "payments",
        {"payments": [_payment(inv["id"], Decimal("1000.05"), paymentDate="2025-08-15")]},
    )
    assert b["status"] == "SUCCESS"
    assert b["type"] == "PAYMENT"
    assert b["subjectId"] == inv["id"]
    (ok,) = b["succeeded"]
    assert ok["invoiceId"] == inv["id"]
    assert ok["caseId"]
    uuid.UUID(ok["paymentId"])
    status, after = await api.get(f"{api.org}/invoices/{inv['id']}")
    a = after["data"]
    assert a["paidAmount"] == Decimal("1000.05")
    assert a["remainingAmount"] == Decimal("3500.05")
    assert a["currentAmount"] == Decimal("4500.10")
    assert a["creditedAmount"] == Decimal("0.00")
    (claim,) = a["claims"]
    assert claim["paidAmount"] == Decimal("1000.05")
    assert claim["remainingAmount"] == Decimal("3500.05")
    assert a["status"] == "OPEN"

    event = await asyncio.wait_for(settled, 5)
    assert event.type == "SETTLEMENT_CREATED"
    assert list(event.data) == [
        "settlementId", "organizationId", "settlementDate", "invoiceId", "invoiceNumber",
        "caseNumber",
    ]  # fmt: skip
    assert event.data["settlementDate"] == "2025-08-15"
    assert event.to_dict()["source"] == "COLLECTION"
    status, s = await api.get(f"{api.org}/settlements/{event.data['settlementId']}")
    assert status == 200
    assert s["summary"] == {"status": "SUCCESS", "nextPageToken": None}
    assert s["data"] == {
        "caseNumber": inv["collectionCaseNumber"],
        "collectionType": "REMINDER",
        "currency": "NOK",
        "customerReference": "C-77",
        "exchangeRate": 1,
        "settlementDate": "2025-08-15",
        "amount": Decimal("1000.05"),
        "invoiceId": inv["id"],
        "invoiceNumber": inv["invoiceNumber"],
        "organizationId": api.server.default_org_id,
        "settlementId": event.data["settlementId"],
    }
    status, _ = await api.get(f"{api.org}/settlements/{uuid.uuid4()}")
    assert status == 404


async def test_paying_in_full_closes_invoice_and_case(api: Api) -> None:
    inv = await _invoice(api)
    b = await api.submit(
        "payments",
        {"payments": [_payment(inv["id"], Decimal("4000.10")), _payment(inv["id"], 500)]},
    )
    assert b["status"] == "SUCCESS"
    after = await api.ok(f"{api.org}/invoices/{inv['id']}")
    a = after["data"]
    assert a["remainingAmount"] == Decimal("0.00")
    assert a["status"] == "CLOSED"
    assert a["closedAt"] is not None
    cases = await api.ok(f"{api.org}/cases", {"CaseNumber": inv["collectionCaseNumber"]})
    assert cases["data"][0]["status"] == "CLOSED"
    assert cases["data"][0]["closedAt"] == a["closedAt"]
    b = await api.submit("payments", {"payments": [_payment(inv["id"], 1)]})
    assert b["status"] == "FAILED"
    assert b["failed"][0]["code"] == "INVOICE_CLOSED"


async def test_payment_failures(api: Api) -> None:
    inv = await _invoice(api)
    items = [
        _payment(inv["id"], Decimal("4500.11")),
        _payment(inv["id"], 10, currency="SEK"),
        _payment(str(uuid.uuid4()), 10),
        _payment(inv["id"], 0),
        _payment(inv["id"], Decimal("0.10")),
    ]
    b = await api.submit("payments", {"payments": items})
    assert b["status"] == "PARTIAL"
    assert b["subjectId"] is None
    codes = {f["index"]: f["code"] for f in b["failed"]}
    assert codes == {
        0: "AMOUNT_EXCEEDS_REMAINING",
        1: "CURRENCY_MISMATCH",
        2: "INVOICE_NOT_FOUND",
        3: "INVALID_AMOUNT",
    }
    assert b["failed"][0]["invoiceNumber"] == inv["invoiceNumber"]
    assert b["failed"][2]["invoiceId"] == items[2]["invoiceId"]
    assert [s["index"] for s in b["succeeded"]] == [4]
    assert len(api.server.state.default_org.settlements) == 1


async def test_payment_schema_errors_are_422(api: Api) -> None:
    status, problem = await api.post(
        f"{api.org}/payments",
        {"payments": [{"invoiceId": "nope", "type": "CASH", "amount": "1", "currency": "NOK"}]},
    )
    assert status == 422
    assert set(problem["errors"]) == {
        "payments[0].invoiceId",
        "payments[0].type",
        "payments[0].amount",
    }


async def test_corrections(api: Api) -> None:
    inv = await _invoice(api)
    b = await api.submit(
        "corrections",
        {
            "corrections": [
                {
                    "invoiceId": inv["id"],
                    "amount": Decimal("500.10"),
                    "currency": "NOK",
                    "date": "2024-03-01T10:00:00.123Z",
                    "description": "Kreditnota",
                },
                {"invoiceId": inv["id"], "amount": Decimal("4000.01"), "currency": "NOK"},
            ]
        },
    )
    assert b["type"] == "CORRECTION"
    assert b["status"] == "PARTIAL"
    uuid.UUID(b["succeeded"][0]["correctionId"])
    assert b["failed"][0]["code"] == "AMOUNT_EXCEEDS_REMAINING"
    after = await api.ok(f"{api.org}/invoices/{inv['id']}")
    a = after["data"]
    assert a["creditedAmount"] == Decimal("500.10")
    assert a["currentAmount"] == Decimal("4000.00")
    assert a["remainingAmount"] == Decimal("4000.00")
    assert a["claims"][0]["creditedAmount"] == Decimal("500.10")
    assert a["claims"][0]["currentAmount"] == Decimal("4000.00")
    assert api.server.state.default_org.settlements == []
    # Pay 1000.05, credit the rest: closed.
    await api.submit("payments", {"payments": [_payment(inv["id"], Decimal("1000.05"))]})
    b = await api.submit(
        "corrections",
        {
            "corrections": [
                {"invoiceId": inv["id"], "amount": Decimal("2999.95"), "currency": "NOK"}
            ]
        },
    )
    assert b["status"] == "SUCCESS"
    after = await api.ok(f"{api.org}/invoices/{inv['id']}")
    a = after["data"]
    assert (a["paidAmount"], a["creditedAmount"], a["remainingAmount"], a["status"]) == (
        Decimal("1000.05"),
        Decimal("3500.05"),
        Decimal("0.00"),
        "CLOSED",
    )


async def test_paying_a_seeded_invoice_updates_listing_and_filters(api: Api) -> None:
    page = await api.ok(f"{api.org}/invoices", {"Status": "OPEN", "PageSize": "1"})
    inv = page["data"][0]
    b = await api.submit("payments", {"payments": [_payment(inv["id"], inv["remainingAmount"])]})
    assert b["status"] == "SUCCESS"
    assert b["succeeded"][0]["uniqueSourceInvoiceId"] == inv["uniqueSourceInvoiceId"]
    closed, _ = await api.all_pages(f"{api.org}/invoices", {"Status": "CLOSED"})
    match = [x for x in closed if x["id"] == inv["id"]]
    assert len(match) == 1
    assert match[0]["remainingAmount"] == Decimal("0.00")
    still_open, _ = await api.all_pages(f"{api.org}/invoices", {"Status": "OPEN"})
    assert inv["id"] not in {x["id"] for x in still_open}
    one = await api.ok(f"{api.org}/invoices/{inv['id']}")
    assert one["data"] == match[0]


async def test_settlement_listing_pages_and_date_filters(api: Api) -> None:
    inv = await _invoice(api, originalInvoiceAmount=Decimal("100000.00"))
    payments = [
        _payment(inv["id"], Decimal(k), paymentDate=f"2025-01-{k:02d}") for k in range(1, 11)
    ]
    await api.submit("payments", {"payments": payments})
    items, pages = await api.all_pages(
        f"{api.org}/settlements", {"pageSize": "3"}, token_name="pageToken"
    )
    assert pages == 4
    assert len({s["settlementId"] for s in items}) == 10
    window, _ = await api.all_pages(
        f"{api.org}/settlements",
        {"pageSize": "2", "fromDate": "2025-01-03", "toDate": "2025-01-06"},
        token_name="pageToken",
    )
    assert sorted(s["settlementDate"] for s in window) == ["2025-01-03", "2025-01-04", "2025-01-05"]
    status, _ = await api.get(f"{api.org}/settlements", {"fromDate": "yesterday"})
    assert status == 400
