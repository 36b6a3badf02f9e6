"""The response pipeline: status -> exception, body -> model, body -> page.

Every answer the SDK reads passes through here, whoever asked for it: resource calls, listing
pages and the token request. So a body is parsed as JSON in one place (`_serde.parse`), an
error is built from an answer in one place (:func:`error_for_response`: the ProblemDetails
summary, masked and bounded; :func:`decode_error`) and the next page token is read in one
place (:func:`decode_page`).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final, Protocol, TypeVar

import msgspec

from . import _serde, models
from ._config import REQUEST_ID_HEADER
from ._logging import path_of, strip_query
from ._pagination import RawPage
from ._time import parse_retry_after
from .errors import STATUS_CLASSES, APIStatusError, ResponseDecodeError

T = TypeVar("T")

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


class Response(msgspec.Struct, frozen=True):
    """The answer to one attempt: status, headers and the whole body, already read.

    A frozen msgspec Struct, not an attrs class: one is built per attempt, and a frozen attrs
    instance of eight fields costs ~13k instructions on CPython 3.11 against ~1.8k here
    (bench/PROFILES.md, GET). Its repr leaves the body out: it may hold a debtor's record.
    """

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    method: str
    url: str
    """The request URL without its query string."""
    request_id: str | None
    elapsed: float
    """Seconds this attempt took, from sending to the last body byte."""
    attempts: int
    """1 for the first try, 2 after one retry, ..."""

    def text(self) -> str:
        """The body decoded as UTF-8 (the API's only charset); undecodable bytes replaced."""
        return self.content.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (
            f"Response(status_code={self.status_code}, headers={self.headers!r}, "
            f"method={self.method!r}, "
            f"url={self.url!r}, request_id={self.request_id!r}, elapsed={self.elapsed!r}, "
            f"attempts={self.attempts})"
        )


class ListResponse(Protocol[T]):
    """Every generated list envelope: `data` plus an optional `summary` with the next token."""

    @property
    def data(self) -> list[T] | None: ...
    @property
    def summary(self) -> models.Summary | None: ...


def raise_for_status(
    response: Response,
    *,
    error_class: type[APIStatusError] | None = None,
    secret: str | None = None,
) -> Response:
    """The response itself when it is not an error (< 400), else its typed exception.

    ``error_class`` overrides the status table (see :mod:`amili_async.errors`); ``secret`` is
    scrubbed from the body kept on the exception, should a server ever echo it back.
    """
    if response.status_code < 400:
        return response
    content = response.content
    if secret:
        content = content.replace(secret.encode(), b"<redacted>")
    raise error_for_response(
        response.status_code,
        response.headers,
        content,
        response.method,
        response.url,
        error_class=error_class,
    )


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    url: str,
    *,
    error_class: type[APIStatusError] | None = None,
    now: Callable[[], float] = time.time,
) -> APIStatusError:
    """Build the exception for an error answer; ``error_class`` overrides the status table.

    A JSON or problem+json body is parsed (garbage is tolerated: ``body`` None, ``text``
    kept); the message shows status, method, path, request id and the problem's summary.
    ``now`` (unix time) reads a Retry-After given as a date.
    """
    cls = error_class or STATUS_CLASSES.get(status, APIStatusError)
    parsed = _problem_json(headers.get("Content-Type"), body)
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
        text=body.decode("utf-8", "replace"),
        method=method,
        url=url,
        retry_after=parse_retry_after(headers.get("Retry-After"), now()),
    )


def _problem_json(content_type: str | None, body: bytes) -> Any:
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


def decode_error(
    response: Response, reason: str, *, sensitive: bool = False
) -> ResponseDecodeError:
    """The error for a successful response whose body is not what the API documents.

    ``sensitive`` keeps no snippet of the body (a token answer is a credential).
    """
    url = strip_query(response.url)
    snippet = b"" if sensitive else response.content[:BODY_SNIPPET_CHARS]
    return ResponseDecodeError(
        f"cannot decode {response.status_code} response to {response.method} {path_of(url)}"
        f"{_request_id_part(response.request_id)}: {reason}",
        status_code=response.status_code,
        request_id=response.request_id,
        body_snippet=snippet.decode("utf-8", "replace"),
        method=response.method,
        url=url,
    )


def parse_json(response: Response, *, sensitive: bool = False) -> Any:
    """The body as plain JSON data; ResponseDecodeError when it is not JSON (an HTML page)."""
    try:
        return _serde.parse(response.content)
    except _serde.StructureError as error:
        # Not chained: the JSON error's `doc` is the whole body (personal data, or a credential).
        raise decode_error(response, str(error), sensitive=sensitive) from None


def structure(response: Response, data: Any, cls: type[T], *, sensitive: bool = False) -> T:
    """Parsed body -> model; ResponseDecodeError when it has not the documented shape.

    ``data`` is a document of `read` (the typed mirror, or plain data) or any plain data.
    """
    try:
        return _serde.built(data, cls, response.content)
    except _serde.StructureError as error:
        raise decode_error(response, str(error), sensitive=sensitive) from None


def read(response: Response, cls: type, *, sensitive: bool = False) -> Any:
    """The body read for ``cls`` (`_serde.read`: typed in C where it can be); not yet built."""
    try:
        return _serde.read(response.content, cls)
    except _serde.StructureError as error:
        raise decode_error(response, str(error), sensitive=sensitive) from None


def decode(response: Response, cls: type[T], *, sensitive: bool = False) -> T:
    """A successful response's body as the model ``cls`` (`read` and `structure` at once)."""
    try:
        return _serde.decode(response.content, cls)
    except _serde.StructureError as error:
        raise decode_error(response, str(error), sensitive=sensitive) from None


def decode_page(response: Response, envelope: type) -> RawPage:
    """A listing page read just far enough to know the next token: its document and that token.

    No ``nextPageToken`` (absent, null or "") means the last page. Its items are built by the
    pager (`structure` into the envelope), which owns when pages are parsed, built and freed.
    """
    data = read(response, envelope)
    if isinstance(data, dict):
        summary = data.get("summary")
        next_token = summary.get("nextPageToken") if isinstance(summary, dict) else None
    else:  # the envelope's mirror (its token read as a str), or JSON of another shape
        summary = getattr(data, "summary", None)
        next_token = getattr(summary, "next_page_token", None)
    if next_token is not None and not isinstance(next_token, str):
        raise decode_error(response, "summary.nextPageToken is not a string")
    return RawPage(response, data, next_token or None)
