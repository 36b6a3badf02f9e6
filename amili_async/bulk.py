"""Bulk writes: wait for batches, and submit any number of items in concurrent chunks.

Writes are asynchronous at Amili: a POST answers 202 with a batch, the batch is QUEUED and later
SUCCESS, PARTIAL or FAILED with per-item results. `submit_many` turns that into one result per
input item, in input order, without ever creating anything twice: every chunk carries its own
idempotency key, and a chunk whose POST outcome is unknown (connection lost after sending) is
first looked up by that key (GetBatchesByOrganization's `IdempotencyKey` filter) before it is
sent again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from . import models
from ._tasks import cancel_and_wait
from .errors import (
    AmiliError,
    APIConnectionError,
    APIStatusError,
    BatchWaitTimeoutError,
)

if TYPE_CHECKING:
    from .resources import Batches

T = TypeVar("T")

FINISHED = frozenset(
    {models.BatchStatus.SUCCESS, models.BatchStatus.PARTIAL, models.BatchStatus.FAILED}
)
"""The documented terminal statuses. Anything else, including a value the spec does not know,
is waited on: returning early would report unfinished items as done."""

DEFAULT_WAIT_TIMEOUT = 600.0
"""Ten minutes: the sandbox finishes a batch in milliseconds, Amili's staging in seconds; a
batch still queued after this long needs a human, not a tighter loop."""
DEFAULT_POLL_INTERVAL = 0.25
"""First poll after a quarter second: small batches are often done by then."""
MAX_POLL_INTERVAL = 5.0
"""Polls back off by 1.5x up to 5 s, so a long queue costs a dozen requests a minute."""
DEFAULT_CHUNK_SIZE = 500
"""Items per POST: half the inferred 1,000-item limit, so a retry stays small."""
DEFAULT_CONCURRENCY = 4
"""Chunks in flight: enough to hide batch latency without crowding the server's queue."""
RECONCILE_ROUNDS = 3
"""Lookups + resubmissions of a chunk whose POST outcome stayed unknown before giving up."""


