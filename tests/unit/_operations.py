"""The wire table of every operation: the call, the request it must send, the answer it reads.

Data for test_resources.py, kept apart so the tests read as tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import attrs

from amili_async import AmiliClient, models

ORIGIN = "https://api.test.invalid"
BASE = ORIGIN + "/collection/v1"
NATIONAL_ID = "01017012345"  # a fake Norwegian national identity number: personal data

ORG = "org-1"
INVOICE_JSON: dict[str, Any] = {
    "id": "inv-1",
    "invoiceNumber": "INV-1",
    "status": "OPEN",
    "type": "PAYMENT_REMINDER",
    "createdAt": "2024-01-15T10:00:00Z",
    "originalInvoiceAmount": 4500.10,
    "currency": "NOK",
    "claims": [{"type": "PRINCIPAL", "originalAmount": 4500.10}],
}
BATCH_JSON: dict[str, Any] = {"batchId": "b-1", "status": "SUCCESS", "type": "INVOICE"}
BATCH_REF = {"summary": {"status": "SUCCESS"}, "data": {"batchId": "b-9", "batchUrl": "u"}}
CASE_JSON: dict[str, Any] = {"caseId": "c-1", "status": "OPEN", "caseNumber": "5000001"}
SETTLEMENT_JSON: dict[str, Any] = {"settlementId": "s-1", "amount": 120.5, "currency": "NOK"}
DAY = dt.date(2024, 1, 15)
MIDNIGHT = dt.datetime(2024, 1, 15, tzinfo=dt.UTC)


def new_invoice() -> models.NewInvoice:
    return models.NewInvoice(
        type=models.InvoiceType.PAYMENT_REMINDER,
        invoice_number="INV-1",
        original_invoice_amount=Decimal("4500.10"),
        currency="NOK",
        invoice_date=MIDNIGHT,
        due_date=dt.datetime(2024, 2, 15, 12, 30, tzinfo=dt.UTC),
        vat=False,
        unique_source_invoice_id="src-1",
        debtors=[
            models.Debtor(
                type=models.DebtorType.PRIVATE,
                firstname="Ola",
                identification_number=NATIONAL_ID,
                date_of_birth=dt.date(1970, 1, 1),
                emails=[models.Email(value="ola@example.invalid")],
            )
        ],
    )


NEW_INVOICE_WIRE: dict[str, Any] = {
    "type": "PAYMENT_REMINDER",
    "invoiceNumber": "INV-1",
    "originalInvoiceAmount": Decimal("4500.10"),
    "currency": "NOK",
    "invoiceDate": "2024-01-15T00:00:00Z",
    "dueDate": "2024-02-15T12:30:00Z",
    "vat": False,
    "uniqueSourceInvoiceId": "src-1",
    "debtors": [
        {
            "type": "PRIVATE",
            "firstname": "Ola",
            "identificationNumber": NATIONAL_ID,
            "dateOfBirth": "1970-01-01",
            "emails": [{"value": "ola@example.invalid"}],
        }
    ],
}


@attrs.frozen
class Op:
    """One SDK call and the request it must produce."""

    operation_id: str
    call: Callable[[AmiliClient, dict[str, Any]], Awaitable[Any]]
    method: str
    url: str
    """Expected URL without the query, as sent (percent-encoded)."""
    query: dict[str, str]
    body: Any
    """Expected JSON body, None for no body, or bytes that the (multipart) body must contain."""
    content_type: str | None
    status: int
    response: Any
    """JSON payload of the answer; None for an empty body."""
    check: Callable[[Any], None]


def is_invoice(result: Any) -> None:
    assert type(result) is models.Invoice
    assert result.id == "inv-1"
    assert result.status is models.InvoiceStatus.OPEN
    assert result.original_invoice_amount == Decimal("4500.10")
    assert result.created_at == dt.datetime(2024, 1, 15, 10, tzinfo=dt.UTC)
    assert result.claims is not None
    assert result.claims[0].type is models.ClaimType.PRINCIPAL


def is_batch_reference(result: Any) -> None:
    assert type(result) is models.BatchReference
    assert result.batch_id == "b-9"
    assert result.batch_url == "u"


def is_batch(result: Any) -> None:
    assert type(result) is models.Batch
    assert (result.batch_id, result.status) == ("b-1", models.BatchStatus.SUCCESS)


def is_none(result: Any) -> None:
    assert result is None


def each(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def check_all(result: Any) -> None:
        assert isinstance(result, list)
        assert len(result) == 1
        check(result[0])

    return check_all


def listing(item: dict[str, Any]) -> dict[str, Any]:
    return {"data": [item], "summary": {"status": "SUCCESS", "nextPageToken": None}}


def collected(pager: Any) -> Awaitable[list[Any]]:
    collect: Callable[[], Awaitable[list[Any]]] = pager.collect
    return collect()


def case_action(method_name: str, action: str, operation_id: str) -> list[Op]:
    """A case action with a reason (JSON body) and without one (no body)."""
    url = f"{BASE}/orgs/{ORG}/cases/c-1/{action}"

    def with_reason(c: AmiliClient, kw: dict[str, Any]) -> Awaitable[Any]:
        method = getattr(c.collections, method_name)
        result: Awaitable[Any] = method(ORG, "c-1", reason="debtor paid", **kw)
        return result

    def without(c: AmiliClient, kw: dict[str, Any]) -> Awaitable[Any]:
        result: Awaitable[Any] = getattr(c.collections, method_name)(ORG, "c-1", **kw)
        return result

    common = {"operation_id": operation_id, "method": "POST", "url": url, "query": {}}
    return [
        Op(
            call=with_reason,
            body={"reason": "debtor paid"},
            content_type="application/json",
            status=202,
            response=None,
            check=is_none,
            **common,
        ),
        Op(
            call=without,
            body=None,
            content_type=None,
            status=202,
            response=None,
            check=is_none,
            **common,
        ),
    ]


def check_list(cls: type, key: str, value: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert [type(x) for x in result] == [cls]
        assert getattr(result[0], key) == value

    return check


def check_model(cls: type, **fields: Any) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert type(result) is cls
        for name, value in fields.items():
            assert getattr(result, name) == value

    return check


LEGACY_BATCH = models.LegacyBatch(
    batchid="lb-1",
    offline=False,
    creditor=[models.LegacyCreditor(idnumber="123", fullname="Kreditor AS", vattype=1)],
)

OPS: list[Op] = [
    Op(
        "GetInvoiceById",
        lambda c, kw: c.invoices.get(ORG, "inv-1", **kw),
        "GET",
        f"{BASE}/orgs/{ORG}/invoices/inv-1",
        {},
        None,
        None,
        200,
        {"summary": {"status": "SUCCESS", "nextPageToken": None}, "data": INVOICE_JSON},
        is_invoice,
    ),
    Op(
        "CreateInvoices",
        lambda c, kw: c.invoices.create(ORG, [new_invoice()], **kw),
        "POST",
        f"{BASE}/orgs/{ORG}/invoices",
        {},
        {"invoices": [NEW_INVOICE_WIRE]},
        "application/json",
        202,
        BATCH_REF,
        is_batch_reference,
    ),
    Op(
        "GetInvoicesByOrganization",
        lambda c, kw: collected(
            c.invoices.list(
                ORG,
                status=models.InvoiceStatus.OPEN,
                type="NOTICE",
                invoice_number="INV-1",
                unique_source_invoice_id="src-1",
                customer_number="C 1/2",
                from_=MIDNIGHT,
                to=dt.datetime(2024, 2, 1, 6, 30, 15, 250000, tzinfo=dt.UTC),
                page_size=50,
                page_token="tok-1",
                **kw,
            )
        ),
        "GET",
        f"{BASE}/orgs/{ORG}/invoices",
        {
            "Status": "OPEN",
            "Type": "NOTICE",
            "InvoiceNumber": "INV-1",
            "UniqueSourceInvoiceId": "src-1",
            "CustomerNumber": "C 1/2",
            "From": "2024-01-15T00:00:00Z",
            "To": "2024-02-01T06:30:15.250Z",
            "PageSize": "50",
            "PageToken": "tok-1",
        },
        None,
        None,
        200,
        listing(INVOICE_JSON),
        each(is_invoice),
    ),
    Op(
        "CreatePayments",
        lambda c, kw: c.payments.create(
            ORG,
            [
                models.NewPayment(
                    invoice_id="inv-1",
                    type=models.PaymentType.DIRECT_PAYMENT,
                    amount=Decimal("100.50"),
                    currency="NOK",
                    payment_date=DAY,
                )
            ],
            **kw,
        ),
        "POST",
        f"{BASE}/orgs/{ORG}/payments",
        {},
        {
            "payments": [
                {
                    "invoiceId": "inv-1",
                    "type": "DIRECT_PAYMENT",
                    "amount": Decimal("100.50"),
                    "currency": "NOK",
                    "paymentDate": "2024-01-15",
                }
            ]
        },
        "application/json",
        202,
        BATCH_REF,
        is_batch_reference,
    ),
    Op(
        "CreateCorrections",
        lambda c, kw: c.corrections.create(
            ORG,
            [
                models.NewCorrection(
                    invoice_id="inv-1",
                    amount=Decimal("-50.25"),
                    currency="NOK",
                    date=MIDNIGHT,
                    description="credit note",
                )
            ],
            **kw,
        ),
        "POST",
        f"{BASE}/orgs/{ORG}/corrections",
        {},
        {
            "corrections": [
                {
                    "invoiceId": "inv-1",
                    "amount": Decimal("-50.25"),
                    "currency": "NOK",
                    "date": "2024-01-15T00:00:00Z",
                    "description": "credit note",
                }
            ]
        },
        "application/json",
        202,
        BATCH_REF,
        is_batch_reference,
    ),
    Op(
        "GetBatchesByOrganization",
        lambda c, kw: collected(
            c.batches.list(
                ORG,
                state=models.BatchStatus.PARTIAL,
                type=models.BatchType.PAYMENT,
                subject_id="inv-1",
                idempotency_key="key-1",
                sort_direction=models.SortDirection.DESC,
                page_size=10,
                page_token="tok-2",
                **kw,
            )
        ),
        "GET",
        f"{BASE}/orgs/{ORG}/batches",
        {
            "State": "PARTIAL",
            "Type": "PAYMENT",
            "SubjectId": "inv-1",
            "IdempotencyKey": "key-1",
            "SortDirection": "DESC",
            "PageSize": "10",
            "PageToken": "tok-2",
        },
        None,
        None,
        200,
        listing(BATCH_JSON),
        each(is_batch),
    ),
    Op(
        "GetBatchById",
        lambda c, kw: c.batches.get(ORG, "b-1", **kw),
        "GET",
        f"{BASE}/orgs/{ORG}/batches/b-1",
        {},
        None,
        None,
        200,
        {"data": BATCH_JSON},
        is_batch,
    ),
    Op(
        "GetBatchByIdLegacy",
        lambda c, kw: c.batches.get_legacy("b-1", **kw),
        "GET",
        f"{BASE}/batches/b-1",
        {},
        None,
        None,
        200,
        {"summary": {"status": "SUCCESS"}, "data": BATCH_JSON},
        is_batch,
    ),
    Op(
        "GetSettlements",
        lambda c, kw: collected(
            c.settlements.list(
                ORG,
                from_date=DAY,
                to_date=dt.date(2024, 2, 1),
                page_size=25,
                page_token="tok-3",
                **kw,
            )
        ),
        "GET",
        f"{BASE}/orgs/{ORG}/settlements",
        {"fromDate": "2024-01-15", "toDate": "2024-02-01", "pageSize": "25", "pageToken": "tok-3"},
        None,
        None,
        200,
        listing(SETTLEMENT_JSON),
        check_list(models.Settlement, "amount", Decimal("120.5")),
    ),
    Op(
        "GetSettlementOnId",
        lambda c, kw: c.settlements.get(ORG, "s-1", **kw),
        "GET",
        f"{BASE}/orgs/{ORG}/settlements/s-1",
        {},
        None,
        None,
        200,
        {"data": SETTLEMENT_JSON},
        check_model(models.Settlement, settlement_id="s-1", amount=Decimal("120.5")),
    ),
    Op(
        "GetCasesByOrganization",
        lambda c, kw: collected(
            c.collections.list_cases(
                ORG,
                status=models.CaseStatus.PAUSED,
                type=models.CaseType.COLLECTION_NOTICE,
                case_number="5000001",
                customer_number="C-1",
                unique_source_invoice_id="src-1",
                search_term="Nordmann & Co",
                from_created_at=MIDNIGHT,
                to_created_at=dt.datetime(2024, 1, 16, tzinfo=dt.UTC),
                page_size=5,
                page_token="tok-4",
                **kw,
            )
        ),
        "GET",
        f"{BASE}/orgs/{ORG}/cases",
        {
            "Status": "PAUSED",
            "Type": "COLLECTION_NOTICE",
            "CaseNumber": "5000001",
            "CustomerNumber": "C-1",
            "UniqueSourceInvoiceId": "src-1",
            "SearchTerm": "Nordmann & Co",
            "FromCreatedAt": "2024-01-15T00:00:00Z",
            "ToCreatedAt": "2024-01-16T00:00:00Z",
            "PageSize": "5",
            "PageToken": "tok-4",
        },
        None,
        None,
        200,
        listing(CASE_JSON),
        check_list(models.Case, "case_id", "c-1"),
    ),
    *case_action("pause_case", "pause", "PauseCase"),
    *case_action("resume_case", "resume", "ResumeCase"),
    *case_action("withdraw_case", "withdraw", "WithdrawCase"),
    *case_action("accept_eviction_request", "eviction-request/accept", "AcceptEvictionRequest"),
    *case_action("reject_eviction_request", "eviction-request/reject", "RejectEvictionRequest"),
    *case_action(
        "accept_eviction_confirmation", "eviction-confirmation/accept", "AcceptEvictionConfirmation"
    ),
    *case_action(
        "reject_eviction_confirmation", "eviction-confirmation/reject", "RejectEvictionConfirmation"
    ),
    Op(
        "AcceptDebtCollectionList",
        lambda c, kw: c.collections.accept_debt_collection_list(ORG, ["c-1", "c-2"], **kw),
        "POST",
        f"{BASE}/orgs/{ORG}/debt-collection-list/accept",
        {},
        {"caseIds": ["c-1", "c-2"]},
        "application/json",
        202,
        None,
        is_none,
    ),
    Op(
        "RejectDebtCollectionList",
        lambda c, kw: c.collections.reject_debt_collection_list(ORG, ("c-3",), **kw),
        "POST",
        f"{BASE}/orgs/{ORG}/debt-collection-list/reject",
        {},
        {"caseIds": ["c-3"]},
        "application/json",
        202,
        None,
        is_none,
    ),
    Op(
        "LegacyPing",
        lambda c, kw: c.legacy.ping(**kw),
        "GET",
        f"{ORIGIN}/webapi/api/Ping",
        {},
        None,
        None,
        200,
        {"message": "pong"},
        check_model(models.LegacyPingResponse, message="pong"),
    ),
    Op(
        "LegacyGetBatch",
        lambda c, kw: c.legacy.get_batch(
            sender_id="S1",
            creditor_id="CR1",
            customer_ref="cust",
            ledger_ref="led",
            include_closed=False,
            last_settlement_id="ls-1",
            remittance_date="2024-01-15",
            language_code="nb",
            **kw,
        ),
        "GET",
        f"{ORIGIN}/webapi/api/Batch",
        {
            "senderid": "S1",
            "creditorid": "CR1",
            "customerref": "cust",
            "ledgerref": "led",
            "includeclosed": "false",
            "lastsettlementid": "ls-1",
            "remittancedate": "2024-01-15",
            "languagecode": "nb",
        },
        None,
        None,
        200,
        {"batchid": "lb-1", "offline": True, "case": [CASE_JSON]},
        check_model(models.LegacyBatch, batchid="lb-1", offline=True),
    ),
    Op(
        "LegacyPostBatch",
        lambda c, kw: c.legacy.post_batch(LEGACY_BATCH, sender_id="S1", **kw),
        "POST",
        f"{ORIGIN}/webapi/api/Batch",
        {"senderid": "S1"},
        {
            "batchid": "lb-1",
            "offline": False,
            "creditor": [{"idnumber": "123", "fullname": "Kreditor AS", "vattype": 1}],
        },
        "application/json-patch+json",
        200,
        {"batchid": "lb-1"},
        check_model(models.LegacyBatch, batchid="lb-1"),
    ),
    Op(
        "LegacyUploadAttachment",
        lambda c, kw: c.legacy.upload_attachment(
            b"%PDF-1.7\x00\xff binary",
            filename="invoice.pdf",
            content_type="application/pdf",
            sender_id="S1",
            case_id="lc-1",
            **kw,
        ),
        "POST",
        f"{ORIGIN}/webapi/api/Attachment",
        {"senderid": "S1", "caseid": "lc-1"},
        b"%PDF-1.7\x00\xff binary",
        "multipart/form-data",
        200,
        {"attachmentid": "att-1"},
        check_model(models.LegacyAttachmentResponse, attachmentid="att-1"),
    ),
]
