"""400 for a query parameter the spec does not define for the operation (issue 11)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ._wire import ApiError

__all__ = ["BATCH_FILTERS", "CASE_FILTERS", "INVOICE_FILTERS", "QUERY_PARAMS", "query_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ORG = "/collection/v1/orgs/{org}"

# The filters of the three org listings; their handlers read these same names.
INVOICE_FILTERS = (
    "Status",
    "Type",
    "InvoiceNumber",
    "UniqueSourceInvoiceId",
    "CustomerNumber",
    "From",
    "To",
)
BATCH_FILTERS = ("State", "Type", "SubjectId", "IdempotencyKey", "SortDirection")
CASE_FILTERS = (
    "Status",
    "Type",
    "CaseNumber",
    "CustomerNumber",
    "UniqueSourceInvoiceId",
    "SearchTerm",
    "FromCreatedAt",
    "ToCreatedAt",
)

# Query parameters the spec defines, per (method, route): anything else answers 400.
# tests/sandbox/test_query_params.py checks this table equals the spec's parameters.
_ORG_QUERY: dict[tuple[str, str], frozenset[str]] = {
    ("GET", _ORG + "/invoices"): frozenset((*INVOICE_FILTERS, "PageToken", "PageSize")),
    ("GET", _ORG + "/batches"): frozenset((*BATCH_FILTERS, "PageToken", "PageSize")),
    ("GET", _ORG + "/cases"): frozenset((*CASE_FILTERS, "PageToken", "PageSize")),
    ("GET", _ORG + "/settlements"): frozenset(("fromDate", "toDate", "pageSize", "pageToken")),
    ("GET", "/webapi/api/Batch"): frozenset(
        (
            "senderid",
            "creditorid",
            "customerref",
            "ledgerref",
            "includeclosed",
            "lastsettlementid",
            "remittancedate",
            "languagecode",
        )
    ),
    ("POST", "/webapi/api/Batch"): frozenset(("senderid",)),
    ("POST", "/webapi/api/Attachment"): frozenset(("senderid", "caseid")),
}
QUERY_PARAMS = _ORG_QUERY  # every other route takes no query parameter


@web.middleware
async def query_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for a query parameter the spec does not define for the operation."""
    resource = request.match_info.route.resource
    if resource is not None and request.query:
        allowed = QUERY_PARAMS.get((request.method, resource.canonical), frozenset())
        unknown = sorted({n for n in request.query if n not in allowed})
        if unknown:
            raise ApiError(
                400,
                f"Unknown query parameter {', '.join(unknown)}.",
                errors={n: ["Not a query parameter of this operation."] for n in unknown},
            )
    return await handler(request)
