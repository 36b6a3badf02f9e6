from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from amili_async.sandbox import BATCH_COMPLETED, SandboxConfig, SandboxServer
from amili_async.sandbox._norway import kid_is_valid

from ._support import Api, new_invoice

# Field order of the docs' complete GetInvoiceById example (000_4e79d02459dacddd.txt).
INVOICE_KEYS = [
    "id", "organization", "invoiceNumber", "collectionCaseNumber", "type", "status",
    "createdAt", "closedAt", "originalInvoiceAmount", "currency", "invoiceDate", "dueDate",
    "ocrReferenceNumber", "uniqueSourceInvoiceId", "claims", "debtors", "currentAmount",
    "remainingAmount", "paidAmount", "creditedAmount",
]  # fmt: skip
CLAIM_KEYS = [
    "type", "originalAmount", "currentAmount", "remainingAmount", "paidAmount",
    "creditedAmount", "currency", "invoiceId",
]  # fmt: skip
DEBTOR_KEYS = [
    "type", "firstname", "lastname", "name", "customerNumber", "identificationNumber",
    "organizationNumber", "dateOfBirth", "emails", "phoneNumbers", "addresses",
]  # fmt: skip


def _check_invoice_shape(inv: dict[str, object]) -> None:
    assert list(inv) == INVOICE_KEYS
    assert list(inv["organization"]) == ["id", "organizationNumber", "name"]  # type: ignore[arg-type]
    claims = inv["claims"]
    assert isinstance(claims, list)
    assert [list(c) for c in claims] == [CLAIM_KEYS]
    debtors = inv["debtors"]
    assert isinstance(debtors, list)
    for d in debtors:
        assert list(d) == DEBTOR_KEYS
        assert all(list(p) == ["countryCode", "originalValue", "value"] for p in d["phoneNumbers"])
        assert all(list(a) == ["street", "city", "zipCode", "countryCode"] for a in d["addresses"])
        assert all(list(e) == ["value"] for e in d["emails"])


async def test_get_seeded_invoice_has_the_documented_shape(api: Api) -> None:
    status, page = await api.get(f"{api.org}/invoices", {"PageSize": "5"})
    assert status == 200
    assert list(page) == ["data", "summary"]
    first = page["data"][0]
    status, one = await api.get(f"{api.org}/invoices/{first['id']}")
    assert status == 200
    assert list(one) == ["summary", "data"]
    assert one["summary"] == {"status": "SUCCESS", "nextPageToken": None}
    inv = one["data"]
    assert inv == first
    _check_invoice_shape(inv)
    assert inv["organization"]["id"] == api.server.default_org_id
    assert inv["currency"] == "NOK"
    assert kid_is_valid(inv["ocrReferenceNumber"])
    assert inv["createdAt"].endswith("Z")
    for x in page["data"]:
        assert x["remainingAmount"] == (
            x["originalInvoiceAmount"] - x["paidAmount"] - x["creditedAmount"]
        )
        assert isinstance(x["originalInvoiceAmount"], Decimal)
        assert x["originalInvoiceAmount"].as_tuple().exponent == -2


async def test_unknown_invoice_is_404(api: Api) -> None:
    status, body = await api.get(f"{api.org}/invoices/{uuid.uuid4()}")
    assert status == 404
    assert body["status"] == 404
    status, _ = await api.get(f"{api.org}/invoices/not-a-uuid")
    assert status == 404


async def test_create_invoices_queued_then_success(api: Api) -> None:
    api.server.hold_batches()  # QUEUED until released: no batch delay to race against
    status, answer = await api.post(f"{api.org}/invoices", {"invoices": [new_invoice(1)]})
    assert status == 202
    assert answer["summary"] == {"status": "SUCCESS"}
    batch_id = answer["data"]["batchId"]
    assert answer["data"]["batchUrl"] == f"{api.org}/batches/{batch_id}"
    status, batch = await api.get(answer["data"]["batchUrl"])
    assert status == 200
    assert batch["data"]["status"] == "QUEUED"
    assert batch["data"]["finishedAt"] is None
    api.server.release_batches()
    await api.wait_batch(batch_id)
    status, batch = await api.get(answer["data"]["batchUrl"])
    b = batch["data"]
    assert b["status"] == "SUCCESS"
    assert b["type"] == "INVOICE"
    assert b["finishedAt"] is not None
    assert b["organizationId"] == api.server.default_org_id
    assert b["createdBy"] == str(
        uuid.uuid5(uuid.UUID("0b8f7c1e-52a4-4d0e-9b61-3c2f1e7d9a10"), "sandbox")
    )
    assert b["failed"] == []
    (ok,) = b["succeeded"]
    assert list(ok) == ["index", "invoiceId", "invoiceNumber", "caseId", "uniqueSourceInvoiceId"]
    assert ok["index"] == 0
    assert ok["invoiceNumber"] == "INV-T-00001"
    assert ok["uniqueSourceInvoiceId"] == "test-usid-00001"
    status, inv = await api.get(f"{api.org}/invoices/{ok['invoiceId']}")
    assert status == 200
    inv = inv["data"]
    _check_invoice_shape(inv)
    assert inv["status"] == "OPEN"
    assert inv["originalInvoiceAmount"] == Decimal("4500.10")
    assert inv["remainingAmount"] == Decimal("4500.10")
    assert inv["invoiceDate"] == "2024-01-15T00:00:00.000Z"
    assert inv["debtors"][0]["name"] == "Kari Nordmann"
    assert kid_is_valid(inv["ocrReferenceNumber"])
    status, cases = await api.get(f"{api.org}/cases", {"UniqueSourceInvoiceId": "test-usid-00001"})
    (case,) = cases["data"]
    assert case["caseId"] == ok["caseId"]
    assert case["caseNumber"] == inv["collectionCaseNumber"]
    assert case["invoices"][0]["batchId"] == batch_id
    assert case["status"] == "OPEN"


