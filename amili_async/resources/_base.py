"""What every resource shares: the client it calls, paths, query formatting, listings.

Resources describe requests (`Request`) and name the model to decode; they never touch
aiohttp. The operation each method implements is recorded with `@operation`, so a test can
check that every operationId of the spec has exactly one method.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload
from urllib.parse import quote

from .. import _serde, bulk, models
from .._pagination import PendingPage, TokenPager
from .._request import Request, RequestOptions, Response

if TYPE_CHECKING:
    from .batches import Batches

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

OPERATION_ATTR = "__amili_operation__"
JSON = "application/json"


def operation(operation_id: str) -> Callable[[F], F]:
    """Mark a resource method as the SDK's implementation of a spec operationId."""

    def mark(method: F) -> F:
        setattr(method, OPERATION_ATTR, operation_id)
        return method

    return mark


class Requester(Protocol):
    """The part of AmiliClient that resources use."""

    @property
    def prefetch(self) -> int: ...
    @property
    def batches(self) -> Batches: ...

    async def _send(self, request: Request) -> Response: ...
    def _parse(self, response: Response) -> Any: ...
    def _structure(self, response: Response, data: Any, cast_to: type[T]) -> T: ...

    @overload
    async def _request(self, request: Request, cast_to: type[T]) -> T: ...
    @overload
    async def _request(self, request: Request, cast_to: None) -> None: ...
    async def _request(self, request: Request, cast_to: type[T] | None) -> T | None: ...


class ListResponse(Protocol[T]):
    """Every generated list envelope: `data` plus an optional `summary` with the next token."""

    @property
    def data(self) -> list[T]: ...
    @property
    def summary(self) -> models.Summary | None: ...


def path(template: str, *ids: str) -> str:
    """Fill `{}` slots with URL-quoted ids; an empty id is refused (it would hit another path).

    So are "." and "..": quoting leaves them as they are, and URL normalisation (RFC 3986 dot
    segments) would turn `/orgs/o1/invoices/..` into `/orgs/o1`.
    """
    for value in ids:
        if not isinstance(value, str) or not value or value in (".", ".."):
            raise ValueError("ids must be non-empty strings other than '.' and '..'")
    return template.format(*(quote(value, safe="") for value in ids))


def wire_value(value: Any) -> str:
    """A query value as the API expects it (ISO 8601 dates, enum values, true/false)."""
    if isinstance(value, str):  # also enums: they are StrEnums
        return str(value.value) if isinstance(value, Enum) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return _serde.format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | Decimal):
        return str(value)
    raise TypeError(f"unsupported query value type {type(value).__name__}")


def query(params: Mapping[str, Any]) -> dict[str, str]:
    """Wire query from {wire name: value}; None means "no filter" and is left out."""
    return {name: wire_value(value) for name, value in params.items() if value is not None}


def as_models(items: Iterable[M | Mapping[str, Any]], cls: type[M]) -> list[M]:
    """Accept models or wire-shaped dicts (e.g. rows read from JSON) and return models."""
    return [item if isinstance(item, cls) else _serde.structure(item, cls) for item in items]


def options(timeout: float | None = None, idempotency_key: str | None = None) -> RequestOptions:
    """Per-call options; the defaults mean "use the client's settings"."""
    return RequestOptions(timeout=timeout, idempotency_key=idempotency_key)


class Resource:
    """Base of the resources: holds the client that sends the requests."""

    def __init__(self, client: Requester) -> None:
        self._client = client

    async def _get(
        self,
        route: str,
        cast_to: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        root: bool = False,
    ) -> T:
        request = Request(
            "GET", route, params=query(params or {}), root=root, options=options(timeout)
        )
        return await self._client._request(request, cast_to)

    @overload
    async def _post(
        self,
        route: str,
        body: Any,
        cast_to: type[T],
        *,
        idempotency_key: str | None,
        timeout: float | None,
        params: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        root: bool = False,
    ) -> T: ...
    @overload
    async def _post(
        self,
        route: str,
        body: Any,
        cast_to: None,
        *,
        idempotency_key: str | None,
        timeout: float | None,
        params: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        root: bool = False,
    ) -> None: ...
    async def _post(
        self,
        route: str,
        body: Any,
        cast_to: type[T] | None,
        *,
        idempotency_key: str | None,
        timeout: float | None,
        params: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        root: bool = False,
    ) -> T | None:
        """POST a body: a model (or None) is JSON-encoded; bytes are sent as they are."""
        payload = body if isinstance(body, bytes) or body is None else _serde.dumps(body)
        request = Request(
            "POST",
            route,
            params=query(params or {}),
            body=payload,
            content_type=content_type if payload is not None else None,
            root=root,
            options=options(timeout, idempotency_key),
        )
        return await self._client._request(request, cast_to)

    async def _create_batch(
        self, route: str, body: Any, idempotency_key: str | None, timeout: float | None
    ) -> models.BatchReference:
        """POST one asynchronous write; the 202 answer names the batch to wait for."""
        envelope = await self._post(
            route,
            body,
            models.BatchReferenceEnvelope,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )
        return envelope.data

    def _create_many(
        self,
        organization_id: str,
        create: Callable[..., Awaitable[models.BatchReference]],
        items: Iterable[M] | AsyncIterable[M],
        *,
        chunk_size: int,
        concurrency: int,
        wait_timeout: float | None,
        poll_interval: float,
    ) -> AsyncIterator[bulk.ItemResult[M]]:
        """`create_many` of every write resource: chunks through `create`, see amili_async.bulk."""

        async def submit(chunk: list[Any], key: str) -> models.BatchReference:
            return await create(organization_id, chunk, idempotency_key=key)

        return bulk.submit_many(
            self._client.batches,
            organization_id,
            submit,
            items,
            chunk_size=chunk_size,
            concurrency=concurrency,
            wait_timeout=wait_timeout,
            poll_interval=poll_interval,
        )

    def _listing(
        self,
        route: str,
        params: Mapping[str, Any],
        *,
        token_param: str,
        envelope: type[ListResponse[T]],
        page_token: str | None,
        prefetch: int | None,
        timeout: float | None,
        keep: Callable[[T], bool] | None = None,
    ) -> TokenPager[T]:
        """A pager whose every page request carries the same filters and page size."""
        base_query = query(params)
        request_options = options(timeout)
        client = self._client

        async def fetch(token: str | None) -> PendingPage[T]:
            page_query = base_query if token is None else {**base_query, token_param: token}
            request = Request("GET", route, params=page_query, options=request_options)
            response = await client._send(request)
            data = client._parse(response)
            summary = data.get("summary") if isinstance(data, dict) else None
            next_token = summary.get("nextPageToken") if isinstance(summary, dict) else None

            if next_token is not None and not isinstance(next_token, str):
                raise response.decode_error("summary.nextPageToken is not a string")

            def build() -> list[T]:
                listing: ListResponse[T] = client._structure(response, data, envelope)
                items = listing.data or []
                return items if keep is None else [item for item in items if keep(item)]

            return PendingPage(build, next_token or None, token)

        depth = client.prefetch if prefetch is None else prefetch
        return TokenPager(fetch, page_token=page_token, prefetch=depth)


Decoder = Callable[[bytes], Awaitable[Any]]
