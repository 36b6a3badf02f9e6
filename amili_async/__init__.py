"""Async Python SDK for the Amili AutoCollect debt-collection API.

async with AmiliClient(client_id=..., client_secret=..., environment="staging") as client:
    invoice = await client.invoices.get(org_id, invoice_id)
    async for invoice in client.invoices.list(org_id, status="OPEN"):
        ...

Hooks see every attempt: ``on_request`` gets a :class:`RequestInfo` (method, URL without its
query, headers with credentials redacted, attempt number), ``on_response`` a :class:`Response`
(status, headers, method, URL, request id, elapsed seconds, attempts)::

    def log_attempt(info: RequestInfo) -> None:
        print(info.method, info.url, "attempt", info.attempt)

    AmiliClient(..., on_request=log_attempt, on_response=lambda r: print(r.status_code))
"""

from typing import TYPE_CHECKING, Any

from . import models, wire
from ._client import AmiliClient, RawResponse, RawResponseUnavailableError
from ._pagination import AsyncPager, Page
from ._ratelimit import AdaptiveRate, FixedRate
from ._response import Response
from ._serde import StructureError
from ._transport import RequestHook, RequestInfo, ResponseHook
from ._version import __version__
from .bulk import ItemResult
from .errors import (
    AmiliError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    BatchWaitTimeoutError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    LockedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RateLimitWaitTimeoutError,
    RepeatedPageTokenError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerNotImplementedError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)

if TYPE_CHECKING:
    from .webhooks import WebhookError


def __getattr__(name: str) -> Any:
    """`WebhookError` on first use: the webhooks package is server side (aiohttp.web), which
    a client that never receives a webhook should not load."""
    if name == "WebhookError":
        from .webhooks import WebhookError

        return WebhookError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AdaptiveRate",
    "AmiliClient",
    "AmiliError",
    "AsyncPager",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BatchWaitTimeoutError",
    "ClientClosedError",
    "ConflictError",
    "FixedRate",
    "InternalServerError",
    "ItemResult",
    "LockedError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitWaitTimeoutError",
    "RawResponse",
    "RawResponseUnavailableError",
    "RepeatedPageTokenError",
    "RequestHook",
    "RequestInfo",
    "Response",
    "ResponseDecodeError",
    "ResponseHook",
    "ResponseTooLargeError",
    "ServerNotImplementedError",
    "ServiceUnavailableError",
    "StructureError",
    "UnprocessableEntityError",
    "WebhookError",
    "__version__",
    "models",
    "wire",
]
