"""The package logger and the helpers that keep personal data and secrets out of log lines.

Query strings can carry personal data (CustomerNumber, SearchTerm), bodies hold debtor data
and the Authorization header holds a bearer token: none of them may reach a log or a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

logger: Final = logging.getLogger("amili_async")

# What a redacted header value is replaced with: says "something was here" and nothing more.
REDACTED: Final = "<redacted>"
# Headers whose values are credentials (lower-case for a case-insensitive match).
_SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})


def strip_query(url: str) -> str:
    """The URL without its query string and fragment."""
    cut = len(url)
    for mark in ("?", "#"):
        index = url.find(mark)
        if index != -1:
            cut = min(cut, index)
    return url[:cut]


def path_of(url: str) -> str:
    """Only the path of a URL: what messages and log lines show of a request."""
    return urlsplit(url).path or "/"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credential values replaced by :data:`REDACTED`."""
    return {
        name: REDACTED if name.lower() in _SECRET_HEADERS else value
        for name, value in headers.items()
    }


def describe_error(error: BaseException) -> str:
    """Why an attempt got no answer, in a few words, naming the host and port it tried (never
    a URL: a query string could follow it): "connection refused to 127.0.0.1:9"."""
    host = getattr(error, "host", None)
    port = getattr(error, "port", None)
    where = f" to {host}:{port}" if host is not None and port is not None else ""
    if isinstance(error, TimeoutError):
        return f"timed out{where}"
    cause = getattr(error, "os_error", None)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused{where}"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect{where}: {cause.strerror.lower()}"
    return f"{type(error).__name__}{where}"


def describe_status(status: int, retry_after: bool) -> str:
    """A retried answer's status, with its phrase: "503 Service Unavailable (Retry-After)"."""
    try:
        phrase = f" {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""
    return f"{status}{phrase}{', as Retry-After asked' if retry_after else ''}"


def retry_line(
    method: str,
    path: str,
    delay: float,
    cause: str,
    attempt: int,
    attempts: int,
    gives_up_at: float | None,
) -> str:
    """The log line of a coming retry: what, when, why, and how long it may go on.

    "retrying GET /v1/orgs/o1/invoices in 4 s: connection refused to 127.0.0.1:9
    (attempt 3 of 11, gives up at 12:04:10)"; ``gives_up_at`` is a wall-clock time, shown in
    local time; past ``attempts`` (retries for a time budget) the count has no "of".
    """
    count = f"attempt {attempt} of {attempts}" if attempt <= attempts else f"attempt {attempt}"
    if gives_up_at is not None:
        count += f", gives up at {time.strftime('%H:%M:%S', time.localtime(gives_up_at))}"
    return f"retrying {method} {path} in {delay:.3g} s: {cause} ({count})"
