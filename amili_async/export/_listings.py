"""What can be exported: each listing's model, the filters it takes and how a unit lists it.

The one place that maps a unit (resource, organisation, window, filters) onto a call of the
SDK, for the unit engine and so for every export (one file, a plan, a Dask cluster).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .. import models

if TYPE_CHECKING:
    from .._client import AmiliClient
    from .._pagination import AsyncPager

__all__ = ["LISTINGS", "Listing"]


def _date(value: dt.datetime | None) -> dt.date | None:
    return None if value is None else value.date()


@attrs.frozen
class Listing:
    """One exportable listing: its model, the filters a unit may carry, its window."""

    model: type[Any]
    filters: frozenset[str]
    """Keyword arguments of the SDK's list call a unit may carry (strings)."""
    call: Callable[..., AsyncPager[Any]]
    """`call(client, org, from_, to, filters, page_size, page_token)` -> the pager."""
    partitionable: bool = False
    """True when the window is on a date-time (createdAt), so it can be cut into parts."""


def _invoices(
    client: AmiliClient,
    org: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    filters: Mapping[str, str],
    page_size: int | None,
    page_token: str | None,
) -> AsyncPager[Any]:
    return client.invoices.list(
        org,
        from_=start,
        to=end,
        page_size=page_size,
        page_token=page_token,
        **filters,  # type: ignore[arg-type]
    )


def _batches(
    client: AmiliClient,
    org: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    filters: Mapping[str, str],
    page_size: int | None,
    page_token: str | None,
) -> AsyncPager[Any]:
    return client.batches.list(
        org,
        page_size=page_size,
        page_token=page_token,
        **filters,  # type: ignore[arg-type]
    )


def _settlements(
    client: AmiliClient,
    org: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    filters: Mapping[str, str],
    page_size: int | None,
    page_token: str | None,
) -> AsyncPager[Any]:
    return client.settlements.list(
        org,
        from_date=_date(start),
        to_date=_date(end),
        page_size=page_size,
        page_token=page_token,
    )


def _cases(
    client: AmiliClient,
    org: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    filters: Mapping[str, str],
    page_size: int | None,
    page_token: str | None,
) -> AsyncPager[Any]:
    return client.collections.list_cases(
        org,
        from_created_at=start,
        to_created_at=end,
        page_size=page_size,
        page_token=page_token,
        **filters,  # type: ignore[arg-type]
    )


LISTINGS: dict[str, Listing] = {
    "invoices": Listing(
        models.Invoice,
        frozenset(
            {"status", "type", "invoice_number", "unique_source_invoice_id", "customer_number"}
        ),
        _invoices,
        partitionable=True,
    ),
    "batches": Listing(models.Batch, frozenset({"state", "type"}), _batches),
    "settlements": Listing(models.Settlement, frozenset(), _settlements),
    "cases": Listing(models.Case, frozenset({"status", "type"}), _cases, partitionable=True),
}
"""Every exportable listing by resource name (the CLI's `export WHAT`)."""
