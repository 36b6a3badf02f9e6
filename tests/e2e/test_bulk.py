"""Bulk writes through the real SDK and sandbox: create_many, reconciliation, batches.wait."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from amili_async import AmiliClient, UnprocessableEntityError, models
from amili_async.bulk import ItemResult
from amili_async.errors import BatchWaitTimeoutError
from amili_async.sandbox import FaultConfig, SandboxConfig, SandboxServer

from .conftest import connect, new_invoice, sandbox_invoice_count

SEEDED = 20
IDEMPOTENCY_HEADER = "IdempotencyKey"  # DESIGN.md: sent on every POST, same on retries
EARLY_DUE = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)  # before INVOICE_DATE: INVALID_DATES


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, batch_delay=0.01)


def bulk_input(n: int) -> tuple[list[models.NewInvoice], dict[int, str]]:
    """`n` invoices, some wrong on purpose; returns them and {index: expected failure code}."""
    invoices = [new_invoice(k) for k in range(n)]
    expected: dict[int, str] = {}
    for k in (5, 199, 200, 777, 1249):  # repeats an earlier item's source id (other chunks too)
        if k < n:
            invoices[k] = new_invoice(k, usid=f"e2e-src-{k - 5:06d}")
            expected[k] = "DUPLICATE"
    if n > 300:  # the source id of a seeded invoice
        invoices[300] = new_invoice(300, usid="erp-order-0000001")
        expected[300] = "DUPLICATE"
    for k in range(13, n, 97):
        if k not in expected:
            invoices[k] = new_invoice(k, amount="0")
            expected[k] = "INVALID_AMOUNT"
    for k in range(61, n, 211):
        if k not in expected:
            invoices[k] = new_invoice(k, due_date=EARLY_DUE)
            expected[k] = "INVALID_DATES"
    return invoices, expected


def check_results(
    results: list[ItemResult[Any]], items: list[Any], expected_failures: dict[int, str]
) -> None:
    assert [r.index for r in results] == list(range(len(items)))
    assert all(r.item is item for r, item in zip(results, items, strict=True))
    for result in results:
        if result.index in expected_failures:
            assert not result.ok, result.index
            assert result.failed is not None
            assert result.error is None
            assert result.failed.code == expected_failures[result.index]
            assert result.reason
            assert result.reason == result.failed.reason
            assert result.succeeded is None
        else:
            assert result.ok, (result.index, result.reason)
            assert result.reason is None
            assert result.failed is None
            assert result.succeeded is not None
            assert result.succeeded.invoice_id
            assert result.succeeded.case_id
            assert result.succeeded.invoice_number == result.item.invoice_number
        assert result.batch_id is not None


async def test_create_many_one_result_per_input_in_order(
    amili_client: AmiliClient, amili_sandbox: SandboxServer
) -> None:
    org = amili_sandbox.default_org_id
    invoices, expected = bulk_input(1250)
    assert len(expected) > 20
    posts: list[str] = []
    in_flight = max_in_flight = 0

    async def on_request(info: Any) -> None:
        nonlocal in_flight, max_in_flight
        if info.method == "POST":
            posts.append(info.headers[IDEMPOTENCY_HEADER])
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)

    async def on_response(response: Any) -> None:
        nonlocal in_flight
        in_flight -= response.method == "POST"

    async with connect(amili_sandbox, on_request=on_request, on_response=on_response) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                org, invoices, chunk_size=200, concurrency=3, poll_interval=0.01
            )
        ]

    check_results(results, invoices, expected)
    ok = [r for r in results if r.ok]
    assert len(ok) == 1250 - len(expected)
    assert len({r.succeeded.invoice_id for r in ok if r.succeeded}) == len(ok)
    assert len(posts) == len(set(posts)) == 7  # ceil(1250 / 200) chunks, one POST each
    assert max_in_flight <= 3
    assert len({r.batch_id for r in results}) == 7
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + len(ok)
    # What the results say was created is what the API lists.
    listed = await amili_client.invoices.list(org, page_size=1000).collect()
    created = [i for i in listed if i.invoice_number and i.invoice_number.startswith("E2E-")]
    assert len(listed) == SEEDED + len(created)
    assert {i.id for i in created} == {r.succeeded.invoice_id for r in ok if r.succeeded}
    sample = ok[500].succeeded
    assert sample is not None
    assert sample.invoice_id is not None
    invoice = await amili_client.invoices.get(org, sample.invoice_id)
    assert invoice.unique_source_invoice_id == ok[500].item.unique_source_invoice_id


async def test_create_many_from_an_async_generator(
    amili_client: AmiliClient, amili_sandbox: SandboxServer
) -> None:
    org = amili_sandbox.default_org_id
    invoices, expected = bulk_input(450)
    pulled = 0

    async def source() -> AsyncIterator[models.NewInvoice]:
        nonlocal pulled
        for invoice in invoices:
            pulled += 1
            yield invoice

    results = [
        r
        async for r in amili_client.invoices.create_many(
            org, source(), chunk_size=100, concurrency=2, poll_interval=0.01
        )
    ]

    assert pulled == 450
    check_results(results, invoices, expected)
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 450 - len(expected)


async def test_payments_and_corrections_create_many(
    amili_client: AmiliClient, amili_sandbox: SandboxServer
) -> None:
    org = amili_sandbox.default_org_id
    drafts = [new_invoice(k, amount="1000.00") for k in range(30)]
    created = [
        r
        async for r in amili_client.invoices.create_many(
            org, drafts, chunk_size=10, poll_interval=0.01
        )
    ]
    ids = [r.succeeded.invoice_id for r in created if r.succeeded and r.succeeded.invoice_id]
    assert len(ids) == 30

    def payment(invoice_id: str, amount: str) -> models.NewPayment:
        return models.NewPayment(
            invoice_id=invoice_id,
            type=models.PaymentType.DIRECT_PAYMENT,
            amount=Decimal(amount),
            currency="NOK",
        )

    payments = [payment(invoice_id, "250.35") for invoice_id in ids]
    payments[7] = payment("00000000-0000-4000-8000-000000000000", "10.00")
    payments[8] = payment(ids[8], "1000.01")
    results = [
        r
        async for r in amili_client.payments.create_many(
            org, payments, chunk_size=8, concurrency=2, poll_interval=0.01
        )
    ]

    assert [r.index for r in results] == list(range(30))
    assert [r.ok for r in results] == [k not in (7, 8) for k in range(30)]
    assert results[7].failed
    assert results[7].failed.code == "INVOICE_NOT_FOUND"
    assert results[8].failed
    assert results[8].failed.code == "AMOUNT_EXCEEDS_REMAINING"
    assert all(r.succeeded.payment_id for r in results if r.succeeded)
    paid = await amili_client.invoices.get(org, ids[0])
    assert paid.remaining_amount == Decimal("749.65")
    untouched = await amili_client.invoices.get(org, ids[8])
    assert untouched.remaining_amount == Decimal("1000.00")
    settlements = await amili_client.settlements.list(org).collect()
    assert len(settlements) == 28
    assert sum((s.amount or Decimal(0) for s in settlements), Decimal(0)) == Decimal("7009.80")

    corrections = [
        {"invoiceId": invoice_id, "amount": Decimal("100.10"), "currency": "NOK"}
        for invoice_id in ids[:5]
    ]
    corrected = [
        r
        async for r in amili_client.corrections.create_many(
            org, corrections, chunk_size=2, poll_interval=0.01
        )
    ]
    assert [r.ok for r in corrected] == [True] * 5
    assert all(r.succeeded and r.succeeded.correction_id for r in corrected)
    after = await amili_client.invoices.get(org, ids[0])
    assert after.credited_amount == Decimal("100.10")
    assert after.remaining_amount == Decimal("649.55")


async def test_an_item_a_422_names_fails_alone_and_its_chunk_is_resent(
    amili_client: AmiliClient, amili_sandbox: SandboxServer
) -> None:
    org = amili_sandbox.default_org_id
    invoices = [new_invoice(k) for k in range(30)]
    invoices[14] = new_invoice(14, amount="10.001")  # 3 decimals: the server refuses (422)

    results = [
        r
        async for r in amili_client.invoices.create_many(
            org, invoices, chunk_size=10, concurrency=3, poll_interval=0.01
        )
    ]

    assert [r.index for r in results] == list(range(30))
    assert [r.ok for r in results] == [k != 14 for k in range(30)]
    refused = results[14]
    assert isinstance(refused.error, UnprocessableEntityError)
    assert refused.batch_id is None
    assert refused.reason == "originalInvoiceAmount: The amount must have at most 2 decimal places."
    # The rest of its chunk went again as a new chunk, under a new key.
    assert {r.idempotency_key for r in results[10:20] if r.ok} != {refused.idempotency_key}
    assert len({r.batch_id for r in results[10:20] if r.ok}) == 1
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 29


def _fault_first_post_of_each_chunk(
    server: SandboxServer, kind: str, posts: list[str], lookups: list[str]
) -> Any:
    """An on_request hook: the first POST of every chunk (new idempotency key) meets `kind`.

    With concurrency=1 requests go one at a time, so the fault set here applies to exactly
    the request about to be sent.
    """
    faulty = FaultConfig(**{kind: 1.0})

    def hook(info: Any) -> None:
        if info.method == "POST":
            key = info.headers[IDEMPOTENCY_HEADER]
            server.set_faults(faulty if key not in posts else None)
            posts.append(key)
        else:
            server.set_faults(None)
            if info.url.endswith("/batches"):
                lookups.append(info.url)

    return hook


@pytest.mark.parametrize(
    ("kind", "posts_per_chunk"),
    [
        ("drop_after", 1),  # processed, answer lost: the lookup finds the batch, no resend
        ("drop_before", 2),  # never processed: the lookup finds nothing, the chunk is resent
    ],
)
async def test_unknown_post_outcome_is_reconciled(
    amili_sandbox: SandboxServer, kind: str, posts_per_chunk: int
) -> None:
    org = amili_sandbox.default_org_id
    invoices, expected = bulk_input(250)
    posts: list[str] = []
    lookups: list[str] = []
    hook = _fault_first_post_of_each_chunk(amili_sandbox, kind, posts, lookups)

    # max_retries=0: the transport gives up at once, so create_many must reconcile by itself.
    async with connect(amili_sandbox, max_retries=0, on_request=hook) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                org, invoices, chunk_size=50, concurrency=1, poll_interval=0.01
            )
        ]

    check_results(results, invoices, expected)
    assert len(posts) == 5 * posts_per_chunk
    assert len(set(posts)) == 5  # a resent chunk keeps its idempotency key
    assert len(lookups) == 5  # one IdempotencyKey lookup per chunk
    assert len(amili_sandbox.state.default_org.batches) == 5
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 250 - len(expected)


async def test_post_drops_with_retries_create_nothing_twice(
    amili_sandbox: SandboxServer,
) -> None:
    """Connection drops on POSTs (after and before the commit), transport retries on."""
    org = amili_sandbox.default_org_id
    # Per POST attempt, in order (transport backoff makes each drop cost ~0.25-0.5 s): chunk 1
    # is processed but its answer lost, its retry dropped unprocessed, the next retry replayed;
    # chunk 2 is dropped unprocessed once; the rest go through.
    plan = itertools.chain(
        ["drop_after", "drop_before", None, "drop_before"], itertools.repeat(None)
    )
    faults = {
        "drop_after": FaultConfig(drop_after=1.0),
        "drop_before": FaultConfig(drop_before=1.0),
    }
    dropped: list[str] = []

    def hook(info: Any) -> None:
        kind = next(plan) if info.method == "POST" else None
        if kind:
            dropped.append(kind)
        amili_sandbox.set_faults(faults[kind] if kind else None)

    invoices = [new_invoice(k) for k in range(100)]
    invoices += [new_invoice(k) for k in range(0, 100, 10)]  # repeats: fail as DUPLICATE
    async with connect(amili_sandbox, max_retries=6, on_request=hook) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                org, invoices, chunk_size=50, concurrency=1, poll_interval=0.01
            )
        ]

    assert dropped == ["drop_after", "drop_before", "drop_before"]
    assert [r.ok for r in results] == [k < 100 for k in range(len(invoices))]
    assert all(r.failed and r.failed.code == "DUPLICATE" for r in results[100:])
    # Distinct inputs, each created exactly once whatever was dropped.
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 100
    assert len(amili_sandbox.state.default_org.batches) == 3


async def test_wait_times_out() -> None:
    config = SandboxConfig(invoices=0, batch_delay=30)
    async with SandboxServer(config) as server, connect(server) as client:
        org = server.default_org_id
        reference = await client.invoices.create(org, [new_invoice(1)])
        with pytest.raises(BatchWaitTimeoutError) as caught:
            await client.batches.wait(org, reference.batch_id, max_wait=0.2, poll_interval=0.02)
        assert caught.value.batch.batch_id == reference.batch_id
        assert caught.value.batch.status == models.BatchStatus.QUEUED

        # create_many reports the same timeout per item instead of raising, and keeps the id
        # of the batch it created, so the caller can wait again instead of resubmitting.
        results = [
            r
            async for r in client.invoices.create_many(
                org, [new_invoice(2), new_invoice(3)], max_wait=0.1, poll_interval=0.02
            )
        ]
        assert [r.ok for r in results] == [False, False]
        assert all(isinstance(r.error, BatchWaitTimeoutError) for r in results)
        assert all(r.reason and "QUEUED" in r.reason for r in results)
        batch_id = results[0].batch_id
        assert batch_id is not None
        assert results[1].batch_id == batch_id
        pending = await client.batches.get(org, batch_id)
        assert pending.status == models.BatchStatus.QUEUED
        assert len(server.state.default_org.batches) == 2
