"""bulk.py with fakes: chunk reconciliation by idempotency key, batch waiting, result mapping,
the item ledger; and bulk's place below the resources."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from amili_async import (
    APIConnectionError,
    BadRequestError,
    BatchWaitTimeoutError,
    InternalServerError,
    _serde,
    bulk,
    models,
)
from amili_async._ledger import LedgerEntry, item_keys
from amili_async.bulk import (
    DEFAULT_CONCURRENCY,
    LOOKUP_DELAYS,
    RECONCILE_ROUNDS,
    ItemResult,
    Ledger,
    LedgerError,
    _Chunk,
    _Chunker,
    _Entries,
    _Refused,
    _Unknown,
    content_key,
    submit_chunks,
)
from amili_async.resources.batches import wait_for_batch

from .test_layout import IMPORTS


def lost() -> APIConnectionError:
    return APIConnectionError("POST lost", method="POST", url="https://x.invalid/a")


def status_error(cls: type[Any], code: int) -> Any:
    return cls(
        "x", status_code=code, headers={}, body=None, text="", method="POST", url="https://x"
    )


class FakeBatches:
    """`find(key)` answers from `known`; records lookups.

    The first `failing` lookups raise, as a lookup during an outage would; `wait` answers a
    finished batch with every item succeeded.
    """

    def __init__(
        self, known: dict[str, str] | None = None, *, appear_after: int = 0, failing: int = 0
    ) -> None:
        self.known = known or {}
        self.lookups: list[str] = []
        self.appear_after = appear_after
        self.failing = failing

    async def find(self, idempotency_key: str) -> list[models.Batch]:
        self.lookups.append(idempotency_key)
        visible = len(self.lookups) > self.appear_after
        found = self.known.get(idempotency_key) if visible else None
        if len(self.lookups) <= self.failing:
            raise lost()
        if found is None:
            return []
        return [
            models.Batch(
                batch_id=found, status=models.BatchStatus.QUEUED, idempotency_key=idempotency_key
            )
        ]

    async def wait(self, batch_id: str) -> models.Batch:
        return models.Batch(
            batch_id=batch_id,
            status=models.BatchStatus.SUCCESS,
            succeeded=[models.BatchSucceededItem(index=0, invoice_id="i0")],
        )


class FakeSubmit:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        self.keys: list[str] = []

    async def __call__(self, chunk: list[Any], key: str) -> str:
        self.keys.append(key)
        if self.errors:
            raise self.errors.pop(0)
        return "created"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def chunker(batches: FakeBatches, submit: FakeSubmit, sleep: Sleeps | None = None) -> _Chunker:
    return _Chunker(
        submit,
        batches.wait,
        batches.find,
        key_for=lambda start, chunk: f"key-{start}",
        sleep=sleep or Sleeps(),
    )


def pending(start: int, items: list[Any]) -> _Chunk[Any]:
    return _Chunk.of(start, bulk.as_they_are(start, items), None)


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
    results = await chunker(batches, submit).run(pending(0, [{"a": 1}, {"a": 2}]))
    assert [r.outcome for r in results] == ["unknown", "unknown"]
    assert not any(r.ok for r in results)
    assert {r.idempotency_key for r in results} == {"key-0"}
    assert all(isinstance(r.error, APIConnectionError) for r in results)
    assert submit.keys == ["key-0"]  # not resent while its fate was unknown


async def test_a_refused_chunk_fails_and_a_created_one_succeeds() -> None:
    refused = await chunker(FakeBatches(), FakeSubmit([status_error(BadRequestError, 400)])).run(
        pending(0, [{"a": 1}])
    )
    assert [r.outcome for r in refused] == ["failed"]
    created = await chunker(FakeBatches(), FakeSubmit([])).run(pending(5, [{"a": 1}]))
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
    entries = _Entries.of(batch)
    results = [
        entries.result(offset, item, 10 + offset, "key-1") for offset, item in enumerate(items)
    ]
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

    async def submit(chunk: list[Any], key: str) -> str:
        started.set()
        try:
            await asyncio.Event().wait()  # a POST that never answers
        except asyncio.CancelledError:
            cancelled.append(key)
            raise
        raise AssertionError("unreachable")

    async def consume() -> None:
        batches = FakeBatches()
        chunks = submit_chunks(
            range(10), send=submit, wait=batches.wait, find=batches.find, chunk_size=2
        )
        async for _ in chunks:
            pass

    before = asyncio.all_tasks()
    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 2)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(consumer, 2)
    assert len(cancelled) == DEFAULT_CONCURRENCY  # every chunk in flight was stopped
    assert asyncio.all_tasks() == before


def test_bulk_imports_no_resource_module() -> None:
    # create_many lives on the resources and hands bulk plain callables.
    assert not {m for m in IMPORTS["amili_async.bulk"] if m.startswith("amili_async.resources")}
    assert "amili_async.bulk" in IMPORTS["amili_async.resources._writes"]


class FakeServer:
    """A server with idempotent chunks: a key seen before replays its batch (as Amili does);
    every item of a batch succeeds, with the item itself as its invoice id."""

    def __init__(self, *, lose_answers: int = 0) -> None:
        self.batches: dict[str, tuple[str, list[Any]]] = {}  # batch id -> (key, items)
        self.created: list[Any] = []  # every item ever created, in order
        self.lose_answers = lose_answers  # the first N POSTs are processed, their answer lost

    async def send(self, chunk: list[Any], key: str) -> str:
        for batch_id, (known, _) in self.batches.items():
            if known == key:
                return batch_id
        batch_id = f"b{len(self.batches)}"
        self.batches[batch_id] = (key, list(chunk))
        self.created += chunk
        if self.lose_answers:
            self.lose_answers -= 1
            raise lost()
        return batch_id

    async def wait(self, batch_id: str) -> models.Batch:
        key, items = self.batches[batch_id]
        succeeded = [
            models.BatchSucceededItem(index=i, invoice_id=str(v)) for i, v in enumerate(items)
        ]
        return models.Batch(
            batch_id=batch_id, status=models.BatchStatus.SUCCESS, idempotency_key=key,
            succeeded=succeeded,
        )  # fmt: skip

    async def find(self, key: str) -> list[models.Batch]:
        return [
            models.Batch(batch_id=b, status=models.BatchStatus.QUEUED, idempotency_key=k)
            for b, (k, _) in self.batches.items()
            if k == key
        ]

    async def submit(self, items: list[Any], ledger: Ledger | None, **options: Any) -> list[Any]:
        chunks = submit_chunks(
            items, send=self.send, wait=self.wait, find=self.find, ledger=ledger,
            namespace="org/payments", **options,
        )  # fmt: skip
        return [r async for r in chunks]


async def test_a_ledger_makes_a_rerun_in_another_order_and_chunking_create_nothing() -> None:
    server = FakeServer()
    ledger = Ledger()
    items = [f"item-{n}" for n in range(23)] + ["item-0"]  # a repeat is an item of its own
    first = await server.submit(items, ledger, chunk_size=5)
    assert all(r.ok and not r.already_done for r in first)
    assert sorted(server.created) == sorted(items)
    shuffled = items[::-1]
    again = await server.submit(shuffled, ledger, chunk_size=7, concurrency=2)
    assert sorted(server.created) == sorted(items)  # nothing created twice
    assert [r.item for r in again] == shuffled
    assert all(r.ok and r.already_done for r in again)
    assert [r.succeeded.invoice_id for r in again] == shuffled
    # A third identical item is new: the occurrence count keys it apart from the other two.
    third = await server.submit([*items, "item-0"], ledger, chunk_size=50)
    assert [r.already_done for r in third] == [True] * len(items) + [False]
    assert server.created.count("item-0") == 3


async def test_an_edited_item_alone_is_sent_again() -> None:
    server = FakeServer()
    ledger = Ledger()
    items = [f"item-{n}" for n in range(10)]
    await server.submit(items, ledger, chunk_size=4)
    edited = [*items[:6], "item-6-edited", *items[7:]]
    results = await server.submit(edited, ledger, chunk_size=4)
    assert [r.already_done for r in results] == [n != 6 for n in range(10)]
    assert server.created == [*items, "item-6-edited"]
    assert len(server.batches) == 4  # 3 chunks, then one chunk of the edited item alone


async def test_a_chunk_sent_without_an_answer_is_read_back_not_resent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first run's POST is processed but its answer is lost and its lookups fail: unknown.
    monkeypatch.setattr(bulk, "LOOKUP_DELAYS", ())  # one lookup, no backoff
    server = FakeServer(lose_answers=1)
    path = tmp_path / "payments.ledger.jsonl"
    failing_find = server.find

    async def no_lookup(key: str) -> list[models.Batch]:
        raise lost()

    server.find = no_lookup  # type: ignore[method-assign]
    chunks = submit_chunks(
        ["a", "b", "c"], send=server.send, wait=server.wait, find=server.find,
        ledger=Ledger(path), namespace="org/payments", chunk_size=3,
    )  # fmt: skip
    results = [r async for r in chunks]
    assert [r.outcome for r in results] == ["unknown"] * 3
    # Run again (a new process: the ledger read from its file), chunked in another way.
    server.find = failing_find  # type: ignore[method-assign]
    again = await server.submit(["c", "a", "b", "d"], Ledger(path), chunk_size=2)
    assert [(r.item, r.outcome, r.already_done) for r in again] == [
        ("c", "succeeded", True), ("a", "succeeded", True), ("b", "succeeded", True),
        ("d", "succeeded", False),
    ]  # fmt: skip
    assert server.created == ["a", "b", "c", "d"]
    assert again[0].batch_id == "b0"


async def test_a_chunk_the_server_never_got_is_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    key = item_keys("org/payments")(_serde.dumps("x"))
    killed = Ledger(path)
    killed.sent("chunk-never-posted", [key])  # a run killed right after this line
    killed.close()
    server = FakeServer()
    looked_up: list[str] = []
    find = server.find

    async def recording_find(chunk_key: str) -> list[models.Batch]:
        looked_up.append(chunk_key)
        return await find(chunk_key)

    server.find = recording_find  # type: ignore[method-assign]
    results = await server.submit(["x"], Ledger(path))
    assert looked_up == ["chunk-never-posted"]  # certainly not created: so it is sent
    assert [(r.ok, r.already_done) for r in results] == [(True, False)]
    assert server.created == ["x"]


def test_a_ledger_file_cut_short_keeps_its_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.sent("c1", ["k1", "k2"])
    ledger.outcome("k1", "succeeded", "c1", 0, "b1", {"invoiceId": "i1"})
    ledger.close()
    with path.open("ab") as stream:
        stream.write(b'{"succeeded": "k2", "chu')  # killed mid-line
    again = Ledger(path)
    assert again.get("k1") == LedgerEntry("succeeded", "c1", 0, "b1", {"invoiceId": "i1"})
    assert again.get("k2") == LedgerEntry("sent", "c1", 1)
    again.outcome("k2", "failed", "c1", 1)
    again.close()
    entry = Ledger(path).get("k2")
    assert entry is not None
    assert entry.state == "failed"


def test_a_damaged_ledger_file_is_named_and_not_guessed_at(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"sent": "c1", "items": ["k1"]}\nnot json\n')
    with pytest.raises(LedgerError, match=r"ledger\.jsonl: line 2 is not a ledger record"):
        Ledger(path)


def test_item_keys_depend_on_content_namespace_and_occurrence() -> None:
    key = item_keys("org-1/payments")
    one, two = _serde.dumps({"amount": 1}), _serde.dumps({"amount": 2})
    first, second = key(one), key(one)
    assert first != second  # the second identical item is another item
    assert item_keys("org-1/payments")(one) == first  # stable across runs
    assert item_keys("org-2/payments")(one) != first
    assert item_keys("org-1/payments")(two) != first
