"""Exceptions raised by the SDK, one class per HTTP status worth catching on its own.

Messages name the method, the path (never the query: it can carry personal data), the request
id and the server's own explanation (a ProblemDetails title, detail and per-field errors,
bounded, identity numbers masked); never a token, a secret, the request body or the raw
response body.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from multidict import CIMultiDict

from amili_async import _serde, models
from amili_async._config import REQUEST_ID_HEADER
from amili_async._error_base import AmiliError as AmiliError
from amili_async._logging import path_of, strip_query
from amili_async._retry import parse_retry_after

# Enough of an undecodable body to recognise it (an HTML error page, a truncated document)
# while keeping a debtor's record out of reach of casual logging.
BODY_SNIPPET_CHARS: Final = 200
# Media types whose body we parse as a ProblemDetails document (RFC 9457 and plain JSON).
_JSON_MEDIA_TYPES: Final = frozenset({"application/json", "application/problem+json"})
# The server's explanation in a message: long enough for a title, a detail and a handful of
# field errors, short enough for one log line whatever the server sends.
EXPLANATION_CHARS: Final = 600
# Field errors named in a message; the rest are counted ("+3 more"), all stay in `.body`.
EXPLAINED_FIELDS: Final = 8
# A Norwegian national identity number (11 digits, sometimes written 6+5) or a bearer token
# echoed by a server: masked wherever the server's text reaches a message.
_SECRETS: Final = re.compile(r"(?<!\d)\d{6}[ -]?\d{5}(?!\d)|(?i:bearer)\s+[\w.~+/=-]+")


class APIConnectionError(AmiliError):
    """The request never got an HTTP answer: DNS, connect, reset or truncated body."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = strip_query(url)


class APITimeoutError(APIConnectionError):
    """The request did not complete within its timeout (or its call's deadline)."""


class ClientClosedError(AmiliError):
    """The client was closed (`aclose()`) before or while this call was made."""


class ResponseTooLargeError(APIConnectionError):
    """The answer's body passed ``max_response_size``; it was dropped unread past the limit."""

    def __init__(self, message: str, *, method: str, url: str, limit: int) -> None:
        super().__init__(message, method=method, url=url)
        self.limit = limit


class RepeatedPageTokenError(AmiliError):
    """A listing answered with a page token it had already given: following it would loop.

    ``resume_token`` is the token of the page that repeated it.
    """


class APIStatusError(AmiliError):
    """The server answered with a 4xx or 5xx status."""

    status_code: int
    headers: Mapping[str, str]
    request_id: str | None
    body: Any
    """The parsed JSON body (usually ProblemDetails), None when it was not JSON."""
    text: str
    method: str
    url: str

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str],
        body: Any,
        text: str,
        method: str,
        url: str,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        # A plain CIMultiDict copy: case-insensitive like the original, and picklable.
        self.headers = CIMultiDict(headers)
        self.request_id = self.headers.get(REQUEST_ID_HEADER)
        self.body = body
        self.text = text
        self.method = method
        self.url = strip_query(url)


class _RetryAfterError(APIStatusError):
    """Adds ``retry_after``: seconds the server asked us to wait, None when it did not say."""

    retry_after: float | None

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = parse_retry_after(self.headers.get("Retry-After"), time.time())


class BadRequestError(APIStatusError):
    """400: the request is malformed (for the API: a body that is not JSON)."""


class AuthenticationError(APIStatusError):
    """401, or the token endpoint refused the client credentials."""


class PermissionDeniedError(APIStatusError):
    """403: authenticated, but not allowed to act on this organization or resource."""


class NotFoundError(APIStatusError):
    """404: no such organization, invoice, batch, case or settlement."""


class ConflictError(APIStatusError):
    """409: the resource's state forbids the action (an illegal case transition)."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed JSON that violates the schema."""


class LockedError(APIStatusError):
    """423: the resource is locked by another operation."""


