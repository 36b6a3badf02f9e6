"""The package logger and the helpers that keep personal data and secrets out of log lines.

Query strings can carry personal data (CustomerNumber, SearchTerm), bodies hold debtor data
and the Authorization header holds a bearer token: none of them may reach a log or a message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