async def test_legacy_org_less_batch_get(api: Api) -> None:
    b = await api.submit("invoices", {"invoices": [new_invoice(1)]})
    status, legacy = await api.get(f"{api.server.base_url}/batches/{b['batchId']}")
    assert status == 200
    assert legacy["data"] == b
    status, _ = await api.get(f"{api.server.base_url}/batches/{uuid.uuid4()}")
    assert status == 404
    await api.login("sandbox-restricted", "sandbox-restricted-secret")
    status, _ = await api.get(f"{api.server.base_url}/batches/{b['batchId']}")
    assert status == 403


async def test_partial_batch_with_duplicates(api: Api) -> None:
    await api.submit("invoices", {"invoices": [new_invoice(1)]})
    items = [
        new_invoice(2),
        new_invoice(3, uniqueSourceInvoiceId="test-usid-00002"),  # twice in one batch
        new_invoice(4, uniqueSourceInvoiceId="test-usid-00001"),  # earlier batch
        new_invoice(5, uniqueSourceInvoiceId="erp-order-0000001"),  # a seeded invoice
        new_invoice(6, originalInvoiceAmount=0),
        new_invoice(7, dueDate="2024-01-01"),
        new_invoice(8, uniqueSourceInvoiceId=None),
        # Any string passes the schema (the docs' own example sends "string"); not ISO 4217.
        new_invoice(9, currency="kroner"),
    ]
    b = await api.submit("invoices", {"invoices": items})
    assert b["status"] == "PARTIAL"
    assert [s["index"] for s in b["succeeded"]] == [0, 6]
    failed = {f["index"]: f for f in b["failed"]}
    assert {k: f["code"] for k, f in failed.items()} == {
        1: "DUPLICATE",
        2: "DUPLICATE",
        3: "DUPLICATE",
        4: "INVALID_AMOUNT",
        5: "INVALID_DATES",
        7: "INVALID_CURRENCY",
    }
    assert list(failed[1]) == [
        "index", "invoiceId", "invoiceNumber", "uniqueSourceInvoiceId", "code", "reason",
    ]  # fmt: skip
    assert failed[1]["uniqueSourceInvoiceId"] == "test-usid-00002"
    assert failed[1]["invoiceNumber"] == "INV-T-00003"
    assert failed[1]["reason"]


async def test_failed_batch(api: Api) -> None:
    b = await api.submit(
        "invoices",
        {
            "invoices": [
                new_invoice(1, originalInvoiceAmount=-5),
                new_invoice(2, uniqueSourceInvoiceId="erp-order-0000002"),
            ]
        },
    )
    assert b["status"] == "FAILED"
    assert b["succeeded"] == []
    assert len(b["failed"]) == 2


async def test_batch_completed_is_published_exactly_once(api: Api) -> None:
    seen: list[str] = []
    unsubscribe = api.server.events.subscribe(
        lambda e: seen.append(e.data["batchId"]), BATCH_COMPLETED
    )
    try:
        b1 = await api.submit("invoices", {"invoices": [new_invoice(1)]})
        b2 = await api.submit("invoices", {"invoices": [new_invoice(1)]})
    finally:
        unsubscribe()
    assert seen == [b1["batchId"], b2["batchId"]]
    assert b2["status"] == "FAILED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "invoices"),
        ({"invoices": []}, "invoices"),
        ({"invoices": {}}, "invoices"),
        ({"invoices": [new_invoice() for _ in range(1001)]}, "invoices"),
        ({"invoices": [1]}, "invoices[0]"),
        ({"invoices": [new_invoice(type="RENT")]}, "invoices[0].type"),
        ({"invoices": [new_invoice(type=None)]}, "invoices[0].type"),
        ({"invoices": [new_invoice(invoiceNumber=None)]}, "invoices[0].invoiceNumber"),
        (
            {"invoices": [new_invoice(originalInvoiceAmount="12")]},
            "invoices[0].originalInvoiceAmount",
        ),
        (
            {"invoices": [new_invoice(originalInvoiceAmount=Decimal("1.005"))]},
            "invoices[0].originalInvoiceAmount",
        ),
        ({"invoices": [new_invoice(currency=12)]}, "invoices[0].currency"),
        ({"invoices": [new_invoice(invoiceDate="15.01.2024")]}, "invoices[0].invoiceDate"),
        ({"invoices": [new_invoice(dueDate=None)]}, "invoices[0].dueDate"),
        ({"invoices": [new_invoice(vat="yes")]}, "invoices[0].vat"),
        ({"invoices": [new_invoice(debtors=[{"type": "ALIEN"}])]}, "invoices[0].debtors[0].type"),
    ],
)
async def test_schema_invalid_body_is_422(api: Api, body: dict[str, object], field: str) -> None:
    status, problem = await api.post(f"{api.org}/invoices", body)
    assert status == 422, problem
    assert problem["status"] == 422
    assert field in problem["errors"], problem["errors"]
    assert problem["errors"][field]
    assert api.server.state.default_org.batches == []