class RateLimitError(_RetryAfterError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """500: the server failed."""


class ServerNotImplementedError(APIStatusError):
    """501: the server does not support this operation."""


class BadGatewayError(APIStatusError):
    """502: a proxy in front of the API got no valid answer."""


class ServiceUnavailableError(_RetryAfterError):
    """503: the service is down or overloaded."""


class ResponseDecodeError(AmiliError):
    """A successful response whose body is not JSON or not the documented shape.

    ``body_snippet`` keeps the start of the body for debugging; it stays out of ``str()``
    because it may hold personal data. It is never chained to the parser's error, whose text
    can quote the offending value: the message names the path and the expected type instead.
    """

    status_code: int
    request_id: str | None
    body_snippet: str
    method: str
    url: str

    def __init__(
        self,
        reason: str,
        *,
        status_code: int,
        request_id: str | None,
        body: bytes,
        method: str,
        url: str,
    ) -> None:
        url = strip_query(url)
        super().__init__(
            f"cannot decode {status_code} response to {method} {path_of(url)}"
            f"{_request_id_part(request_id)}: {reason}"
        )
        self.status_code = status_code
        self.request_id = request_id
        self.body_snippet = body[:BODY_SNIPPET_CHARS].decode("utf-8", "replace")
        self.method = method
        self.url = url


_STATUS_CLASSES: Final[Mapping[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    423: LockedError,
    429: RateLimitError,
    500: InternalServerError,
    501: ServerNotImplementedError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
}


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    url: str,
    *,
    error_class: type[APIStatusError] | None = None,
) -> APIStatusError:
    """Build the exception for an error response; ``error_class`` overrides the status table.

    A JSON or problem+json body is parsed (garbage is tolerated: ``body`` None, ``text``
    kept); the message shows status, method, path, request id and the problem's title.
    """
    cls = error_class or _STATUS_CLASSES.get(status, APIStatusError)
    text = body.decode("utf-8", "replace")
    parsed = _parse_json(headers.get("Content-Type"), body)
    url = strip_query(url)
    message = (
        f"{status} {_reason(status)}: {method} {path_of(url)}"
        f"{_request_id_part(headers.get(REQUEST_ID_HEADER))}"
    )
    summary = _summary(parsed)
    if summary:
        message = f"{message}: {summary}"
    return cls(
        message,
        status_code=status,
        headers=headers,
        body=parsed,
        text=text,
        method=method,
        url=url,
    )


def _parse_json(content_type: str | None, body: bytes) -> Any:
    """The JSON document in ``body`` when the media type says JSON and it parses, else None."""
    if not content_type or not body:
        return None
    if content_type.split(";", 1)[0].strip().lower() not in _JSON_MEDIA_TYPES:
        return None
    try:
        return _serde.parse(body)
    except _serde.StructureError:
        return None


def _summary(parsed: Any) -> str | None:
    """The server's explanation on one line: ProblemDetails ``title``, ``detail`` and the
    ``errors`` map (field -> messages), or OAuth's ``error``/``error_description``; bounded,
    with identity numbers and tokens masked."""
    if not isinstance(parsed, dict):
        return None
    parts: list[str] = []
    for key in ("title", "detail", "error", "error_description"):
        value = parsed.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    fields = parsed.get("errors")
    if isinstance(fields, Mapping) and fields:
        named = [
            f"{name}: {_messages(messages)}"
            for name, messages in itertools.islice(fields.items(), EXPLAINED_FIELDS)
        ]
        more = len(fields) - len(named)
        parts.append("; ".join(named) + (f" (+{more} more)" if more > 0 else ""))
    if not parts:
        return None
    text = _SECRETS.sub("***", " ".join(" - ".join(parts).split()))
    if len(text) > EXPLANATION_CHARS:
        text = text[: EXPLANATION_CHARS - 1] + "\u2026"
    return text


def _messages(messages: Any) -> str:
    if isinstance(messages, list):
        return " ".join(str(m) for m in messages)
    return str(messages)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def _request_id_part(request_id: str | None) -> str:
    return f" (request id {request_id})" if request_id else ""


class BatchWaitTimeoutError(AmiliError):
    """A batch was still not finished (SUCCESS, PARTIAL or FAILED) when the wait timed out.

    ``batch`` is the last state seen; waiting again later is safe.
    """

    batch: models.Batch

    def __init__(self, message: str, *, batch: models.Batch) -> None:
        super().__init__(message)
        self.batch = batch
