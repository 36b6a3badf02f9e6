"""`create_many` of the write resources (invoices, payments, corrections): bulk, by delegation.

A write resource's `create` sends one chunk; `create_many` hands `bulk.submit_chunks` three
plain callables made of the resource's own operations (send a chunk with `create`, wait for its
batch with `Batches.wait`, look a key up with `Batches.list`), so bulk needs no resource, and
how to prepare a chunk (`_request_checks.encoded_items`: each item checked and encoded once;
`create` then takes the chunk as it is, `Checked`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any, Generic, TypeVar

from .. import _serde, bulk, models
from .._request_checks import Checked, encoded_items
from ._base import Resource, Sender
from .batches import DEFAULT_MAX_WAIT, DEFAULT_POLL_INTERVAL, Batches

NewT = TypeVar("NewT")


class BatchWrites(Resource, Generic[NewT]):
    """A resource whose `create` POSTs a list of `item_model` items and answers a batch."""

    item_model: type[NewT]
    """The request item the POST carries (NewInvoice, NewPayment, NewCorrection)."""
    kind: str
    """The kind of item, part of every item's ledger key ("invoices", "payments"...)."""

    def __init__(self, sender: Sender) -> None:
        super().__init__(sender)
        self._batches = Batches(sender)

    async def create(
        self,
        organization_id: str,
        items: Iterable[NewT | Mapping[str, Any]],
        /,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.BatchReference:
        """One POST of `items`; each write resource implements it for its operation."""
        raise NotImplementedError

    def create_many(
        self,
        organization_id: str,
        items: Iterable[NewT | Mapping[str, Any]] | AsyncIterable[NewT | Mapping[str, Any]],
        *,
        chunk_size: int = bulk.DEFAULT_CHUNK_SIZE,
        concurrency: int = bulk.DEFAULT_CONCURRENCY,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        chunk_key: bulk.ChunkKey | None = None,
        ledger: bulk.Ledger | None = None,
    ) -> AsyncIterator[bulk.ItemResult[NewT]]:
        """Submit any number of items in concurrent chunks; one result per item, in order.

        Items (models, or dicts read as models: `result.item` is the checked model) are
        checked as they stream, a chunk at a time; each chunk is created at most once (see
        :mod:`amili_async.bulk`), then waited for for at most `max_wait` seconds. With
        `ledger=bulk.Ledger(path)` each item is keyed by its content, so running the same items
        again, in another order, chunked in another way or with some edited, creates each
        unchanged item at most once (`result.already_done`).
        """
        org = organization_id

        async def send(chunk: list[Any], key: str) -> str:
            # The chunk's items were checked and encoded by `encoded_items`: not again.
            assert isinstance(chunk, _serde.Encoded)
            items = Checked(chunk, chunk.wire, self.item_model)
            return (await self.create(org, items, idempotency_key=key)).batch_id

        async def wait(batch_id: str) -> models.Batch:
            return await self._batches.wait(
                org, batch_id, max_wait=max_wait, poll_interval=poll_interval
            )

        async def find(key: str) -> list[models.Batch]:
            pager = self._batches.list(org, idempotency_key=key)
            return await pager.collect(limit=bulk.LOOKUP_PAGE)

        return bulk.submit_chunks(
            items,
            send=send,
            wait=wait,
            find=find,
            chunk_size=chunk_size,
            concurrency=concurrency,
            chunk_key=chunk_key,
            resend=self._sender.retry_posts,
            ledger=ledger,
            namespace=f"{org}/{self.kind}",
            prepare=functools.partial(encoded_items, self.item_model),
        )
