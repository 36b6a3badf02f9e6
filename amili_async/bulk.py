"""Bulk writes, one layer above the resources: any number of items in concurrent chunks.

Writes are asynchronous at Amili: a POST answers 202 with a batch, the batch is QUEUED and later
SUCCESS, PARTIAL or FAILED with per-item results. `create_many` turns that into one result
per input item, in input order, without ever creating anything twice: every chunk carries its
own idempotency key, and a chunk whose POST outcome is unknown (connection lost after sending)
is first looked up by that key (GetBatchesByOrganization's `IdempotencyKey` filter) before it is
sent again. One generic implementation serves invoices, payments and corrections; the client's
`invoices`, `payments` and `corrections` are the resources with `create_many` added here.

Cost bound: each send of a chunk is one transport call with its own retries (see
:mod:`amili_async._retry`), and a chunk is sent at most ``RECONCILE_ROUNDS`` times, so one chunk
costs at most ``RECONCILE_ROUNDS * (1 + max_retries)`` POSTs (9 with the defaults), all with the
same key.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import attrs

from . import _serde, models
from ._tasks import cancel_and_wait
from .errors import AmiliError, APIStatusError, ClientClosedError
from .resources import Batches, Corrections, Invoices, Payments
from .resources._base import Resource, Sender
from .resources.batches import DEFAULT_MAX_WAIT, DEFAULT_POLL_INTERVAL, wait_for_batch

T = TypeVar("T")
NewT = TypeVar("NewT")
NewT_contra = TypeVar("NewT_contra", contravariant=True)

DEFAULT_CHUNK_SIZE = 500
"""Items per POST: half the inferred 1,000-item limit, so a retry stays small."""
DEFAULT_CONCURRENCY = 4
"""Chunks in flight: enough to hide batch latency without crowding the server's queue."""
RECONCILE_ROUNDS = 3
"""Sends of a chunk whose POST outcome stayed unknown (each followed by a lookup by key) before
giving up: with the transport's retries inside each send, three rounds ride out a minute-long
outage while bounding the POSTs one chunk can cost (see the module docstring)."""
LOOKUP_PAGE = 10
"""Batches read by one lookup by key: one is expected; a few more reveal a server that ignores
the filter (their keys differ), which must not be taken for "this chunk was created"."""
LOOKUP_DELAYS = (0.5, 1.0, 2.0, 4.0)
"""Waits between lookups by key that failed themselves (each with the transport's retries): a
lookup that fails for ~8 s more leaves the chunk "unknown" rather than risk a second create."""


