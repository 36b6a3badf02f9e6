"""Correction operations: credit or adjust invoices in collection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import models
from ._base import as_models, operation, path
from ._writes import BatchWrites


class Corrections(BatchWrites[models.NewCorrection]):
    """`client.corrections`: the Correction section of the docs, plus `create_many`."""

    item_model = models.NewCorrection
    kind = "corrections"

    @operation("CreateCorrections")
    async def create(
        self,
        organization_id: str,
        corrections: Iterable[models.NewCorrection | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.BatchReference:
        """Submit corrections (models or wire-shaped dicts); answers with the batch to wait for."""
        body = models.CreateCorrectionsRequest(
            corrections=as_models(corrections, models.NewCorrection)
        )
        route = path("/orgs/{}/corrections", organization_id)
        return await self._create_batch(route, body, idempotency_key, timeout)
