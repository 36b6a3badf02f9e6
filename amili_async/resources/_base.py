"""What every resource shares: the channel it sends through, paths, query formatting, listings.

Resources describe requests (`Request`), hand them to a :class:`Sender` and read the answer
through the response pipeline (`_response`); they never touch aiohttp or the client. The
operation each method implements is recorded with `@operation`, so a test can check that every
operationId of the spec has exactly one method.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, overload
from urllib.parse import quote

import attrs

from .. import _response, _serde, _telemetry, models
from .._pagination import AsyncPager, Page, RawPage, Source, TokenPager
from .._request import DEFAULT_OPTIONS, Request, RequestOptions
from .._request_checks import Checked, refuse_naive, request_item
from .._response import ListResponse, Response
from .._time import format_datetime

T = TypeVar("T")
U = TypeVar("U")
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

OPERATION_ATTR = "__amili_operation__"
JSON = "application/json"


def operation(operation_id: str) -> Callable[[F], F]:
    """Mark a resource method as the SDK's implementation of a spec operationId; each call
    (a listing: its iteration) is one span named for it while tracing is on (`_telemetry`)."""

    def mark(method: F) -> F:
        traced = (
            _telemetry.operation(operation_id, method)
            if inspect.iscoroutinefunction(method)
            else _telemetry.listing(operation_id, method, _TracedPager)
        )
        setattr(traced, OPERATION_ATTR, operation_id)
        return traced

    return mark


class _TracedPager(AsyncPager[T]):
    """A listing iterated in its operation's span (`_telemetry.Listing`): same pages."""

    def __init__(self, inner: AsyncPager[T], listing: _telemetry.Listing) -> None:
        self._inner = inner
        self._span = listing

    async def _produce(self, *args: Any) -> None:
        await self._inner._produce(*args)

    def restaged(self, wrap: Callable[[Source[T]], Source[U]]) -> AsyncPager[U]:
        return _TracedPager(self._inner.restaged(wrap), self._span)

    def _built(self, ledger: Any) -> AsyncGenerator[Page[T], None]:
        return self._span.pages(self._inner._built(ledger))


class Sender(Protocol):
    """Where resources send their requests (the client's channel)."""

    @property
    def prefetch(self) -> int: ...
    @property
    def retry_posts(self) -> bool:
        """Whether POSTs may be sent again (bulk resends a chunk only then)."""
        ...

    def send(self, request: Request) -> Coroutine[Any, Any, Response]: ...


def path(template: str, *ids: str) -> str:
    """Fill `{}` slots with URL-quoted ids; an empty id is refused (it would hit another path).

    So are "." and "..": quoting leaves them as they are, and URL normalisation (RFC 3986 dot
    segments) would turn `/orgs/o1/invoices/..` into `/orgs/o1`.
    """
    try:
        # The common case (ids that need no quoting) checked in C: no Python loop per id.
        if all(map(_UNRESERVED, ids)) and "." not in ids and ".." not in ids:
            return template.format(*ids)
    except TypeError:  # an id that is not a str: refused below
        pass
    quoted = []
    for value in ids:
        if not isinstance(value, str) or not value or value in (".", ".."):
            raise ValueError("ids must be non-empty strings other than '.' and '..'")
        # Most ids (UUIDs, numbers) need no quoting: one regex match instead of quote() each.
        quoted.append(value if _UNRESERVED(value) else quote(value, safe=""))
    return template.format(*quoted)


# RFC 3986 unreserved characters: quote(safe="") leaves exactly these as they are.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def wire_value(value: Any, name: str = "query value") -> str:
    """A query value as the API expects it (ISO 8601 dates, enum values, true/false).

    A date-time without a timezone is refused, as in a request body (one rule: which timezone
    was meant is not for the SDK to guess); `name` (the wire name) says which parameter.
    """
    if isinstance(value, str):  # also enums: they are StrEnums
        return str(value.value) if isinstance(value, Enum) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        refuse_naive(value, f"query parameter {name}")
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | Decimal):
        return str(value)
    raise TypeError(f"unsupported query value type {type(value).__name__}")


def query(params: Mapping[str, Any]) -> dict[str, str]:
    """Wire query from {wire name: value}; None means "no filter" and is left out."""
    return {name: wire_value(value, name) for name, value in params.items() if value is not None}


def as_models(items: Iterable[M | Mapping[str, Any]], cls: type[M]) -> list[M]:
    """Accept models or dicts (e.g. rows read from JSON) and return models, checked before
    the network (see `_request_checks`: float amounts, naive date-times...); items
    `create_many` checked already (`Checked`) are taken as they are."""
    if type(items) is Checked and items.cls is cls:
        return items
    return [request_item(item, cls, f"$[{i}]") for i, item in enumerate(items)]


def options(timeout: float | None = None, idempotency_key: str | None = None) -> RequestOptions:
    """Per-call options; the defaults mean "use the client's settings"."""
    if timeout is None and idempotency_key is None:
        return DEFAULT_OPTIONS
    return RequestOptions(timeout=timeout, idempotency_key=idempotency_key)


class Resource:
    """Base of the resources: holds the channel that sends the requests."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    @overload
    async def _call(self, request: Request, cast_to: type[T]) -> T: ...
    @overload
    async def _call(self, request: Request, cast_to: None) -> None: ...
    async def _call(self, request: Request, cast_to: type[T] | None) -> T | None:
        """Send, raise for an error status, decode the body into `cast_to` (None: no body)."""
        response = _response.raise_for_status(await self._sender.send(request))
        return None if cast_to is None else _response.decode(response, cast_to)

    def _get(
        self,
        route: str,
        cast_to: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        root: bool = False,
    ) -> Coroutine[Any, Any, T]:
        """GET `route` into `cast_to`: `_call`'s coroutine itself (one frame less per call)."""
        wire = query(params) if params else None
        chosen = DEFAULT_OPTIONS if timeout is None else options(timeout)  # no call per GET
        request = Request("GET", route, params=wire, root=root, options=chosen)
        return self._call(request, cast_to)

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
        return await self._call(request, cast_to)

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
        source = _ListingSource(
            self._sender, route, query(params), token_param, options(timeout), envelope, keep
        )
        depth = self._sender.prefetch if prefetch is None else prefetch
        return TokenPager(source, page_token=page_token, prefetch=depth)


@attrs.frozen
class _ListingSource(Generic[T]):
    """One listing's requests and pages (see `_pagination.Source`): the filters bound, the
    token in its endpoint's spelling, the envelope its pages decode into, ``keep`` applied."""

    sender: Sender
    route: str
    base_query: dict[str, str]
    token_param: str
    request_options: RequestOptions
    envelope: type[ListResponse[T]]
    keep: Callable[[T], bool] | None

    async def fetch(self, token: str | None) -> Response:
        page_query = (
            self.base_query if token is None else {**self.base_query, self.token_param: token}
        )
        request = Request("GET", self.route, params=page_query, options=self.request_options)
        return _response.raise_for_status(await _telemetry.span("page", self.sender.send(request)))

    def read(self, answer: Response) -> RawPage:
        return _response.decode_page(answer, self.envelope)

    def build(self, page: RawPage) -> list[T]:
        items = _response.structure(page.answer, page.document, self.envelope).data or []
        keep = self.keep
        return items if keep is None else [item for item in items if keep(item)]