class Writer(Protocol[NewT_contra]):
    """A write resource: one POST of a list of items, answered with the batch to wait for."""

    async def create(
        self,
        organization_id: str,
        items: Iterable[NewT_contra | Mapping[str, Any]],
        /,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.BatchReference: ...


Outcome = Literal["succeeded", "failed", "unknown"]
"""What became of an item: created, refused, or not known (never reported as failed)."""


@attrs.frozen
class ItemResult(Generic[T]):
    """The outcome of one submitted item.

    ``outcome`` is "succeeded", "failed" (the server refused it: resubmitting as it is will
    fail again) or "unknown" (the SDK could not learn it: it may well exist; look it up or wait
    for ``batch_id`` again, never blindly resubmit with a new key).
    """

    index: int
    """Position of the item in the input."""
    item: T = attrs.field(repr=False)  # debtor data: names, identity numbers, addresses
    outcome: Outcome
    idempotency_key: str | None = None
    """The key its chunk was sent with: a resend with this key cannot create it twice."""
    batch_id: str | None = None
    succeeded: models.BatchSucceededItem | None = None
    failed: models.BatchFailedItem | None = None
    error: AmiliError | None = None
    """Why a whole chunk failed (refused, e.g. 422) or why its outcome is unknown; with
    `batch_id` set, the batch was created but not seen finished (e.g. BatchWaitTimeoutError)."""

    @property
    def ok(self) -> bool:
        """True when the item was created."""
        return self.outcome == "succeeded"

    @property
    def reason(self) -> str | None:
        """Why the item failed or is unknown, as the server (or the SDK) said; None if ok."""
        if self.ok:
            return None
        if self.failed is not None:
            return self.failed.reason or self.failed.code or "failed"
        return str(self.error) if self.error is not None else self.outcome


Submit = Callable[[list[Any], str], Awaitable[models.BatchReference]]
"""Sends one chunk with the given idempotency key."""
ChunkKey = Callable[[int, list[Any]], str]
"""The idempotency key of a chunk, from the index of its first item and its items."""


def random_key(start: int, chunk: list[Any]) -> str:
    """A fresh random key per chunk: the default, for input that is not meant to be re-run."""
    return str(uuid.uuid4())


def content_key(namespace: str) -> ChunkKey:
    """Keys derived from the chunk itself, so submitting the same input again is a no-op.

    The key hashes `namespace` (say, the organization and the kind of item), the chunk's
    position and its items' wire JSON: a re-run of an interrupted job sends every chunk with the
    key it had, and the server answers with the batch it already made instead of paying twice.
    """

    def key(start: int, chunk: list[Any]) -> str:
        digest = hashlib.sha256(f"{namespace}\x00{start}\x00".encode())
        for item in chunk:
            digest.update(_serde.dumps(item))
            digest.update(b"\x00")
        return str(uuid.UUID(bytes=digest.digest()[:16], version=5))

    return key


async def submit_chunks(
    batches: Batches,
    organization_id: str,
    submit: Submit,
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_wait: float | None = DEFAULT_MAX_WAIT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    chunk_key: ChunkKey | None = None,
    resend: bool = True,
) -> AsyncIterator[ItemResult[T]]:
    """Chunk `items`, submit chunks concurrently, wait for each batch, yield results in order.

    At most `concurrency` chunks are in flight, and results are yielded in input order, so
    memory stays bounded by `concurrency * chunk_size` items whatever the input size.
    `chunk_key` makes each chunk's idempotency key (default: a random UUID per chunk);
    `resend=False` sends each chunk once (an unknown outcome is looked up, never resent).
    """
    if chunk_size < 1 or concurrency < 1:
        raise ValueError("chunk_size and concurrency must be >= 1")
    chunker = _Chunker(
        batches,
        organization_id,
        submit,
        max_wait,
        poll_interval,
        chunk_key or random_key,
        rounds=RECONCILE_ROUNDS if resend else 1,
    )
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
    max_wait: float | None
    poll_interval: float
    key_for: ChunkKey = random_key
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    rounds: int = RECONCILE_ROUNDS
    """Sends of one chunk at most: 1 when POST retries are switched off (retry_posts=False)."""

    async def run(self, start: int, chunk: list[T]) -> list[ItemResult[T]]:
        """Every item's result; items a 422 names fail alone, the rest go again (new key)."""
        positions = list(range(start, start + len(chunk)))
        results: list[ItemResult[T]] = []
        while positions:
            done, positions = await self._run_once(start, positions, chunk)
            results += done
        return sorted(results, key=lambda result: result.index)

    async def _run_once(
        self, start: int, positions: list[int], chunk: list[T]
    ) -> tuple[list[ItemResult[T]], list[int]]:
        """Send the items at `positions` once: (their results, positions to send again)."""
        items = [chunk[p - start] for p in positions]
        key = self.key_for(positions[0], items)

        def every(outcome: Outcome, error: AmiliError, batch_id: str | None = None) -> list[Any]:
            return [
                ItemResult(p, item, outcome, key, batch_id=batch_id, error=error)
                for p, item in zip(positions, items, strict=True)
            ]

        try:
            created = await self._submit_once(items, key)
        except _Refused as refused:  # the server created nothing
            named = _refused_items(refused.error, len(items))
            if not named:
                return every("failed", refused.error), []
            failed = [
                ItemResult(
                    positions[offset],
                    items[offset],
                    "failed",
                    key,
                    failed=models.BatchFailedItem(index=offset, code="422", reason=reason),
                    error=refused.error,
                )
                for offset, reason in named.items()
            ]
            return failed, [p for offset, p in enumerate(positions) if offset not in named]
        except _Unknown as unknown:
            return every("unknown", unknown.error), []
        try:
            batch = await wait_for_batch(
                lambda: self.batches.get(self.organization_id, created),
                max_wait=self.max_wait,
                poll_interval=self.poll_interval,
            )
        except AmiliError as error:
            # The batch exists but was not seen finished: the caller can wait for batch_id
            # again instead of resubmitting (which would create twice).
            return every("unknown", error, created), []
        return _map_results(positions, items, batch, key), []

    async def _submit_once(self, chunk: list[T], key: str) -> str:
        """The batch id of this chunk, created at most once whatever the network does.

        After a POST whose outcome is unknown (no answer, or a 5xx), the batch is looked up by
        the chunk's idempotency key before anything is sent again; a resend carries the same
        key, so a server that did create it answers with the original batch. Raises _Refused
        when the POST was refused (4xx), _Unknown when the outcome could not be learnt.
        """
        last_error: AmiliError | None = None
        for _ in range(self.rounds):
            try:
                reference = await self.submit(chunk, key)
            except APIStatusError as error:
                if error.status_code < 500:
                    raise _Refused(error) from None
                last_error = error
            except ClientClosedError as error:
                raise _Unknown(error) from None  # no lookup can be made any more
            except AmiliError as error:
                last_error = error
            else:
                return reference.batch_id
            found = await self._find_batch(key, last_error)
            if found is not None:
                return found
        assert last_error is not None
        raise _Unknown(last_error)

    async def _find_batch(self, key: str, cause: AmiliError) -> str | None:
        """The batch created with `key`, None when there certainly is none.

        Only an empty answer means "none": batches that carry another key (or none) say the
        server ignored the filter, which proves nothing. Failing lookups are retried; one that
        keeps failing, like an unprovable answer, raises _Unknown (never resend blindly).
        """
        for delay in (*LOOKUP_DELAYS, None):
            try:
                pager = self.batches.list(self.organization_id, idempotency_key=key)
                batches = await pager.collect(limit=LOOKUP_PAGE)
            except AmiliError as error:
                if delay is None:
                    raise _Unknown(error) from None
                await self.sleep(delay)
                continue
            if not batches:
                return None
            for batch in batches:
                if batch.idempotency_key == key:
                    return batch.batch_id
            raise _Unknown(cause)
        raise AssertionError("unreachable")


class _Refused(Exception):
    """The server refused a chunk (4xx): it created nothing."""

    def __init__(self, error: AmiliError) -> None:
        self.error = error


class _Unknown(Exception):
    """What became of a chunk could not be learnt; `error` says why."""

    def __init__(self, error: AmiliError) -> None:
        self.error = error


# A field path of a refused write's validation errors: `invoices[3].dueDate` names item 3.
_ITEM_PATH = re.compile(r"^\$?\.?(?:invoices|payments|corrections)\[(\d+)\]")


def _refused_items(error: AmiliError, size: int) -> dict[int, str]:
    """{item offset: the server's reasons} from a 422's `errors` map; {} when it names none."""
    if not isinstance(error, APIStatusError) or error.status_code != 422:
        return {}
    body = error.body
    if not isinstance(body, dict):
        return {}
    fields = body.get("errors")
    if not isinstance(fields, dict):
        return {}
    named: dict[int, list[str]] = {}
    for path, messages in fields.items():
        match = _ITEM_PATH.match(str(path))
        if match is None:
            return {}  # an error about the request as a whole: every item failed with it
        offset = int(match[1])
        if offset >= size:
            return {}
        texts = messages if isinstance(messages, list) else [messages]
        field = str(path)[match.end() :].lstrip(".") or "item"
        named.setdefault(offset, []).extend(f"{field}: {text}" for text in texts)
    return {offset: "; ".join(reasons) for offset, reasons in named.items()}


def _map_results(
    positions: list[int], chunk: list[T], batch: models.Batch, key: str
) -> list[ItemResult[T]]:
    """Pair each item with its succeeded/failed entry by index (or uniqueSourceInvoiceId)."""
    by_index: dict[int, tuple[bool, Any]] = {}
    by_source: dict[str, tuple[bool, Any]] = {}
    for ok, entries in ((True, batch.succeeded or []), (False, batch.failed or [])):
        for entry in entries:
            if entry.index is not None:
                by_index[entry.index] = (ok, entry)
            elif entry.unique_source_invoice_id:
                by_source[entry.unique_source_invoice_id] = (ok, entry)
    results: list[ItemResult[T]] = []
    for offset, item in enumerate(chunk):
        match = by_index.get(offset) or by_source.get(_source_id(item) or "")
        if match is None:
            # The batch is finished but says nothing of this item: never report it as done,
            # nor as failed.
            error = AmiliError(f"batch {batch.batch_id} has no result for item {positions[offset]}")
            results.append(
                ItemResult(positions[offset], item, "unknown", key, batch.batch_id, error=error)
            )
            continue
        ok, entry = match
        results.append(
            ItemResult(
                positions[offset],
                item,
                "succeeded" if ok else "failed",
                key,
                batch.batch_id,
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


class _BulkWrites(Resource, Generic[NewT]):
    """Adds `create_many` to a write resource whose `create` sends one chunk."""

    def __init__(self, sender: Sender, batches: Batches) -> None:
        super().__init__(sender)
        self._batches = batches

    def create_many(
        self,
        organization_id: str,
        items: Iterable[NewT | Mapping[str, Any]] | AsyncIterable[NewT | Mapping[str, Any]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        chunk_key: ChunkKey | None = None,
    ) -> AsyncIterator[ItemResult[NewT | Mapping[str, Any]]]:
        """Submit any number of items in concurrent chunks; one result per item, in order.

        Each chunk is created at most once (see :mod:`amili_async.bulk`), then waited for
        for at most `max_wait` seconds. `chunk_key=bulk.content_key("...")` derives each
        chunk's idempotency key from its content, so re-running the same input is safe.
        """
        writer = cast(Writer[NewT], self)

        async def submit(chunk: list[Any], key: str) -> models.BatchReference:
            return await writer.create(organization_id, chunk, idempotency_key=key)

        return submit_chunks(
            self._batches,
            organization_id,
            submit,
            items,
            chunk_size=chunk_size,
            concurrency=concurrency,
            max_wait=max_wait,
            poll_interval=poll_interval,
            chunk_key=chunk_key,
            resend=self._sender.retry_posts,
        )


class BulkInvoices(_BulkWrites[models.NewInvoice], Invoices):
    """`client.invoices`: the Invoice operations, plus `create_many`."""


class BulkPayments(_BulkWrites[models.NewPayment], Payments):
    """`client.payments`: the Payment operations, plus `create_many`."""


class BulkCorrections(_BulkWrites[models.NewCorrection], Corrections):
    """`client.corrections`: the Correction operations, plus `create_many`."""
