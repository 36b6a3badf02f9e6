"""aiohttp response helpers: JSON bodies and RFC 9457 ProblemDetails."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._wire import dumps

__all__ = [
    "ADMIN_PREFIX",
    "JSON",
    "PROBLEM_JSON",
    "REQUEST_ID_KEY",
    "json_response",
    "problem_response",
]

# The content types the API answers with (RFC 9457 for errors).
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
# The sandbox's own endpoints (not Amili's API): no faults, no rate limit, no bearer token.
ADMIN_PREFIX = "/_sandbox/"
# Where a request keeps its id, for the response header and ProblemDetails' traceId.
REQUEST_ID_KEY = web.RequestKey("amili_request_id", str)

# ProblemDetails ``type`` per status: the RFC section, as ASP.NET Core sends (DESIGN.md infers
# that Amili's errors are ASP.NET Core ProblemDetails).
_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
    413: "https://tools.ietf.org/html/rfc9110#section-15.5.14",
    415: "https://tools.ietf.org/html/rfc9110#section-15.5.16",
    422: "https://tools.ietf.org/html/rfc9110#section-15.5.21",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    502: "https://tools.ietf.org/html/rfc9110#section-15.6.3",
    503: "https://tools.ietf.org/html/rfc9110#section-15.6.4",
}


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response (Decimal values as exact numbers)."""
    return web.Response(body=dumps(data), status=status, content_type=JSON)


def problem_response(
    request: web.BaseRequest,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An ASP.NET-Core-style ProblemDetails answer."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {
        "type": _TYPES.get(status, "about:blank"),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "traceId": request.get(REQUEST_ID_KEY),
    }
    if errors:
        body["errors"] = errors
    resp = web.Response(body=dumps(body), status=status, content_type=PROBLEM_JSON)
    if headers:
        resp.headers.update(headers)
    return resp
