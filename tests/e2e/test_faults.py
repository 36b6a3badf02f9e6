"""Injected faults through the real SDK: retries hide them, or typed errors surface."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from amili_async import (
    AmiliClient,
    AmiliError,
    APIConnectionError,
    APIStatusError,
    AsyncPager,
    BadGatewayError,
    InternalServerError,
    RateLimitError,
    ResponseDecodeError,
    ServiceUnavailableError,
    models,
)
from amili_async.sandbox import FaultConfig, SandboxConfig, SandboxServer

from .conftest import connect, new_invoice, seeded_ids

SEEDED = 400
SEED = 1  # covers all eight fault kinds in 40 pages with little backoff


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, seed=3)


async def test_retries_hide_every_fault_kind(amili_sandbox: SandboxServer) -> None:
    org = amili_sandbox.default_org_id
    attempts: list[int] = []
    answers: list[tuple[int, str]] = []
    amili_sandbox.set_faults(
        FaultConfig(
            # 429/503 retry after Retry-After: 0; the others back off (~0.25 s each), so
            # keep their rates low enough for a fast suite.
            rate_429=0.10,
            rate_503=0.08,
            rate_500=0.03,
            rate_502=0.03,
            html=0.03,
            truncate=0.03,
            drop_before=0.03,
            drop_after=0.03,
            seed=SEED,
            retry_after=0,
        )
    )

    async with connect(
        amili_sandbox,
        max_retries=10,
        on_request=lambda info: attempts.append(info.attempt),
        on_response=lambda r: answers.append((r.status_code, r.headers.get("Content-Type", ""))),
    ) as client:
        ids = [i.id async for i in client.invoices.list(org, page_size=10)]

    assert ids == seeded_ids(amili_sandbox)  # every invoice exactly once, in order
    pages = SEEDED // 10
    assert attempts.count(1) == pages
    statuses = {status for status, _ in answers}
    assert {200, 429, 500, 502, 503} <= statuses, "every status fault must have been met"
    assert any(status == 502 and "html" in kind for status, kind in answers)
    assert len(attempts) > len(answers), "and so must connection faults (no answer)"


async def test_retry_after_is_honoured(amili_sandbox: SandboxServer) -> None:
    """A 429 with Retry-After: 1 makes the client wait that second, then succeed."""
    attempts: list[int] = []
    waits: list[float] = []

    def hook(info: Any) -> None:
        attempts.append(info.attempt)
        # The first attempt meets the 429; its retry goes through.
        amili_sandbox.set_faults(
            FaultConfig(rate_429=1.0, retry_after=1) if info.attempt == 1 else None
        )

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)  # counted, not timed: the wait the client chose
        await asyncio.sleep(0)

    async with connect(amili_sandbox, on_request=hook) as client:
        client._transport._sleep = recorded_sleep  # the transport's injected sleep
        # prefetch=0: only the page asked for is requested, so the attempts are countable.
        pager = client.invoices.list(amili_sandbox.default_org_id, prefetch=0)
        invoices = await pager.collect(limit=5)

    assert len(invoices) == 5
    assert attempts == [1, 2]
    assert waits == [1.0]


ERRORS: list[tuple[str, FaultConfig, tuple[type[AmiliError], ...]]] = [
    ("429", FaultConfig(rate_429=1.0, retry_after=7), (RateLimitError,)),
    ("503", FaultConfig(rate_503=1.0, retry_after=9), (ServiceUnavailableError,)),
    ("500", FaultConfig(rate_500=1.0), (InternalServerError,)),
    ("502", FaultConfig(rate_502=1.0), (BadGatewayError,)),
    ("html", FaultConfig(html=1.0), (BadGatewayError,)),
    ("drop_before", FaultConfig(drop_before=1.0), (APIConnectionError,)),
    ("drop_after", FaultConfig(drop_after=1.0), (APIConnectionError,)),
    ("truncate", FaultConfig(truncate=1.0), (ResponseDecodeError, APIConnectionError)),
]


@pytest.mark.parametrize(("kind", "faults", "expected"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_without_retries_the_typed_error_surfaces(
    amili_sandbox: SandboxServer,
    kind: str,
    faults: FaultConfig,
    expected: tuple[type[AmiliError], ...],
) -> None:
    org = amili_sandbox.default_org_id
    attempts: list[int] = []
    async with connect(
        amili_sandbox, max_retries=0, on_request=lambda info: attempts.append(info.attempt)
    ) as client:
        first = (await client.invoices.list(org, prefetch=0).collect(limit=1))[0]
        amili_sandbox.set_faults(faults)
        with pytest.raises(expected) as caught:
            await client.invoices.get(org, first.id)

        # The failure left the client usable: the broken connection is not reused.
        amili_sandbox.set_faults(None)
        assert await client.invoices.get(org, first.id) == first

    error = caught.value
    assert attempts == [1, 1, 1]  # no retry
    if kind in ("429", "503"):
        assert isinstance(error, RateLimitError | ServiceUnavailableError)
        assert error.retry_after == faults.retry_after
    if isinstance(error, APIStatusError):
        assert error.status_code == (int(kind) if kind.isdigit() else 502)
        assert error.request_id
    if kind == "html":
        assert isinstance(error, BadGatewayError)
        assert error.body is None  # not JSON
        assert "502 Bad Gateway" in error.text
        assert "<html>" not in str(error)  # the page stays out of the message
    if kind == "502":
        assert error.body["status"] == 502  # type: ignore[attr-defined]
    if not isinstance(error, APIStatusError):
        assert error.method == "GET"  # type: ignore[attr-defined]


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize(
    ("faults", "error_type"),
    [
        (FaultConfig(rate_500=1.0), InternalServerError),
        (FaultConfig(drop_before=1.0), APIConnectionError),
        (FaultConfig(html=1.0), BadGatewayError),
    ],
    ids=["500", "drop_before", "html"],
)
async def test_error_mid_listing_resumes_exactly(
    amili_sandbox: SandboxServer, prefetch: int, faults: FaultConfig, error_type: type[AmiliError]
) -> None:
    org = amili_sandbox.default_org_id
    gets = 0

    def fail_fourth_page(info: Any) -> None:
        nonlocal gets
        gets += 1
        amili_sandbox.set_faults(faults if gets == 4 else None)

    seen: list[str] = []

    async def consume(pager: AsyncPager[Any]) -> None:
        async for invoice in pager:
            seen.append(invoice.id)

    async with connect(amili_sandbox, max_retries=0, on_request=fail_fourth_page) as client:
        pager = client.invoices.list(org, status="OPEN", page_size=15, prefetch=prefetch)
        with pytest.raises(AmiliError) as caught:
            await consume(pager)
        assert type(caught.value) is error_type
        token = caught.value.resume_token
        assert token is not None
        assert len(seen) == 3 * 15  # the three pages before the failed one, nothing more

        rest = await client.invoices.list(
            org, status="OPEN", page_size=15, page_token=token, prefetch=prefetch
        ).collect()
        full = await client.invoices.list(org, status="OPEN", page_size=1000).collect()

    assert seen + [i.id for i in rest] == [i.id for i in full]


async def test_faults_on_the_token_endpoint_are_retried(amili_sandbox: SandboxServer) -> None:
    amili_sandbox.set_faults(FaultConfig(rate_503=0.5, retry_after=0, include_token=True, seed=5))
    async with connect(amili_sandbox, max_retries=8) as client:
        invoices = await client.invoices.list(amili_sandbox.default_org_id).collect()
    assert len(invoices) == SEEDED


async def _create_invoice(client: AmiliClient, server: SandboxServer) -> None:
    org = server.default_org_id
    reference = await client.invoices.create(org, [new_invoice(1)])
    batch = await client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    assert batch.status == "SUCCESS"
    assert [b.id for b in server.state.default_org.batches] == [reference.batch_id]
    assert server.state.default_org.invoice_count == SEEDED + 1


async def _pause(client: AmiliClient, server: SandboxServer) -> None:
    org = server.default_org_id
    case = (await client.collections.list_cases(org, status="OPEN").collect(limit=1))[0]
    await client.collections.pause_case(org, case.case_id, reason="retried")
    paused = await client.collections.list_cases(org, case_number=case.case_number).collect()
    assert paused[0].status == "PAUSED"


async def _accept_list(client: AmiliClient, server: SandboxServer) -> None:
    org = server.default_org_id
    cases = await client.collections.list_cases(org).collect()
    listed = [c.case_id for c in cases if c.sub_status == "DEBT_COLLECTION_LIST_MANUAL"]
    await client.collections.accept_debt_collection_list(org, listed)
    after = await client.collections.list_cases(org).collect()
    assert len(listed) > 1
    assert [c.sub_status for c in after if c.case_id in listed] == ["DEBT_COLLECTION"] * len(listed)


async def _legacy_batch(client: AmiliClient, server: SandboxServer) -> None:
    stored = await client.legacy.post_batch(models.LegacyBatch(offline=False), sender_id="s1")
    assert list(server.state.legacy_batches) == [stored.batchid]


async def _attachment(client: AmiliClient, server: SandboxServer) -> None:
    uploaded = await client.legacy.upload_attachment(b"%PDF-1.4", filename="a.pdf")
    assert list(server.state.attachments) == [uploaded.attachmentid]


@pytest.mark.parametrize(
    "operation", [_create_invoice, _pause, _accept_list, _legacy_batch, _attachment]
)
async def test_post_whose_answer_was_lost_is_retried_with_the_same_key(
    amili_sandbox: SandboxServer, operation: Callable[..., Awaitable[None]]
) -> None:
    """drop_after: the POST is processed, its answer lost; the retry replays, changes nothing.

    Every POST carries an IdempotencyKey, identical on retries (DESIGN.md), so a retried
    case action must not meet a 409 for its own first attempt, nor a legacy upload be stored
    twice.
    """
    keys: list[str] = []

    def hook(info: Any) -> None:
        if info.method == "POST":
            keys.append(info.headers["IdempotencyKey"])
        first_post = info.method == "POST" and len(keys) == 1
        amili_sandbox.set_faults(FaultConfig(drop_after=1.0) if first_post else None)

    async with connect(amili_sandbox, on_request=hook) as client:
        await operation(client, amili_sandbox)

    assert len(keys) == 2  # the first attempt's answer was lost, so it was retried once
    assert keys[0] == keys[1]
