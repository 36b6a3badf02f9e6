"""Batch operations: the outcome of every asynchronous write."""

from __future__ import annotations

from .. import bulk, models
from .._pagination import AsyncPager
from ._base import Resource, operation, path


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
        timeout: float | None = bulk.DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = bulk.DEFAULT_POLL_INTERVAL,
    ) -> models.Batch:
        """Poll GetBatchById with backoff until the batch is SUCCESS, PARTIAL or FAILED.

        Raises BatchWaitTimeoutError (with the last state seen) when `timeout` runs out.
        """
        return await bulk.wait_for_batch(
            lambda: self.get(organization_id, batch_id),
            timeout=timeout,
            poll_interval=poll_interval,
        )