async def test_non_json_body_is_400(api: Api) -> None:
    for data in (b"{not json", b"", b"NaN"):
        async with api.session.post(
            f"{api.org}/invoices",
            data=data,
            headers=api.headers({"Content-Type": "application/json"}),
        ) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"
    async with api.session.post(
        f"{api.org}/payments", data=b"a=b", headers=api.headers({"Content-Type": "text/plain"})
    ) as resp:
        assert resp.status == 415


async def test_idempotent_repeat_returns_original_and_creates_nothing(api: Api) -> None:
    key = {"IdempotencyKey": "key-1"}
    body = {"invoices": [new_invoice(1)]}
    status, first = await api.post(f"{api.org}/invoices", body, key)
    assert status == 202
    await api.wait_batch(first["data"]["batchId"])
    # Same body, other formatting: still the same request.
    async with api.session.post(
        f"{api.org}/invoices",
        data=b'{ "invoices" : [' + _compact(new_invoice(1)) + b"] }",
        headers=api.headers({"Content-Type": "application/json", **key}),
    ) as resp:
        assert resp.status == 202
        again = await resp.json()
    assert again == first
    org = api.server.state.default_org
    assert len(org.batches) == 1
    assert len(org.created) == 1
    status, listed = await api.get(f"{api.org}/batches", {"IdempotencyKey": "key-1"})
    assert [b["batchId"] for b in listed["data"]] == [first["data"]["batchId"]]
    assert listed["data"][0]["idempotencyKey"] == "key-1"
    # The key is per operation: a payments call with the same key is a new request.
    inv_id = org.created[0].id
    status, pay = await api.post(
        f"{api.org}/payments",
        {
            "payments": [
                {"invoiceId": inv_id, "type": "DIRECT_PAYMENT", "amount": 1, "currency": "NOK"}
            ]
        },
        key,
    )
    assert status == 202
    assert pay["data"]["batchId"] != first["data"]["batchId"]


def _compact(obj: object) -> bytes:
    from ._support import dumps

    return dumps(obj)


async def test_same_idempotency_key_other_body_is_409(api: Api) -> None:
    key = {"IdempotencyKey": "key-2"}
    status, _ = await api.post(f"{api.org}/invoices", {"invoices": [new_invoice(1)]}, key)
    assert status == 202
    status, problem = await api.post(f"{api.org}/invoices", {"invoices": [new_invoice(2)]}, key)
    assert status == 409
    assert problem["status"] == 409
    assert len(api.server.state.default_org.batches) == 1


async def test_batch_stays_queued_until_its_delay_and_shutdown_is_clean(api: Api) -> None:
    async with SandboxServer(SandboxConfig(batch_delay=30)) as slow:
        other = Api(slow, api.session)
        await other.login()
        status, answer = await other.post(f"{other.org}/invoices", {"invoices": [new_invoice(1)]})
        assert status == 202
        for _ in range(3):
            status, b = await other.get(answer["data"]["batchUrl"])
            assert b["data"]["status"] == "QUEUED"
    # Leaving the context cancelled the worker; pytest turns pending-task warnings into errors.


async def test_zero_delay_processes_on_a_later_loop_iteration(api: Api) -> None:
    async with SandboxServer(SandboxConfig(batch_delay=0)) as fast:
        other = Api(fast, api.session)
        await other.login()
        b = await other.submit("invoices", {"invoices": [new_invoice(1)]})
        assert b["status"] == "SUCCESS"
        assert b["createdAt"] <= b["finishedAt"]


async def test_zero_delay_is_never_processed_inside_the_request(api: Api) -> None:
    async with SandboxServer(SandboxConfig(batch_delay=0)) as fast:
        state = fast.state
        org = state.default_org
        done = fast.events.wait_for(BATCH_COMPLETED)
        items = [{"invoiceId": org.seeded.invoice_id(0), "type": "DIRECT_PAYMENT"}]  # type: ignore[union-attr]
        items[0].update(amount=Decimal("1.00"), currency="NOK", paymentDate=None, reference=None)
        state.submit_batch(org, "PAYMENT", "sandbox", None, items, "http://x")
        assert org.batches[-1].status == "QUEUED"
        event = await asyncio.wait_for(done, 5)
        assert event.data["status"] == "SUCCESS"
        assert org.batches[-1].status == "SUCCESS"
