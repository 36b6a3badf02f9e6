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
    LOOKUP_DELAYS,
    RECONCILE_ROUNDS,
    ItemResult,
    _Chunker,
    _map_results,
    _Refused,
    _Unknown,
    content_key,
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
    """`list(idempotency_key=...)` answers from `known`; records lookups.

    The first `failing` lookups raise, as a lookup during an outage would; `get` answers a
    finished batch with every item succeeded.
    """

    def __init__(
        self, known: dict[str, str] | None = None, *, appear_after: int = 0, failing: int = 0
    ) -> None:
        self.known = known or {}
        self.lookups: list[str] = []
        self.appear_after = appear_after
        self.failing = failing

    def list(self, organization_id: str, *, idempotency_key: str) -> Any:
        self.lookups.append(idempotency_key)
        visible = len(self.lookups) > self.appear_after
        found = self.known.get(idempotency_key) if visible else None
        fails = len(self.lookups) <= self.failing

        class Pager:
            async def collect(self, limit: int) -> list[models.Batch]:
                if fails:
                    raise lost()
                if found is None:
                    return []
                return [
                    models.Batch(
                        batch_id=found,
                        status=models.BatchStatus.QUEUED,
                        idempotency_key=idempotency_key,
                    )
                ]

        return Pager()

    async def get(self, organization_id: str, batch_id: str) -> models.Batch:
        return models.Batch(
            batch_id=batch_id,
            status=models.BatchStatus.SUCCESS,
            succeeded=[models.BatchSucceededItem(index=0, invoice_id="i0")],
        )


class FakeSubmit:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        self.keys: list[str] = []

    async def __call__(self, chunk: list[Any], key: str) -> models.BatchReference:
        self.keys.append(key)
        if self.errors:
            raise self.errors.pop(0)
        return models.BatchReference(batch_id="created")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def chunker(batches: FakeBatches, submit: FakeSubmit, sleep: Sleeps | None = None) -> _Chunker:
    return _Chunker(
        batches,  # type: ignore[arg-type]
        "org",
        submit,
        max_wait=1,
        poll_interval=0.01,
        key_for=lambda start, chunk: f"key-{start}",
        sleep=sleep or Sleeps(),
    )


async def test_a_failing_lookup_is_retried_with_backoff_before_resending() -> None:
    sleeps = Sleeps()
    batches = FakeBatches({"k": "b-1"}, failing=2)
    submit = FakeSubmit([lost()])
    assert await chunker(batches, submit, sleeps)._submit_once([1], "k") == "b-1"
    assert submit.keys == ["k"]  # found on the third lookup: never sent again
    assert sleeps.delays == list(LOOKUP_DELAYS[:2])


async def test_a_created_chunk_whose_lookups_all_fail_is_unknown_not_failed() -> None:
    batches = FakeBatches({"key-0": "b-1"}, failing=len(LOOKUP_DELAYS) + 1)
    submit = FakeSubmit([lost()])
    results = await chunker(batches, submit).run(0, [{"a": 1}, {"a": 2}])
    assert [r.outcome for r in results] == ["unknown", "unknown"]
    assert not any(r.ok for r in results)
    assert {r.idempotency_key for r in results} == {"key-0"}
    assert all(isinstance(r.error, APIConnectionError) for r in results)
    assert submit.keys == ["key-0"]  # not resent while its fate was unknown


async def test_a_refused_chunk_fails_and_a_created_one_succeeds() -> None:
    refused = await chunker(FakeBatches(), FakeSubmit([status_error(BadRequestError, 400)])).run(
        0, [{"a": 1}]
    )
    assert [r.outcome for r in refused] == ["failed"]
    created = await chunker(FakeBatches(), FakeSubmit([])).run(5, [{"a": 1}])
    assert [(r.outcome, r.ok, r.batch_id, r.index) for r in created] == [
        ("succeeded", True, "created", 5)
    ]


def test_content_keys_are_stable_for_the_same_chunk_and_differ_otherwise() -> None:
    key = content_key("org-1/payments")
    chunk = [{"invoiceId": "i1", "amount": 10}]
    assert key(0, chunk) == key(0, [{"invoiceId": "i1", "amount": 10}])
    assert key(0, chunk) != key(500, chunk)
    assert key(0, chunk) != key(0, [{"invoiceId": "i1", "amount": 11}])
    assert key(0, chunk) != content_key("org-2/payments")(0, chunk)


def test_an_item_result_keeps_its_item_out_of_its_repr() -> None:
    result = ItemResult(0, {"identificationNumber": "01017012345"}, "succeeded", "k")
    assert "01017012345" not in repr(result)
    assert result.item["identificationNumber"] == "01017012345"


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
    with pytest.raises(_Unknown) as caught:
        await chunker(FakeBatches(), submit)._submit_once([1], "k")
    assert isinstance(caught.value.error, APIConnectionError)
    assert len(submit.keys) == RECONCILE_ROUNDS


async def test_a_refused_chunk_is_neither_looked_up_nor_resent() -> None:
    batches = FakeBatches({"k": "b-1"})
    submit = FakeSubmit([status_error(BadRequestError, 400)])
    with pytest.raises(_Refused) as caught:
        await chunker(batches, submit)._submit_once([1], "k")
    assert isinstance(caught.value.error, BadRequestError)
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
    results = _map_results(list(range(10, 10 + len(items))), items, batch, "key-1")
    assert [r.index for r in results] == [10, 11, 12]
    assert {r.idempotency_key for r in results} == {"key-1"}
    assert [r.outcome for r in results] == ["succeeded", "failed", "unknown"]
    assert results[0].ok
    assert results[0].succeeded is not None
    assert results[0].succeeded.case_id == "c0"
    assert not results[1].ok
    assert results[1].reason == "dup"
    assert not results[2].ok  # the batch says nothing of it: not reported as done, nor failed
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
