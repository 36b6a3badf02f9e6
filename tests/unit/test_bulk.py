"""bulk.py with fakes: chunk reconciliation by idempotency key, batch waiting, result mapping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from amili_async import (
    APIConnectionError,
    BadRequestError,
    BatchWaitTimeoutError,
    InternalServerError,
    models,
)
from amili_async.bulk import (
    DEFAULT_CONCURRENCY,
    RECONCILE_ROUNDS,
    _Chunker,
    _map_results,
    submit_chunks,
)
from amili_async.resources.batches import wait_for_batch


def lost() -> APIConnectionError:
    return APIConnectionError("POST lost", method="POST", url="https://x.invalid/a")


def status_error(cls: type[Any], code: int) -> Any:
    return cls(
        "x", status_code=code, headers={}, body=None, text="", method="POST", url="https://x"
    )


class FakeBatches:
    """`list(idempotency_key=...)` answers from `known`; records lookups."""

    def __init__(self, known: dict[str, str] | None = None, *, appear_after: int = 0) -> None:
        self.known = known or {}
        self.lookups: list[str] = []
        self.appear_after = appear_after

    def list(self, organization_id: str, *, idempotency_key: str) -> Any:
        self.lookups.append(idempotency_key)
        visible = len(self.lookups) > self.appear_after
        found = self.known.get(idempotency_key) if visible else None

        class Pager:
            async def collect(self, limit: int) -> list[models.Batch]:
                if found is None:
                    return []
                return [models.Batch(batch_id=found, status=models.BatchStatus.QUEUED)]

        return Pager()


class FakeSubmit:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        self.keys: list[str] = []

    async def __call__(self, chunk: list[Any], key: str) -> models.BatchReference:
        self.keys.append(key)
        if self.errors:
            raise self.errors.pop(0)
        return models.BatchReference(batch_id="created")


def chunker(batches: FakeBatches, submit: FakeSubmit) -> _Chunker:
    return _Chunker(batches, "org", submit, max_wait=1, poll_interval=0.01)  # type: ignore[arg-type]


async def test_a_lost_post_is_found_by_its_key_and_not_sent_again() -> None:
    batches = FakeBatches({"k": "b-1"})
    submit = FakeSubmit([lost()])
    assert await chunker(batches, submit)._submit_once([1], "k") == "b-1"
    assert submit.keys == ["k"]
    assert batches.lookups == ["k"]


async def test_not_found_is_resent_with_the_same_key() -> None:
    batches = FakeBatches()
    submit = FakeSubmit([lost(), status_error(InternalServerError, 500)])
    assert await chunker(batches, submit)._submit_once([1], "k") == "created"
    assert submit.keys == ["k", "k", "k"]
    assert batches.lookups == ["k", "k"]


async def test_the_last_unknown_outcome_is_looked_up_too() -> None:
    batches = FakeBatches({"k": "b-9"}, appear_after=RECONCILE_ROUNDS - 1)
    submit = FakeSubmit([lost()] * RECONCILE_ROUNDS)
    assert await chunker(batches, submit)._submit_once([1], "k") == "b-9"
    assert len(submit.keys) == RECONCILE_ROUNDS


async def test_giving_up_raises_the_last_error() -> None:
    submit = FakeSubmit([lost()] * RECONCILE_ROUNDS)
    with pytest.raises(APIConnectionError):
        await chunker(FakeBatches(), submit)._submit_once([1], "k")
    assert len(submit.keys) == RECONCILE_ROUNDS


async def test_a_refused_chunk_is_neither_looked_up_nor_resent() -> None:
    batches = FakeBatches({"k": "b-1"})
    submit = FakeSubmit([status_error(BadRequestError, 400)])
    with pytest.raises(BadRequestError):
        await chunker(batches, submit)._submit_once([1], "k")
    assert submit.keys == ["k"]
    assert batches.lookups == []


async def test_wait_polls_with_growing_intervals_until_finished() -> None:
    states = iter(["QUEUED", "QUEUED", "QUEUED", "PARTIAL"])
    slept: list[float] = []

    async def fetch() -> models.Batch:
        return models.Batch(batch_id="b", status=models.BatchStatus(next(states)))

    async def sleep(delay: float) -> None:
        slept.append(delay)

    batch = await wait_for_batch(fetch, max_wait=None, poll_interval=0.2, sleep=sleep)
    assert batch.status is models.BatchStatus.PARTIAL
    assert slept == pytest.approx([0.2, 0.3, 0.45])


async def test_an_unknown_status_is_waited_on_until_the_timeout() -> None:
    now = [0.0]

    async def fetch() -> models.Batch:
        return models.Batch(batch_id="b", status=models.BatchStatus("PROCESSING"))

    async def sleep(delay: float) -> None:
        now[0] += delay

    with pytest.raises(BatchWaitTimeoutError) as caught:
        await wait_for_batch(fetch, max_wait=3, poll_interval=1, sleep=sleep, clock=lambda: now[0])
    assert caught.value.batch.status == "PROCESSING"
    assert now[0] == pytest.approx(3)


def test_results_pair_by_index_then_by_source_id_and_never_invent_success() -> None:
    batch = models.Batch(
        batch_id="b",
        status=models.BatchStatus.PARTIAL,
        succeeded=[models.BatchSucceededItem(index=0, invoice_id="i0", case_id="c0")],
        failed=[
            models.BatchFailedItem(unique_source_invoice_id="u1", code="DUPLICATE", reason="dup")
        ],
    )
    items = [{"uniqueSourceInvoiceId": "u0"}, {"uniqueSourceInvoiceId": "u1"}, {"x": 1}]
    results = _map_results(10, items, batch)
    assert [r.index for r in results] == [10, 11, 12]
    assert results[0].ok
    assert results[0].succeeded is not None
    assert results[0].succeeded.case_id == "c0"
    assert not results[1].ok
    assert results[1].reason == "dup"
    assert not results[2].ok  # the batch says nothing of it: not reported as done
    assert results[2].error is not None


async def test_cancelling_the_consumer_cancels_the_chunks_and_propagates() -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def submit(chunk: list[Any], key: str) -> models.BatchReference:
        started.set()
        try:
            await asyncio.Event().wait()  # a POST that never answers
        except asyncio.CancelledError:
            cancelled.append(key)
            raise
        raise AssertionError("unreachable")

    async def consume() -> None:
        async for _ in submit_chunks(FakeBatches(), "org", submit, range(10), chunk_size=2):  # type: ignore[arg-type]
            pass

    before = asyncio.all_tasks()
    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 2)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consumer, 2)
    assert len(cancelled) == DEFAULT_CONCURRENCY  # every chunk in flight was stopped
    assert asyncio.all_tasks() == before
