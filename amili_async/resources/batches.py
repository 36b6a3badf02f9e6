"""Batch operations: the outcome of every asynchronous write, and waiting for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .. import models
from .._pagination import AsyncPager
from ..errors import BatchWaitTimeoutError
from ._base import Resource, operation, path

FINISHED = frozenset(
    {models.BatchStatus.SUCCESS, models.BatchStatus.PARTIAL, models.BatchStatus.FAILED}
)
"""The documented terminal statuses. Anything else, including a value the spec does not know,
is waited on: returning early would report unfinished items as done."""

DEFAULT_MAX_WAIT = 600.0
"""Ten minutes: the sandbox finishes a batch in milliseconds, Amili's staging in seconds; a
batch still queued after this long needs a human, not a tighter loop."""
DEFAULT_POLL_INTERVAL = 0.25
"""First poll after a quarter second: small batches are often done by then."""
MAX_POLL_INTERVAL = 5.0
"""Polls back off by 1.5x up to 5 s, so a long queue costs a dozen requests a minute."""
_POLL_BACKOFF = 1.5
"""Growth of the poll interval: reaches MAX_POLL_INTERVAL in ~8 polls from the default."""


class Batches(Resource):
    """`client.batches`: the Batches section of the docs."""

    @operation("GetBatchById")
    async def get(
        self, organization_id: str, batch_id: str, *, timeout: float | None = None
    ) -> models.Batch:
        """One batch: status QUEUED until SUCCESS, PARTIAL or FAILED, with per-item results."""
        route = path("/orgs/{}/batches/{}", organization_id, batch_id)
        envelope = await self._get(route, models.BatchEnvelope, timeout=timeout)
        return envelope.data

    @operation("GetBatchByIdLegacy")
    async def get_legacy(self, batch_id: str, *, timeout: float | None = None) -> models.Batch:
        """The org-less `GET /batches/{batchId}` that the docs mark "to be removed"."""
        envelope = await self._get(
            path("/batches/{}", batch_id), models.BatchEnvelope, timeout=timeout
        )
        return envelope.data

    @operation("GetBatchesByOrganization")
    def list(
        self,
        organization_id: str,
        *,
        state: models.BatchStatus | str | None = None,
        type: models.BatchType | str | None = None,
        subject_id: str | None = None,
        idempotency_key: str | None = None,
        sort_direction: models.SortDirection | str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        prefetch: int | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[models.Batch]:
        """Stream the organization's batches; `idempotency_key=` finds the batch of one POST."""
        return self._listing(
            path("/orgs/{}/batches", organization_id),
            {
                "State": state,
                "Type": type,
                "SubjectId": subject_id,
                "IdempotencyKey": idempotency_key,
                "PageSize": page_size,
                "SortDirection": sort_direction,
            },
            token_param="PageToken",
            envelope=models.BatchListResponse,
            page_token=page_token,
            prefetch=prefetch,
            timeout=timeout,
        )

    async def wait(
        self,
        organization_id: str,
        batch_id: str,
        *,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> models.Batch:
        """Poll GetBatchById with backoff until the batch is SUCCESS, PARTIAL or FAILED.

        `max_wait` bounds the whole wait in seconds (None: no bound); each poll is one request
        with the client's per-request timeout. Raises BatchWaitTimeoutError (with the last
        state seen) when `max_wait` runs out; waiting again later is safe.
        """
        return await wait_for_batch(
            lambda: self.get(organization_id, batch_id),
            max_wait=max_wait,
            poll_interval=poll_interval,
        )


async def wait_for_batch(
    fetch: Callable[[], Awaitable[models.Batch]],
    *,
    max_wait: float | None = DEFAULT_MAX_WAIT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> models.Batch:
    """Poll `fetch` with backoff until the batch is finished; BatchWaitTimeoutError if not."""
    deadline = None if max_wait is None else clock() + max_wait
    interval = poll_interval
    while True:
        batch = await fetch()
        if batch.status in FINISHED:
            return batch
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise BatchWaitTimeoutError(
                    f"batch {batch.batch_id} still {batch.status} after {max_wait} s", batch=batch
                )
            interval = min(interval, remaining)
        await sleep(interval)
        interval = min(interval * _POLL_BACKOFF, MAX_POLL_INTERVAL)
