"""Payment operations: register payments received on invoices in collection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import models
from ._base import as_models, operation, path
from ._writes import BatchWrites


class Payments(BatchWrites[models.NewPayment]):
    """`client.payments`: the Payment section of the docs, plus `create_many`."""

    item_model = models.NewPayment
    kind = "payments"

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
