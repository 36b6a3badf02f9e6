"""The response pipeline: status -> exception, body -> model, body -> page.

Every answer the SDK reads passes through here, whoever asked for it: resource calls, listing
pages and the token request. So a body is parsed as JSON in one place (`_serde.parse`), a
decode error is built in one place (:func:`decode_error`) and the next page token is read in
one place (:func:`decode_page`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import attrs

from . import _serde, models
from ._pagination import RawPage
from .errors import APIStatusError, ResponseDecodeError, error_for_response

T = TypeVar("T")


@attrs.frozen
class Response:
    """The answer to one attempt: status, headers and the whole body, already read."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes = attrs.field(repr=False)
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


def decode_error(
    response: Response, reason: str, *, sensitive: bool = False
) -> ResponseDecodeError:
    """The error for a successful response whose body is not what the API documents.

    ``sensitive`` keeps no snippet of the body (a token answer is a credential).
    """
    return ResponseDecodeError(
        reason,
        status_code=response.status_code,
        request_id=response.request_id,
        body=b"" if sensitive else response.content,
        method=response.method,
        url=response.url,
    )


def parse_json(response: Response, *, sensitive: bool = False) -> Any:
    """The body as plain JSON data; ResponseDecodeError when it is not JSON (an HTML page)."""
    try:
        return _serde.parse(response.content)
    except _serde.StructureError as error:
        # Not chained: the JSON error's `doc` is the whole body (personal data, or a credential).
        raise decode_error(response, str(error), sensitive=sensitive) from None


def structure(response: Response, data: Any, cls: type[T], *, sensitive: bool = False) -> T:
    """Parsed body -> model; ResponseDecodeError when it has not the documented shape."""
    try:
        return _serde.structure(data, cls, source=response.content)
    except _serde.StructureError as error:
        raise decode_error(response, str(error), sensitive=sensitive) from None


def decode(response: Response, cls: type[T], *, sensitive: bool = False) -> T:
    """A successful response's body as the model ``cls``."""
    return structure(response, parse_json(response, sensitive=sensitive), cls, sensitive=sensitive)


def decode_page(response: Response) -> RawPage:
    """A listing page read just far enough to know the next token: its document and that token.

    No ``nextPageToken`` (absent, null or "") means the last page. Its items are built by the
    pager (`structure` into the envelope), which owns when pages are parsed, built and freed.
    """
    data = parse_json(response)
    summary = data.get("summary") if isinstance(data, dict) else None
    next_token = summary.get("nextPageToken") if isinstance(summary, dict) else None
    if next_token is not None and not isinstance(next_token, str):
        raise decode_error(response, "summary.nextPageToken is not a string")
    return RawPage(response, data, next_token or None)
