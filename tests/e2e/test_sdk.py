"""Every SDK operation, through the real client, against the real sandbox over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from amili_async import (
    AmiliClient,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    models,
)
from amili_async.sandbox import FaultConfig, SandboxConfig, SandboxServer

from .conftest import connect, created_invoice, new_invoice, sandbox_invoice_count, seeded_ids

SEEDED = 300

Status = models.InvoiceStatus
Sub = models.CaseSubStatus


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, seed=7, batch_delay=0.02)


@pytest.fixture
def org(amili_sandbox: SandboxServer) -> str:
    return amili_sandbox.default_org_id


async def all_invoices(client: AmiliClient, org: str) -> list[models.Invoice]:
    return await client.invoices.list(org, page_size=1000).collect()


# --------------------------------------------------------------------------- invoices: read


async def test_get_returns_what_the_listing_shows(amili_client: AmiliClient, org: str) -> None:
    listed = await amili_client.invoices.list(org, page_size=20).collect(limit=20)
    assert len(listed) == 20
    for invoice in listed[::5]:
        fetched = await amili_client.invoices.get(org, invoice.id)
        assert fetched == invoice
        assert isinstance(fetched.remaining_amount, Decimal)
        assert fetched.organization is not None
        assert fetched.organization.id == org


def _window(everything: list[models.Invoice]) -> tuple[dict[str, Any], Callable[..., bool]]:
    start, end = everything[40].created_at, everything[90].created_at
    assert start is not None
    assert end is not None

    def inside(invoice: models.Invoice) -> bool:
        assert invoice.created_at is not None
        return start <= invoice.created_at < end

    return {"from_": start, "to": end}, inside


def _customer(invoice: models.Invoice) -> str:
    assert invoice.debtors
    number = invoice.debtors[0].customer_number
    assert number is not None
    return number


FILTERS: dict[str, Callable[[list[models.Invoice]], tuple[dict[str, Any], Callable[..., bool]]]] = {
    "status": lambda _: ({"status": Status.PAUSED}, lambda i: i.status == Status.PAUSED),
    "status_str": lambda _: ({"status": "CLOSED"}, lambda i: i.status == Status.CLOSED),
    "type": lambda _: (
        {"type": models.InvoiceType.PAYMENT_REMINDER},
        lambda i: i.type == models.InvoiceType.PAYMENT_REMINDER,
    ),
    "invoice_number": lambda e: (
        {"invoice_number": e[123].invoice_number},
        lambda i: i.invoice_number == e[123].invoice_number,
    ),
    "unique_source_invoice_id": lambda e: (
        {"unique_source_invoice_id": e[77].unique_source_invoice_id},
        lambda i: i.unique_source_invoice_id == e[77].unique_source_invoice_id,
    ),
    "customer_number": lambda e: (
        {"customer_number": _customer(e[200])},
        lambda i: _customer(i) == _customer(e[200]),
    ),
    "from_to": _window,
    "status_and_type": lambda _: (
        {"status": "OPEN", "type": "NOTICE"},
        lambda i: i.status == Status.OPEN and i.type == models.InvoiceType.NOTICE,
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
async def test_list_filter(amili_client: AmiliClient, org: str, name: str) -> None:
    everything = await all_invoices(amili_client, org)
    kwargs, matches = FILTERS[name](everything)
    expected = [invoice.id for invoice in everything if matches(invoice)]
    assert 0 < len(expected) < len(everything), "the filter must select a proper subset"

    got = [i.id for i in await amili_client.invoices.list(org, page_size=7, **kwargs).collect()]

    assert got == expected  # same items, same (createdAt, id) order, filters kept on every page


async def test_from_is_inclusive_and_to_exclusive(amili_client: AmiliClient, org: str) -> None:
    everything = await all_invoices(amili_client, org)
    got = await amili_client.invoices.list(
        org, from_=everything[40].created_at, to=everything[90].created_at
    ).collect()
    assert [i.id for i in got] == [i.id for i in everything[40:90]]


async def test_page_size_and_exactly_once(
    amili_client: AmiliClient, amili_sandbox: SandboxServer, org: str
) -> None:
    sizes: list[int] = []
    ids: list[str] = []
    async for page in amili_client.invoices.list(org, page_size=7).pages():
        sizes.append(len(page.items))
        ids.extend(invoice.id for invoice in page.items)

    assert sizes == [7] * (SEEDED // 7) + [SEEDED % 7]
    assert ids == seeded_ids(amili_sandbox)  # every invoice once, in listing order


async def test_partitions_yield_the_sequential_set(amili_client: AmiliClient, org: str) -> None:
    everything = await all_invoices(amili_client, org)
    start = everything[0].created_at
    assert start is not None
    assert everything[50].created_at is not None
    # The first partition boundary falls exactly on invoice 50's createdAt.
    end = start + 4 * (everything[50].created_at - start)

    sequential = await amili_client.invoices.list(org, from_=start, to=end).collect()
    partitioned = await amili_client.invoices.list(
        org, from_=start, to=end, partitions=4, page_size=9
    ).collect()

    ids = [i.id for i in partitioned]
    assert len(ids) == len(set(ids)), "an invoice was yielded twice"
    assert set(ids) == {i.id for i in sequential}
    assert 150 < len(sequential) < SEEDED
    assert everything[50].id in ids


async def test_page_token_resumes_through_the_server(amili_client: AmiliClient, org: str) -> None:
    full = [i.id for i in await amili_client.invoices.list(org, status="OPEN").collect()]
    seen: list[str] = []
    token = None
    async for page in amili_client.invoices.list(org, status="OPEN", page_size=25).pages():
        seen.extend(i.id for i in page.items)
        token = page.next_page_token
        if len(seen) >= 50:
            break
    assert token is not None

    rest = await amili_client.invoices.list(
        org, status="OPEN", page_size=25, page_token=token
    ).collect()

    assert seen + [i.id for i in rest] == full


# --------------------------------------------------------------------------- invoices: write


async def test_create_wait_get(
    amili_client: AmiliClient, amili_sandbox: SandboxServer, org: str
) -> None:
    draft = new_invoice(1, amount="4500.10", customer_number="C-777")

    reference = await amili_client.invoices.create(org, [draft])
    assert reference.batch_url is not None
    assert reference.batch_url.endswith(reference.batch_id)
    batch = await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)

    assert batch.status == models.BatchStatus.SUCCESS
    assert batch.type == models.BatchType.INVOICE
    assert batch.failed == []
    assert batch.succeeded is not None
    assert len(batch.succeeded) == 1
    item = batch.succeeded[0]
    assert item.index == 0
    assert item.invoice_id
    assert item.case_id
    assert item.unique_source_invoice_id == draft.unique_source_invoice_id

    invoice = await amili_client.invoices.get(org, item.invoice_id)
    assert invoice.invoice_number == draft.invoice_number
    assert invoice.unique_source_invoice_id == draft.unique_source_invoice_id
    assert invoice.status == Status.OPEN
    assert invoice.original_invoice_amount == Decimal("4500.10")
    assert invoice.remaining_amount == Decimal("4500.10")
    assert invoice.invoice_date == draft.invoice_date
    assert invoice.due_date == draft.due_date
    assert _customer(invoice) == "C-777"
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 1

    cases = await amili_client.collections.list_cases(
        org, unique_source_invoice_id=draft.unique_source_invoice_id
    ).collect()
    assert [c.case_id for c in cases] == [item.case_id]
    listed = await amili_client.invoices.list(
        org, unique_source_invoice_id=draft.unique_source_invoice_id
    ).collect()
    assert listed == [invoice]


async def test_create_accepts_wire_shaped_dicts(amili_client: AmiliClient, org: str) -> None:
    row = {
        "type": "NOTICE",
        "invoiceNumber": "DICT-1",
        "originalInvoiceAmount": Decimal("199.99"),  # a Decimal, as in a model
        "currency": "NOK",
        "invoiceDate": "2024-05-01T00:00:00Z",
        "dueDate": "2024-05-20T00:00:00Z",
        "uniqueSourceInvoiceId": "dict-1",
    }
    reference = await amili_client.invoices.create(org, [row])
    batch = await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    assert batch.succeeded
    assert batch.succeeded[0].invoice_id
    invoice = await amili_client.invoices.get(org, batch.succeeded[0].invoice_id)
    assert invoice.original_invoice_amount == Decimal("199.99")


async def test_payment_changes_remaining_amount_exactly(
    amili_client: AmiliClient, org: str
) -> None:
    _, invoice = await created_invoice(amili_client, org, new_invoice(2, amount="4500.10"))
    payment = models.NewPayment(
        invoice_id=invoice.id,
        type=models.PaymentType.DIRECT_PAYMENT,
        amount=Decimal("1000.05"),
        currency="NOK",
        payment_date=dt.date(2024, 6, 3),
        reference="bank-ref-1",
    )

    reference = await amili_client.payments.create(org, [payment])
    batch = await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)

    assert batch.status == models.BatchStatus.SUCCESS
    assert batch.type == models.BatchType.PAYMENT
    assert batch.subject_id == invoice.id
    assert batch.succeeded
    assert batch.succeeded[0].payment_id
    paid = await amili_client.invoices.get(org, invoice.id)
    assert paid.remaining_amount == Decimal("3500.05")
    assert str(paid.remaining_amount) == "3500.05"
    assert paid.paid_amount == Decimal("1000.05")
    assert invoice.remaining_amount is not None
    assert paid.remaining_amount == invoice.remaining_amount - payment.amount
    assert paid.status == Status.OPEN

    settlements = await amili_client.settlements.list(org).collect()
    mine = [s for s in settlements if s.invoice_id == invoice.id]
    assert len(mine) == 1
    settlement = mine[0]
    assert settlement.amount == Decimal("1000.05")
    assert settlement.settlement_date == dt.date(2024, 6, 3)
    assert settlement.invoice_number == invoice.invoice_number
    assert settlement.settlement_id is not None
    assert await amili_client.settlements.get(org, settlement.settlement_id) == settlement

    in_window = await amili_client.settlements.list(
        org, from_date=dt.date(2024, 6, 3), to_date=dt.date(2024, 6, 4)
    ).collect()
    after_window = await amili_client.settlements.list(org, from_date=dt.date(2024, 6, 4)).collect()
    assert settlement in in_window
    assert settlement not in after_window

    # Paying the rest closes the invoice; one more payment is refused per item.
    rest = models.NewPayment(
        invoice_id=invoice.id,
        type=models.PaymentType.DIRECT_PAYMENT,
        amount=Decimal("3500.05"),
        currency="NOK",
    )
    reference = await amili_client.payments.create(org, [rest])
    await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    closed = await amili_client.invoices.get(org, invoice.id)
    assert closed.remaining_amount == Decimal("0.00")
    assert closed.status == Status.CLOSED
    reference = await amili_client.payments.create(org, [rest])
    refused = await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    assert refused.status == models.BatchStatus.FAILED
    assert refused.failed
    assert refused.failed[0].code == "INVOICE_CLOSED"


async def test_correction_changes_credited_amount(amili_client: AmiliClient, org: str) -> None:
    _, invoice = await created_invoice(amili_client, org, new_invoice(3, amount="4500.10"))
    correction = models.NewCorrection(
        invoice_id=invoice.id,
        amount=Decimal("500.25"),
        currency="NOK",
        date=dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
        description="Kreditnota",
    )

    reference = await amili_client.corrections.create(org, [correction])
    batch = await amili_client.batches.wait(org, reference.batch_id, poll_interval=0.01)

    assert batch.status == models.BatchStatus.SUCCESS
    assert batch.type == models.BatchType.CORRECTION
    assert batch.succeeded
    assert batch.succeeded[0].correction_id
    credited = await amili_client.invoices.get(org, invoice.id)
    assert credited.credited_amount == Decimal("500.25")
    assert credited.remaining_amount == Decimal("3999.85")
    assert credited.paid_amount == Decimal("0.00")
    # A correction is no payment: no settlement.
    settlements = await amili_client.settlements.list(org).collect()
    assert all(s.invoice_id != invoice.id for s in settlements)


# --------------------------------------------------------------------------- batches


async def test_batches_get_legacy_and_list(amili_client: AmiliClient, org: str) -> None:
    key = f"e2e-{uuid.uuid4()}"
    ok_ref = await amili_client.invoices.create(org, [new_invoice(10)], idempotency_key=key)
    bad_ref = await amili_client.invoices.create(org, [new_invoice(11, amount="0")])
    ok = await amili_client.batches.wait(org, ok_ref.batch_id, poll_interval=0.01)
    bad = await amili_client.batches.wait(org, bad_ref.batch_id, poll_interval=0.01)
    assert ok.status == models.BatchStatus.SUCCESS
    assert bad.status == models.BatchStatus.FAILED
    assert bad.failed
    assert bad.failed[0].code == "INVALID_AMOUNT"
    assert bad.failed[0].reason

    assert await amili_client.batches.get(org, ok.batch_id) == ok
    assert await amili_client.batches.get_legacy(ok.batch_id) == ok
    assert ok.idempotency_key == key
    assert ok.organization_id == org

    found = await amili_client.batches.list(org, idempotency_key=key).collect()
    assert [b.batch_id for b in found] == [ok.batch_id]
    assert await amili_client.batches.list(org, idempotency_key="no-such-key").collect() == []

    ascending = await amili_client.batches.list(org, page_size=1).collect()
    assert [b.batch_id for b in ascending] == [ok.batch_id, bad.batch_id]
    descending = await amili_client.batches.list(org, sort_direction="DESC").collect()
    assert descending == ascending[::-1]
    failed = await amili_client.batches.list(org, state=models.BatchStatus.FAILED).collect()
    assert [b.batch_id for b in failed] == [bad.batch_id]
    assert await amili_client.batches.list(org, type="PAYMENT").collect() == []


async def test_idempotent_post_creates_once(
    amili_client: AmiliClient, amili_sandbox: SandboxServer, org: str
) -> None:
    key = str(uuid.uuid4())
    draft = new_invoice(20)

    first = await amili_client.invoices.create(org, [draft], idempotency_key=key)
    second = await amili_client.invoices.create(org, [draft], idempotency_key=key)
    await amili_client.batches.wait(org, first.batch_id, poll_interval=0.01)
    third = await amili_client.invoices.create(org, [draft], idempotency_key=key)

    assert first.batch_id == second.batch_id == third.batch_id
    assert len(await amili_client.batches.list(org).collect()) == 1
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 1
    same_source = await amili_client.invoices.list(
        org, unique_source_invoice_id=draft.unique_source_invoice_id
    ).collect()
    assert len(same_source) == 1
    # The same key with another body is a conflict, not a silent replay.
    with pytest.raises(ConflictError) as caught:
        await amili_client.invoices.create(org, [new_invoice(21)], idempotency_key=key)
    assert caught.value.status_code == 409


# --------------------------------------------------------------------------- collections


async def _case(client: AmiliClient, org: str, case: models.Case) -> models.Case:
    assert case.case_number is not None
    found = await client.collections.list_cases(org, case_number=case.case_number).collect()
    assert len(found) == 1
    assert found[0].case_id == case.case_id
    return found[0]


def _pick(cases: list[models.Case], status: Status | str, sub: Sub | None) -> list[models.Case]:
    return [c for c in cases if c.status == status and c.sub_status == sub]


# action, (status, sub-status) required, (status, sub-status) after
CASE_ACTIONS: list[tuple[str, tuple[Status, Sub | None], tuple[Status, Sub | None]]] = [
    ("pause_case", (Status.OPEN, None), (Status.PAUSED, None)),
    ("resume_case", (Status.PAUSED, None), (Status.OPEN, None)),
    ("withdraw_case", (Status.OPEN, None), (Status.WITHDRAWN, None)),
    ("withdraw_case", (Status.PAUSED, None), (Status.WITHDRAWN, None)),
    (
        "accept_debt_collection_list",
        (Status.OPEN, Sub.DEBT_COLLECTION_LIST_MANUAL),
        (Status.OPEN, Sub.DEBT_COLLECTION),
    ),
    (
        "reject_debt_collection_list",
        (Status.OPEN, Sub.DEBT_COLLECTION_LIST_MANUAL),
        (Status.OPEN, None),
    ),
    (
        "accept_eviction_request",
        (Status.OPEN, Sub.EVICTION_REQUESTED),
        (Status.OPEN, Sub.EVICTION_CONFIRMATION_REQUESTED),
    ),
    ("reject_eviction_request", (Status.OPEN, Sub.EVICTION_REQUESTED), (Status.OPEN, None)),
    (
        "accept_eviction_confirmation",
        (Status.OPEN, Sub.EVICTION_CONFIRMATION_REQUESTED),
        (Status.OPEN, Sub.EVICTION_CONFIRMED),
    ),
    (
        "reject_eviction_confirmation",
        (Status.OPEN, Sub.EVICTION_CONFIRMATION_REQUESTED),
        (Status.OPEN, None),
    ),
]


async def _act(client: AmiliClient, action: str, org: str, case: models.Case) -> None:
    method = getattr(client.collections, action)
    if action.endswith("debt_collection_list"):
        await method(org, [case.case_id])
    else:
        await method(org, case.case_id, reason="e2e")


@pytest.mark.parametrize(("action", "before", "after"), CASE_ACTIONS)
async def test_case_action(
    amili_client: AmiliClient,
    org: str,
    action: str,
    before: tuple[Status, Sub | None],
    after: tuple[Status, Sub | None],
) -> None:
    cases = await amili_client.collections.list_cases(org, page_size=1000).collect()
    assert len(cases) == SEEDED
    target, bystander = _pick(cases, *before)[:2]

    await _act(amili_client, action, org, target)

    changed = await _case(amili_client, org, target)
    assert (changed.status, changed.sub_status) == after
    assert await _case(amili_client, org, bystander) == bystander
    # The same action again is no longer legal: 409, and nothing changes.
    with pytest.raises(ConflictError) as caught:
        await _act(amili_client, action, org, changed)
    assert caught.value.status_code == 409
    assert await _case(amili_client, org, target) == changed


ILLEGAL: list[tuple[str, tuple[Status, Sub | None]]] = [
    ("pause_case", (Status.PAUSED, None)),
    ("pause_case", (Status.CLOSED, None)),
    ("resume_case", (Status.OPEN, None)),
    ("withdraw_case", (Status.WITHDRAWN, None)),
    ("accept_debt_collection_list", (Status.OPEN, None)),
    ("reject_debt_collection_list", (Status.OPEN, Sub.EVICTION_REQUESTED)),
    ("accept_eviction_request", (Status.OPEN, Sub.DEBT_COLLECTION_LIST_MANUAL)),
    ("reject_eviction_request", (Status.OPEN, None)),
    ("accept_eviction_confirmation", (Status.OPEN, Sub.EVICTION_REQUESTED)),
    ("reject_eviction_confirmation", (Status.OPEN, Sub.DEBT_COLLECTION)),
]


@pytest.mark.parametrize(("action", "state"), ILLEGAL)
async def test_illegal_case_action_is_a_conflict(
    amili_client: AmiliClient, org: str, action: str, state: tuple[Status, Sub | None]
) -> None:
    cases = await amili_client.collections.list_cases(org, page_size=1000).collect()
    target = _pick(cases, *state)[0]

    with pytest.raises(ConflictError):
        await _act(amili_client, action, org, target)

    assert await _case(amili_client, org, target) == target


async def test_debt_collection_list_is_all_or_nothing(amili_client: AmiliClient, org: str) -> None:
    cases = await amili_client.collections.list_cases(org, page_size=1000).collect()
    listed = _pick(cases, Status.OPEN, Sub.DEBT_COLLECTION_LIST_MANUAL)[:2]
    plain = _pick(cases, Status.OPEN, None)[0]
    ids = [listed[0].case_id, plain.case_id, listed[1].case_id]

    with pytest.raises(ConflictError):
        await amili_client.collections.accept_debt_collection_list(org, ids)
    for case in listed:
        assert await _case(amili_client, org, case) == case

    await amili_client.collections.accept_debt_collection_list(org, [c.case_id for c in listed])
    for case in listed:
        assert (await _case(amili_client, org, case)).sub_status == Sub.DEBT_COLLECTION


async def test_list_cases_filters(amili_client: AmiliClient, org: str) -> None:
    cases = await amili_client.collections.list_cases(org, page_size=1000).collect()
    paused = await amili_client.collections.list_cases(org, status="PAUSED", page_size=5).collect()
    assert paused == [c for c in cases if c.status == Status.PAUSED]
    assert 0 < len(paused) < len(cases)

    case = cases[42]
    assert case.invoices
    assert case.debtors
    source = case.invoices[0].unique_source_invoice_id
    assert source is not None
    by_source = await amili_client.collections.list_cases(
        org, unique_source_invoice_id=source
    ).collect()
    assert by_source == [case]
    by_term = await amili_client.collections.list_cases(org, search_term=source).collect()
    assert by_term == [case]
    customer = case.debtors[0].customer_number
    by_customer = await amili_client.collections.list_cases(org, customer_number=customer).collect()
    assert case in by_customer
    assert all(c.debtors and c.debtors[0].customer_number == customer for c in by_customer)
    window = await amili_client.collections.list_cases(
        org, from_created_at=cases[10].registered_at, to_created_at=cases[20].registered_at
    ).collect()
    assert window == cases[10:20]


async def test_unknown_case_is_not_found(amili_client: AmiliClient, org: str) -> None:
    with pytest.raises(NotFoundError):
        await amili_client.collections.pause_case(org, str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await amili_client.collections.accept_debt_collection_list(org, [str(uuid.uuid4())])


# --------------------------------------------------------------------------- legacy


async def test_legacy_endpoints(
    amili_client: AmiliClient, amili_sandbox: SandboxServer, org: str
) -> None:
    pong = await amili_client.legacy.ping()
    assert pong.message == "pong"

    batch = await amili_client.legacy.get_batch()
    assert batch.creditor
    assert batch.creditor[0].fullname == "Nordlys Eiendom AS"
    assert batch.case
    assert all(c.status in (Status.OPEN, Status.PAUSED) for c in batch.case)
    with_closed = await amili_client.legacy.get_batch(include_closed=True)
    assert with_closed.case
    assert any(c.status == Status.CLOSED for c in with_closed.case)
    other = await amili_client.legacy.get_batch(creditor_id="987654325")
    assert [c.fullname for c in other.creditor or []] == ["Fjellheim Utleie AS"]
    assert other.case == []

    stored = await amili_client.legacy.post_batch(
        models.LegacyBatch(offline=True, creditor=[], case=[], settlement=[]), sender_id="erp-1"
    )
    assert stored.batchid is not None
    assert stored.offline is True
    assert stored.batchid in amili_sandbox.state.legacy_batches

    case_id = batch.case[0].case_id
    content = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3 faktura\n"
    uploaded = await amili_client.legacy.upload_attachment(
        content, filename="faktura.pdf", content_type="application/pdf", case_id=case_id
    )
    assert uploaded.attachmentid is not None
    saved = amili_sandbox.state.attachments[uploaded.attachmentid]
    assert saved["sha256"] == hashlib.sha256(content).hexdigest()
    assert (saved["filename"], saved["contentType"], saved["caseid"]) == (
        "faktura.pdf",
        "application/pdf",
        case_id,
    )
    with pytest.raises(NotFoundError):
        await amili_client.legacy.upload_attachment(
            content, filename="x.pdf", case_id=str(uuid.uuid4())
        )


# --------------------------------------------------------------------------- responses, errors


async def test_with_raw_response(amili_client: AmiliClient, org: str) -> None:
    first = (await amili_client.invoices.list(org).collect(limit=1))[0]

    raw = await amili_client.with_raw_response(amili_client.invoices.get(org, first.id))

    assert raw.data == first
    assert raw.status_code == 200
    assert raw.request_id is not None
    assert uuid.UUID(raw.request_id)
    assert raw.headers["X-Amili-Request-Id"] == raw.request_id
    created = await amili_client.with_raw_response(
        amili_client.invoices.create(org, [new_invoice(30)])
    )
    assert created.status_code == 202
    assert created.request_id


@pytest.mark.parametrize(
    "call",
    [
        lambda c, org: c.invoices.get(org, str(uuid.uuid4())),
        lambda c, org: c.batches.get(org, str(uuid.uuid4())),
        lambda c, org: c.batches.get_legacy(str(uuid.uuid4())),
        lambda c, org: c.settlements.get(org, str(uuid.uuid4())),
        lambda c, org: c.invoices.get(str(uuid.uuid4()), str(uuid.uuid4())),
    ],
    ids=["invoice", "batch", "batch_legacy", "settlement", "organization"],
)
async def test_unknown_ids_are_not_found(
    amili_client: AmiliClient, org: str, call: Callable[..., Any]
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await call(amili_client, org)
    assert caught.value.status_code == 404
    assert caught.value.request_id


async def test_restricted_client_is_denied(amili_sandbox: SandboxServer, org: str) -> None:
    async with connect(
        amili_sandbox,
        client_id=amili_sandbox.restricted_client_id,
        client_secret=amili_sandbox.restricted_client_secret,
    ) as restricted:
        with pytest.raises(PermissionDeniedError) as caught:
            await restricted.invoices.list(org).collect()
        assert caught.value.status_code == 403
        with pytest.raises(PermissionDeniedError):
            await restricted.invoices.create(org, [new_invoice(40)])
        with pytest.raises(PermissionDeniedError):
            await restricted.legacy.get_batch()
    assert sandbox_invoice_count(amili_sandbox) == SEEDED


async def test_wrong_credentials_raise_authentication_error(amili_sandbox: SandboxServer) -> None:
    secret = "definitely-not-the-secret-5f2b"
    async with connect(amili_sandbox, client_secret=secret) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.invoices.get(amili_sandbox.default_org_id, str(uuid.uuid4()))
    assert caught.value.status_code == 401
    assert secret not in str(caught.value)
    assert secret not in repr(client)


# --------------------------------------------------------------------------- tokens


async def test_expired_token_is_replaced_after_401(amili_sandbox: SandboxServer, org: str) -> None:
    tokens = [amili_sandbox.issue_token(lifetime=-10), amili_sandbox.issue_token()]
    handed_out: list[str] = []

    def provider() -> str:
        handed_out.append(tokens[len(handed_out)])
        return handed_out[-1]

    async with AmiliClient(token_provider=provider, base_url=amili_sandbox.base_url) as client:
        invoices = await client.invoices.list(org, page_size=5).collect(limit=12)

    assert len(invoices) == 12
    assert handed_out == tokens  # the expired one was rejected (401), the fresh one used after


async def test_token_expiring_mid_listing_is_refreshed() -> None:
    token_requests = 0

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        nonlocal token_requests
        token_requests += params.url.path == "/token"

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    # Tokens live one second; 50 pages at 30 ms take 1.5 s, so tokens expire mid-listing.
    config = SandboxConfig(invoices=150, token_lifetime=1, faults=FaultConfig(latency=0.03))
    async with SandboxServer(config) as server, connect(server, trace_configs=[trace]) as client:
        started = asyncio.get_running_loop().time()
        ids = [i.id async for i in client.invoices.list(server.default_org_id, page_size=3)]
        elapsed = asyncio.get_running_loop().time() - started

    assert ids == seeded_ids(server)
    assert elapsed > 1.0  # the listing really outlived a token
    assert token_requests >= 2
