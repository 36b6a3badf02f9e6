"""Payment operations: register payments received on invoices in collection."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

from .. import bulk, models
from ._base import Resource, as_models, operation, path


class Payments(Resource):
    """`client.payments`: the Payment section of the docs."""

    @operation("CreatePayments")
    async def create(
        self,
        organization_id: str,
        payments: Iterable[models.NewPayment | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.BatchReference:
        """Submit payments (models or wire-shaped dicts); answers with the batch to wait for."""
        body = models.CreatePaymentsRequest(payments=as_models(payments, models.NewPayment))
        route = path("/orgs/{}/payments", organization_id)
        return await self._create_batch(route, body, idempotency_key, timeout)

    def create_many(
        self,
        organization_id: str,
        payments: Iterable[models.NewPayment | Mapping[str, Any]]
        | AsyncIterable[models.NewPayment | Mapping[str, Any]],
        *,
        chunk_size: int = bulk.DEFAULT_CHUNK_SIZE,
        concurrency: int = bulk.DEFAULT_CONCURRENCY,
        wait_timeout: float | None = bulk.DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = bulk.DEFAULT_POLL_INTERVAL,
    ) -> AsyncIterator[bulk.ItemResult[models.NewPayment | Mapping[str, Any]]]:
        """Submit any number of payments in concurrent chunks; one result per item, in order.

        Each chunk is created at most once (see amili_async.bulk), then waited for.
        """
        return self._create_many(
            organization_id,
            self.create,
            payments,
            chunk_size=chunk_size,
            concurrency=concurrency,
            wait_timeout=wait_timeout,
            poll_interval=poll_interval,
        )