async def wait_for_batch(
    fetch: Callable[[], Awaitable[models.Batch]],
    *,
    timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> models.Batch:
    """Poll `fetch` with backoff until the batch is finished; BatchWaitTimeoutError if not."""
    deadline = None if timeout is None else clock() + timeout
    interval = poll_interval
    while True:
        batch = await fetch()
        if batch.status in FINISHED:
            return batch
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise BatchWaitTimeoutError(
                    f"batch {batch.batch_id} still {batch.status} after {timeout} s", batch=batch
                )
            interval = min(interval, remaining)
        await sleep(interval)
        interval = min(interval * 1.5, MAX_POLL_INTERVAL)


@attrs.frozen
class ItemResult(Generic[T]):
    """The outcome of one submitted item."""

    index: int
    """Position of the item in the input."""
    item: T
    ok: bool
    batch_id: str | None = None
    succeeded: models.BatchSucceededItem | None = None
    failed: models.BatchFailedItem | None = None
    error: AmiliError | None = None
    """Set when the whole chunk was refused (e.g. 422) or its outcome stayed unknown; with
    `batch_id` set, the batch was created but not seen finished (e.g. BatchWaitTimeoutError)."""

    @property
    def reason(self) -> str | None:
        """Why the item failed, as the server (or the SDK) said it; None when it succeeded."""
        if self.ok:
            return None
        if self.failed is not None:
            return self.failed.reason or self.failed.code or "failed"
        return str(self.error) if self.error is not None else "failed"


Submit = Callable[[list[Any], str], Awaitable[models.BatchReference]]


async def submit_many(
    batches: Batches,
    organization_id: str,
    submit: Submit,
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> AsyncIterator[ItemResult[T]]:
    """Chunk `items`, submit chunks concurrently, wait for each batch, yield results in order.

    At most `concurrency` chunks are in flight, and results are yielded in input order, so
    memory stays bounded by `concurrency * chunk_size` items whatever the input size.
    """
    if chunk_size < 1 or concurrency < 1:
        raise ValueError("chunk_size and concurrency must be >= 1")
    chunker = _Chunker(batches, organization_id, submit, wait_timeout, poll_interval)
    window: list[asyncio.Task[list[ItemResult[T]]]] = []
    chunks = _chunks(items, chunk_size)
    try:
        async for start, chunk in chunks:
            window.append(asyncio.create_task(chunker.run(start, chunk)))
            if len(window) >= concurrency:
                for result in await window.pop(0):
                    yield result
        while window:
            for result in await window.pop(0):
                yield result
    finally:
        await cancel_and_wait(window)


async def _chunks(
    items: Iterable[T] | AsyncIterable[T], size: int
) -> AsyncIterator[tuple[int, list[T]]]:
    """(index of the first item, chunk) from a sync or async iterable, `size` items at a time."""
    start = 0
    if isinstance(items, AsyncIterable):
        chunk: list[T] = []
        async for item in items:
            chunk.append(item)
            if len(chunk) == size:
                yield start, chunk
                start, chunk = start + size, []
        if chunk:
            yield start, chunk
        return
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield start, chunk
        start += len(chunk)


@attrs.define
class _Chunker:
    """Submits one chunk, reconciles an unknown outcome, waits, and maps per-item results."""

    batches: Batches
    organization_id: str
    submit: Submit
    wait_timeout: float | None
    poll_interval: float

    async def run(self, start: int, chunk: list[T]) -> list[ItemResult[T]]:
        key = str(uuid.uuid4())
        batch_id: str | None = None
        try:
            batch_id = created = await self._submit_once(chunk, key)
            batch = await wait_for_batch(
                lambda: self.batches.get(self.organization_id, created),
                timeout=self.wait_timeout,
                poll_interval=self.poll_interval,
            )
        except AmiliError as error:
            # batch_id is kept when the batch exists but waiting for it failed: the caller
            # can wait for it again instead of resubmitting (which would create twice).
            return [
                ItemResult(index=start + i, item=item, ok=False, batch_id=batch_id, error=error)
                for i, item in enumerate(chunk)
            ]
        return _map_results(start, chunk, batch)

    async def _submit_once(self, chunk: list[T], key: str) -> str:
        """The batch id of this chunk, created at most once whatever the network does.

        After a POST whose outcome is unknown (no answer, or a 5xx), the batch is looked up by
        the chunk's idempotency key before anything is sent again; a resend carries the same
        key, so a server that did create it answers with the original batch.
        """
        last_error: AmiliError | None = None
        for _ in range(RECONCILE_ROUNDS):
            try:
                reference = await self.submit(chunk, key)
            except (APIConnectionError, APIStatusError) as error:
                if isinstance(error, APIStatusError) and error.status_code < 500:
                    raise  # refused: the server created nothing
                last_error = error
            else:
                return reference.batch_id
            found = await self._find_batch(key)
            if found is not None:
                return found
        assert last_error is not None
        raise last_error

    async def _find_batch(self, key: str) -> str | None:
        batches = await self.batches.list(self.organization_id, idempotency_key=key).collect(
            limit=1
        )
        return batches[0].batch_id if batches else None


def _map_results(start: int, chunk: list[T], batch: models.Batch) -> list[ItemResult[T]]:
    """Pair each item with its succeeded/failed entry by index (or uniqueSourceInvoiceId)."""
    by_index: dict[int, tuple[bool, Any]] = {}
    by_source: dict[str, tuple[bool, Any]] = {}
    for ok, entries in ((True, batch.succeeded or []), (False, batch.failed or [])):
        for entry in entries:
            if entry.index is not None:
                by_index[entry.index] = (ok, entry)
            elif entry.unique_source_invoice_id:
                by_source[entry.unique_source_invoice_id] = (ok, entry)
    results = []
    for offset, item in enumerate(chunk):
        match = by_index.get(offset) or by_source.get(_source_id(item) or "")
        if match is None:
            # The batch is finished but says nothing of this item: never report it as done.
            error = AmiliError(f"batch {batch.batch_id} has no result for item {start + offset}")
            results.append(
                ItemResult(
                    index=start + offset, item=item, ok=False, batch_id=batch.batch_id, error=error
                )
            )
            continue
        ok, entry = match
        results.append(
            ItemResult(
                index=start + offset,
                item=item,
                ok=ok,
                batch_id=batch.batch_id,
                succeeded=entry if ok else None,
                failed=None if ok else entry,
            )
        )
    return results


def _source_id(item: Any) -> str | None:
    if isinstance(item, Mapping):
        value = item.get("uniqueSourceInvoiceId")
        return value if isinstance(value, str) else None
    value = getattr(item, "unique_source_invoice_id", None)
    return value if isinstance(value, str) else None
