"""Invoice operations: hand invoices to collection, read them back, list them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import models
from .._pagination import AsyncPager, MergedPager, TokenPager
from .._time import as_utc, partition_window
from ._base import as_models, operation, path, query
from ._writes import BatchWrites


class Invoices(BatchWrites[models.NewInvoice]):
    """`client.invoices`: the Invoice section of the docs, plus `create_many`."""

    item_model = models.NewInvoice
    kind = "invoices"

    @operation("GetInvoiceById")
    async def get(
        self, organization_id: str, invoice_id: str, *, timeout: float | None = None
    ) -> models.Invoice:
        """One invoice with its claims, debtors and amounts."""
        route = path("/orgs/{}/invoices/{}", organization_id, invoice_id)
        envelope = await self._get(route, models.InvoiceEnvelope, timeout=timeout)
        return envelope.data

    @operation("CreateInvoices")
    async def create(
        self,
        organization_id: str,
        invoices: Iterable[models.NewInvoice | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> models.BatchReference:
        """Submit invoices (models or wire-shaped dicts); answers with the batch to wait for."""
        body = models.CreateInvoicesRequest(invoices=as_models(invoices, models.NewInvoice))
        route = path("/orgs/{}/invoices", organization_id)
        return await self._create_batch(route, body, idempotency_key, timeout)

    @operation("GetInvoicesByOrganization")
    def list(
        self,
        organization_id: str,
        *,
        status: models.InvoiceStatus | str | None = None,
        type: models.InvoiceType | str | None = None,
        invoice_number: str | None = None,
        unique_source_invoice_id: str | None = None,
        customer_number: str | None = None,
        from_: dt.datetime | None = None,
        to: dt.datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        prefetch: int | None = None,
        partitions: int | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[models.Invoice]:
        """Stream the organization's invoices, page by page (filters kept on every page).

        `partitions=N` splits the `from_`/`to` window (both required then) into N equal
        sub-windows listed concurrently and merged into one stream, every invoice once.
        """
        route = path("/orgs/{}/invoices", organization_id)
        filters = {
            "Status": status,
            "Type": type,
            "InvoiceNumber": invoice_number,
            "UniqueSourceInvoiceId": unique_source_invoice_id,
            "CustomerNumber": customer_number,
            "PageSize": page_size,
        }

        def window(
            start: dt.datetime | None, end: dt.datetime | None, token: str | None
        ) -> TokenPager[models.Invoice]:
            return self._listing(
                route,
                {**filters, "From": start, "To": end},
                token_param="PageToken",
                envelope=models.InvoiceListResponse,
                page_token=token,
                prefetch=prefetch,
                timeout=timeout,
                keep=_created_before(end),
            )

        if partitions is None or partitions == 1:
            return window(from_, to, page_token)
        query({"From": from_, "To": to})  # the query rules (no naive bound) before splitting
        if page_token is not None:
            raise ValueError(
                "page_token cannot resume a partitioned listing: list each window on its own, "
                "with its own page_token (as `amili-async export --partitions` does)"
            )
        windows = partition_window(from_, to, partitions)  # the export plans' partitioner
        return MergedPager([window(lo, hi, None) for lo, hi in windows], concurrency=partitions)


def _created_before(end: dt.datetime | None) -> Callable[[models.Invoice], bool] | None:
    """Client-side guard of a window's upper bound (To is exclusive).

    The server filters already; this keeps partitions disjoint even if a server treated `To` as
    inclusive (the docs do not say), so an invoice on a boundary is never yielded twice.
    """
    if end is None:
        return None
    bound = as_utc(end)  # sent as UTC (see _time.format_datetime); compared as UTC too
    return lambda invoice: invoice.created_at is None or invoice.created_at < bound
