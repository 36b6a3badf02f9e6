"""Collections operations: list cases and move them through their lifecycle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from .. import models
from .._pagination import AsyncPager
from ._base import Resource, operation, path


class Collections(Resource):
    """`client.collections`: the Collections section of the docs.

    Every action answers 202 without a body (inferred); an action the case's state does not
    allow raises ConflictError (409).
    """

    @operation("GetCasesByOrganization")
    def list_cases(
        self,
        organization_id: str,
        *,
        status: models.CaseStatus | str | None = None,
        type: models.CaseType | str | None = None,
        case_number: str | None = None,
        customer_number: str | None = None,
        unique_source_invoice_id: str | None = None,
        search_term: str | None = None,
        from_created_at: dt.datetime | None = None,
        to_created_at: dt.datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        prefetch: int | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[models.Case]:
        """Stream the organization's cases."""
        return self._listing(
            path("/orgs/{}/cases", organization_id),
            {
                "Status": status,
                "Type": type,
                "CaseNumber": case_number,
                "CustomerNumber": customer_number,
                "UniqueSourceInvoiceId": unique_source_invoice_id,
                "SearchTerm": search_term,
                "FromCreatedAt": from_created_at,
                "ToCreatedAt": to_created_at,
                "PageSize": page_size,
            },
            token_param="PageToken",
            envelope=models.CaseListResponse,
            page_token=page_token,
            prefetch=prefetch,
            timeout=timeout,
        )

    async def _case_action(
        self,
        organization_id: str,
        case_id: str,
        action: str,
        reason: str | None,
        idempotency_key: str | None,
        timeout: float | None,
    ) -> None:
        body = models.CaseActionRequest(reason=reason) if reason is not None else None
        await self._post(
            path("/orgs/{}/cases/{}/", organization_id, case_id) + action,
            body,
            None,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )

    async def _list_action(
        self,
        organization_id: str,
        action: str,
        case_ids: Sequence[str],
        idempotency_key: str | None,
        timeout: float | None,
    ) -> None:
        if isinstance(case_ids, str):
            raise TypeError("case_ids must be a sequence of ids, not one string")
        await self._post(
            path("/orgs/{}/debt-collection-list/", organization_id) + action,
            models.DebtCollectionListRequest(case_ids=list(case_ids)),
            None,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )

    @operation("AcceptDebtCollectionList")
    async def accept_debt_collection_list(
        self,
        organization_id: str,
        case_ids: Sequence[str],
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send the listed cases on to debt collection."""
        await self._list_action(organization_id, "accept", case_ids, idempotency_key, timeout)

    @operation("RejectDebtCollectionList")
    async def reject_debt_collection_list(
        self,
        organization_id: str,
        case_ids: Sequence[str],
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Keep the listed cases out of debt collection."""
        await self._list_action(organization_id, "reject", case_ids, idempotency_key, timeout)

    @operation("PauseCase")
    async def pause_case(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Pause an open case."""
        await self._case_action(organization_id, case_id, "pause", reason, idempotency_key, timeout)

    @operation("ResumeCase")
    async def resume_case(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Resume a paused case."""
        await self._case_action(
            organization_id, case_id, "resume", reason, idempotency_key, timeout
        )

    @operation("WithdrawCase")
    async def withdraw_case(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Withdraw an open or paused case from collection."""
        await self._case_action(
            organization_id, case_id, "withdraw", reason, idempotency_key, timeout
        )

    @operation("AcceptEvictionRequest")
    async def accept_eviction_request(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Accept the eviction request on a case."""
        await self._case_action(
            organization_id, case_id, "eviction-request/accept", reason, idempotency_key, timeout
        )

    @operation("RejectEvictionRequest")
    async def reject_eviction_request(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Reject the eviction request on a case."""
        await self._case_action(
            organization_id, case_id, "eviction-request/reject", reason, idempotency_key, timeout
        )

    @operation("AcceptEvictionConfirmation")
    async def accept_eviction_confirmation(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Accept the eviction confirmation on a case."""
        await self._case_action(
            organization_id,
            case_id,
            "eviction-confirmation/accept",
            reason,
            idempotency_key,
            timeout,
        )

    @operation("RejectEvictionConfirmation")
    async def reject_eviction_confirmation(
        self,
        organization_id: str,
        case_id: str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Reject the eviction confirmation on a case."""
        await self._case_action(
            organization_id,
            case_id,
            "eviction-confirmation/reject",
            reason,
            idempotency_key,
            timeout,
        )
