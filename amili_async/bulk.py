"""Bulk writes: any number of items in concurrent chunks, each created at most once.

Writes are asynchronous at Amili: a POST answers 202 with a batch, the batch is QUEUED and later
SUCCESS, PARTIAL or FAILED with per-item results. `submit_chunks` turns that into one result
per input item, in input order, without ever creating anything twice: every chunk carries its
own idempotency key, and a chunk whose POST outcome is unknown (connection lost after sending)
is first looked up by that key (GetBatchesByOrganization's `IdempotencyKey` filter) before it is
sent again. With a `Ledger`, items are keyed one by one (`_ledger`), so a re-run chunked in
another way, in another order or with rows edited creates each unchanged item at most once.

This module knows no resource: the write resources' `create_many` (`resources/_writes.py`)
hands it three plain callables (send a chunk, wait for a batch, find the batches of a key).

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
from typing import Any, Generic, Literal, TypeVar, overload

import attrs

from . import _gc, _json, _serde, _telemetry, models
from ._ledger import Ledger, LedgerError, chunk_key_of, item_keys
from ._tasks import cancel_and_wait
from .errors import AmiliError, APIStatusError, ClientClosedError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CONCURRENCY",
    "ItemResult",
    "Ledger",
    "LedgerError",
    "content_key",
    "random_key",
    "submit_chunks",
]

T = TypeVar("T")

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
    already_done: bool = False
    """Created before this call (the ledger knew it, or its earlier chunk's batch said so):
    nothing was sent for it now."""

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


Prepare = Callable[[int, list[Any]], tuple[list[T], list[_json.Fragment]]]
"""Turns a chunk of input items (the first at the given input position) into the items sent
and their wire JSON; what it raises ends the submission (nothing more is sent)."""
Send = Callable[[list[Any], str], Awaitable[str]]
"""Sends one chunk with the given idempotency key; answers the id of the batch it made."""
Wait = Callable[[str], Awaitable[models.Batch]]
"""Waits for a batch (by id) until it is finished; raises AmiliError when it cannot."""
Find = Callable[[str], Awaitable[list[models.Batch]]]
"""The first `LOOKUP_PAGE` batches the server lists for an idempotency key."""
ChunkKey = Callable[[int, list[Any]], str]
"""The idempotency key of a chunk, from the index of its first item and its items."""


def as_they_are(start: int, items: list[T]) -> tuple[list[T], list[_json.Fragment]]:
    """The default `Prepare`: the items themselves, encoded by `_serde.dumps`."""
    dumps, fragment = _serde.dumps, _json.Fragment
    return items, [fragment(dumps(item)) for item in items]


def random_key(start: int, chunk: list[Any]) -> str:
    """A fresh random key per chunk: the default, for input that is not meant to be re-run."""
    return str(uuid.uuid4())


def content_key(namespace: str) -> ChunkKey:
    """Keys derived from the chunk itself, so submitting the same input again is a no-op.

    The key hashes `namespace` (say, the organization and the kind of item), the chunk's
    position and its items' wire JSON: a re-run chunked the same way sends every chunk with
    the key it had. For re-runs chunked in another way, use a `Ledger` instead.
    """

    def key(start: int, chunk: list[Any]) -> str:
        digest = hashlib.sha256(f"{namespace}\x00{start}\x00".encode())
        # A chunk of `submit_chunks` carries its items' JSON already (`_serde.Encoded`).
        wire = chunk.wire if isinstance(chunk, _serde.Encoded) else map(_serde.dumps, chunk)
        for encoded in wire:
            digest.update(encoded)
            digest.update(b"\x00")
        return str(uuid.UUID(bytes=digest.digest()[:16], version=5))

    return key


@overload
def submit_chunks(
    items: Iterable[T] | AsyncIterable[T],
    *,
    send: Send,
    wait: Wait,
    find: Find,
    chunk_size: int = ...,
    concurrency: int = ...,
    chunk_key: ChunkKey | None = ...,
    resend: bool = ...,
    ledger: Ledger | None = ...,
    namespace: str = ...,
) -> AsyncIterator[ItemResult[T]]: ...
@overload
def submit_chunks(
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    send: Send,
    wait: Wait,
    find: Find,
    chunk_size: int = ...,
    concurrency: int = ...,
    chunk_key: ChunkKey | None = ...,
    resend: bool = ...,
    ledger: Ledger | None = ...,
    namespace: str = ...,
    prepare: Prepare[T],
) -> AsyncIterator[ItemResult[T]]: ...
async def submit_chunks(
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    send: Send,
    wait: Wait,
    find: Find,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_key: ChunkKey | None = None,
    resend: bool = True,
    ledger: Ledger | None = None,
    namespace: str = "",
    prepare: Prepare[Any] = as_they_are,
) -> AsyncIterator[ItemResult[Any]]:
    """Chunk `items`, submit chunks concurrently, wait for each batch, yield results in order.

    At most `concurrency` chunks are in flight, and results are yielded in input order, so
    memory stays bounded by `concurrency * chunk_size` items whatever the input size.
    `prepare` turns each chunk of input into the items sent and their wire JSON (`create_many`:
    reads and checks them) before it goes. `chunk_key` makes each chunk's idempotency key
    (default: a random UUID per chunk, or with a `ledger` a digest of its items' keys);
    `resend=False` sends each chunk once (an unknown outcome is looked up, never resent). With
    a `ledger`, items are keyed by their wire JSON within `namespace` (the organization and
    kind): those the ledger knows as created are not sent again (`already_done`).
    """
    if chunk_size < 1 or concurrency < 1:
        raise ValueError("chunk_size and concurrency must be >= 1")
    chunker = _Chunker(
        send,
        wait,
        find,
        chunk_key or (random_key if ledger is None else None),
        rounds=RECONCILE_ROUNDS if resend else 1,
        ledger=ledger,
    )
    key_of = item_keys(namespace) if ledger is not None else None
    window: list[asyncio.Task[list[ItemResult[Any]]]] = []
    try:
        async for start, chunk in _chunks(items, chunk_size):
            # Each chunk made in a GC pause: its ~15 objects per item (a `create_many` item
            # read from its dict, its JSON) all live until it is done, so collections over
            # them while they are made would free nothing.
            with _gc.paused():
                pending = _Chunk.of(start, prepare(start, chunk), key_of)
            window.append(asyncio.create_task(chunker.run(pending)))
            if len(window) >= concurrency:
                for result in await window.pop(0):
                    yield result
        while window:
            for result in await window.pop(0):
                yield result
    finally:
        await cancel_and_wait(window)
        if ledger is not None:
            ledger.close()


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
class _Chunk(Generic[T]):
    """Items on their way, as parallel lists (no object per item): their positions in the
    input, the items, their wire JSON (encoded once: the ledger keys hash it, the POST sends
    it) and their ledger keys ("" without a ledger)."""

    indexes: list[int]
    items: list[T]
    wire: list[_json.Fragment]
    keys: list[str]

    @classmethod
    def of(
        cls,
        start: int,
        prepared: tuple[list[T], list[_json.Fragment]],
        key_of: Callable[[_json.Fragment], str] | None,
    ) -> _Chunk[T]:
        """The chunk of prepared items (the first at input position `start`), keyed."""
        items, wire = prepared
        keys = [key_of(encoded) for encoded in wire] if key_of else [""] * len(items)
        return cls(list(range(start, start + len(items))), items, wire, keys)

    def __len__(self) -> int:
        return len(self.indexes)

    def picked(self, offsets: list[int]) -> _Chunk[T]:
        """The chunk of the items at `offsets`, in that order."""
        return _Chunk(
            [self.indexes[o] for o in offsets],
            [self.items[o] for o in offsets],
            [self.wire[o] for o in offsets],
            [self.keys[o] for o in offsets],
        )

    def encoded(self) -> _serde.Encoded:
        """The items as `send` gets them: a list that carries their wire JSON."""
        return _serde.Encoded(self.items, self.wire)


@attrs.define
class _Chunker:
    """Submits one chunk, reconciles an unknown outcome, waits, and maps per-item results."""

    send: Send
    wait: Wait
    find: Find
    key_for: ChunkKey | None = random_key
    """None: the digest of the items' ledger keys (`chunk_key_of`)."""
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    rounds: int = RECONCILE_ROUNDS
    """Sends of one chunk at most: 1 when POST retries are switched off (retry_posts=False)."""
    ledger: Ledger | None = None

    async def run(self, pending: _Chunk[T]) -> list[ItemResult[T]]:
        """Every item's result; items a 422 names fail alone, the rest go again (new key)."""
        results: list[ItemResult[T]] = []
        if self.ledger is not None:
            results, pending = await self._recall(self.ledger, pending)
        while pending:
            done, again = await _telemetry.chunk(self._run_once(pending), len(pending))
            results += done
            pending = pending.picked(again)
        return sorted(results, key=lambda result: result.index)

    async def _recall(
        self, ledger: Ledger, pending: _Chunk[T]
    ) -> tuple[list[ItemResult[T]], _Chunk[T]]:
        """(results the ledger or an earlier run's batch gives, the items still to send).

        An item sent earlier whose outcome was never learnt is looked up by its chunk's key:
        found, its result is read at its offset; certainly not created, it is sent again; not
        knowable (lookups failing), it is unknown and not sent.
        """
        results: list[ItemResult[T]] = []
        fresh: list[int] = []  # offsets in `pending` of the items to send
        earlier: dict[str, list[tuple[int, int]]] = {}  # chunk key -> (offset here, offset there)
        indexes, items, keys = pending.indexes, pending.items, pending.keys
        for at, item_key in enumerate(keys):
            entry = ledger.get(item_key)
            if entry is None or entry.state == "failed":
                fresh.append(at)  # refused before: nothing was created, so send it again
            elif entry.state == "succeeded":
                results.append(
                    self._done_before(
                        indexes[at], items[at], entry.chunk_key, entry.batch_id, entry.result
                    )
                )
            else:
                earlier.setdefault(entry.chunk_key, []).append((at, entry.offset))
        for key, members in earlier.items():
            cause = AmiliError(f"an earlier run sent chunk {key} and did not learn its outcome")
            try:
                batch_id = await self._find_batch(key, cause)
                if batch_id is None:
                    fresh += [at for at, _ in members]
                    continue
                batch = await self.wait(batch_id)
            except _Unknown as unknown:
                results += [
                    ItemResult(indexes[at], items[at], "unknown", key, error=unknown.error)
                    for at, _ in members
                ]
                continue
            except AmiliError as error:
                results += [
                    ItemResult(indexes[at], items[at], "unknown", key, batch_id, error=error)
                    for at, _ in members
                ]
                continue
            entries = _Entries.of(batch)
            for at, offset in members:
                result = entries.result(offset, items[at], indexes[at], key)
                if result.outcome == "succeeded":
                    wire = _serde.unstructure(result.succeeded)
                    ledger.outcome(keys[at], "succeeded", key, offset, batch_id, wire)
                    results.append(attrs.evolve(result, already_done=True))
                elif result.outcome == "failed":
                    fresh.append(at)
                else:
                    results.append(result)
        return results, pending.picked(sorted(fresh))

    @staticmethod
    def _done_before(
        index: int, item: T, key: str, batch_id: str | None, wire: Any
    ) -> ItemResult[T]:
        succeeded = None if wire is None else _serde.structure(wire, models.BatchSucceededItem)
        return ItemResult(index, item, "succeeded", key, batch_id, succeeded, already_done=True)

    async def _run_once(self, pending: _Chunk[T]) -> tuple[list[ItemResult[T]], list[int]]:
        """Send `pending` once as one chunk: (their results, offsets of items to send again)."""
        indexes, items = pending.indexes, pending.items
        if self.key_for is None:
            key = chunk_key_of(pending.keys)
        else:
            key = self.key_for(indexes[0], pending.encoded())
        if self.ledger is not None:
            self.ledger.sent(key, pending.keys)

        def every(outcome: Outcome, error: AmiliError, batch_id: str | None = None) -> list[Any]:
            return [
                ItemResult(index, item, outcome, key, batch_id=batch_id, error=error)
                for index, item in zip(indexes, items, strict=True)
            ]

        try:
            created = await self._submit_once(pending.encoded(), key)
        except _Refused as refused:  # the server created nothing
            named = _refused_items(refused.error, len(items))
            failed = [
                ItemResult(
                    indexes[offset],
                    items[offset],
                    "failed",
                    key,
                    failed=models.BatchFailedItem(index=offset, code="422", reason=reason),
                    error=refused.error,
                )
                for offset, reason in named.items()
            ]
            if not named:
                failed = every("failed", refused.error)
            self._record(key, pending, failed)
            again = [offset for offset in range(len(items)) if named and offset not in named]
            return failed, again
        except _Unknown as unknown:
            return every("unknown", unknown.error), []
        try:
            batch = await self.wait(created)
        except AmiliError as error:
            # The batch exists but was not seen finished: the caller can wait for batch_id
            # again instead of resubmitting (which would create twice).
            return every("unknown", error, created), []
        entries = _Entries.of(batch)
        results = [
            entries.result(offset, item, index, key)
            for offset, (index, item) in enumerate(zip(indexes, items, strict=True))
        ]
        self._record(key, pending, results)
        return results, []

    def _record(self, key: str, pending: _Chunk[T], results: list[ItemResult[T]]) -> None:
        """Write the learnt outcomes to the ledger (unknown ones stay "sent": looked up later)."""
        if self.ledger is None:
            return
        offsets = {index: offset for offset, index in enumerate(pending.indexes)}
        keys = pending.keys
        self.ledger.outcomes(
            (
                keys[offsets[result.index]],
                result.outcome,
                key,
                offsets[result.index],
                result.batch_id,
                None if result.succeeded is None else _serde.unstructure(result.succeeded),
            )
            for result in results
            if result.outcome != "unknown"
        )

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
                return await self.send(chunk, key)
            except APIStatusError as error:
                if error.status_code < 500:
                    raise _Refused(error) from None
                last_error = error
            except ClientClosedError as error:
                raise _Unknown(error) from None  # no lookup can be made any more
            except AmiliError as error:
                last_error = error
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
                batches = await self.find(key)
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


@attrs.frozen
class _Entries:
    """A finished batch's per-item entries, found by index (or by uniqueSourceInvoiceId)."""

    batch: models.Batch
    by_index: dict[int, tuple[bool, Any]]
    by_source: dict[str, tuple[bool, Any]]

    @classmethod
    def of(cls, batch: models.Batch) -> _Entries:
        by_index: dict[int, tuple[bool, Any]] = {}
        by_source: dict[str, tuple[bool, Any]] = {}
        for ok, entries in ((True, batch.succeeded or []), (False, batch.failed or [])):
            for entry in entries:
                if entry.index is not None:
                    by_index[entry.index] = (ok, entry)
                elif entry.unique_source_invoice_id:
                    by_source[entry.unique_source_invoice_id] = (ok, entry)
        return cls(batch, by_index, by_source)

    def result(self, offset: int, item: T, index: int, key: str) -> ItemResult[T]:
        """The result of the item sent at `offset` of the batch's chunk (input `index`)."""
        match = self.by_index.get(offset) or self.by_source.get(_source_id(item) or "")
        batch_id = self.batch.batch_id
        if match is None:
            # The batch is finished but says nothing of this item: never report it as done,
            # nor as failed.
            error = AmiliError(f"batch {batch_id} has no result for item {index}")
            return ItemResult(index, item, "unknown", key, batch_id, error=error)
        ok, entry = match
        return ItemResult(
            index,
            item,
            "succeeded" if ok else "failed",
            key,
            batch_id,
            succeeded=entry if ok else None,
            failed=None if ok else entry,
        )


def _source_id(item: Any) -> str | None:
    if isinstance(item, Mapping):
        value = item.get("uniqueSourceInvoiceId")
        return value if isinstance(value, str) else None
    value = getattr(item, "unique_source_invoice_id", None)
    return value if isinstance(value, str) else None
