"""Settlement operations: what was collected and paid out per case."""

from __future__ import annotations

import datetime as dt

from .. import models
from .._pagination import AsyncPager
from ._base import Resource, operation, path


class Settlements(Resource):
    """`client.settlements`: the Settlement section of the docs."""

    @operation("GetSettlementOnId")
    async def get(
        self, organization_id: str, settlement_id: str, *, timeout: float | None = None
    ) -> models.Settlement:
        """One settlement."""
        route = path("/orgs/{}/settlements/{}", organization_id, settlement_id)
        envelope = await self._get(route, models.SettlementEnvelope, timeout=timeout)
        return envelope.data

    @operation("GetSettlements")
    def list(
        self,
        organization_id: str,
        *,
        from_date: dt.date | None = None,
        to_date: dt.date | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        prefetch: int | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[models.Settlement]:
        """Stream the organization's settlements (this endpoint spells `pageToken` in camelCase)."""
        return self._listing(
            path("/orgs/{}/settlements", organization_id),
            {"fromDate": from_date, "toDate": to_date, "pageSize": page_size},
            token_param="pageToken",
            envelope=models.SettlementListResponse,
            page_token=page_token,
            prefetch=prefetch,
            timeout=timeout,
        )
