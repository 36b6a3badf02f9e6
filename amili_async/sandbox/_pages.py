"""Opaque, tamper-proof page tokens and keyset pagination.

A page token is ``base64url(version | createdAt ms | id | HMAC)``: the position is the
(createdAt, id) of the last item served, not an offset, so a listing neither repeats nor
skips items while new ones are added. The HMAC covers the organisation, the listing and
its filters: a tampered token, a token of another organisation or a token replayed with
other filters is refused with 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from collections.abc import Iterable, Iterator
from typing import TypeVar

from .. import _json
from ._wire import ApiError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "PageCodec",
    "Position",
    "paginate",
    "parse_page_size",
]

# Page size default and limit: inferred (docs/DESIGN.md), one place to change them.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Token layout version: a token from an older layout is refused, never misread.
_VERSION = 1
# 96 bits of HMAC: forging a token by chance is out of reach, and tokens stay short in URLs.
_MAC_LEN = 12
_LAYOUT = struct.Struct(">Bq16s")

#: (createdAt epoch ms, id) of an item: the listing order.
Position = tuple[int, str]
T = TypeVar("T")


def parse_page_size(value: str | None, name: str) -> int:
    """The ``name`` query parameter as a page size (default if absent, 400 if invalid)."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an integer.", errors={name: ["Not an integer."]}
        ) from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(
            400,
            f"{name} must be between 1 and {MAX_PAGE_SIZE}.",
            errors={name: [f"Must be between 1 and {MAX_PAGE_SIZE}."]},
        )
    return size


class PageCodec:
    """Makes and checks page tokens with the app's secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"amili-sandbox/page-token/" + secret).digest()

    def _mac(self, org_id: str, listing: str, filters: dict[str, object], body: bytes) -> bytes:
        context = _json.dumps([org_id, listing, filters], sort_keys=True)
        return hmac.new(self._key, context + b"\x00" + body, hashlib.sha256).digest()[:_MAC_LEN]

    def encode(
        self, org_id: str, listing: str, filters: dict[str, object], position: Position
    ) -> str:
        """The token of ``position`` in this organisation's listing with these filters."""
        body = _LAYOUT.pack(_VERSION, position[0], uuid.UUID(position[1]).bytes)
        token = body + self._mac(org_id, listing, filters, body)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(
        self, token: str, org_id: str, listing: str, filters: dict[str, object], name: str
    ) -> Position:
        """The position in ``token``; 400 if it was not made for this listing and filters."""
        bad = ApiError(
            400,
            "The page token is not valid for this listing.",
            errors={name: ["Invalid, tampered, or issued for another organization or filters."]},
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise bad from None
        if len(raw) != _LAYOUT.size + _MAC_LEN:
            raise bad
        body, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(org_id, listing, filters, body)):
            raise bad
        version, ms, ident = _LAYOUT.unpack(body)
        if version != _VERSION:
            raise bad
        return ms, str(uuid.UUID(bytes=ident))


def paginate(
    items: Iterable[tuple[Position, T]], page_size: int
) -> tuple[list[T], Position | None]:
    """Up to ``page_size`` items and, if at least one more item follows, the position of
    the last one returned (to encode as nextPageToken)."""
    page: list[T] = []
    last: Position | None = None
    it: Iterator[tuple[Position, T]] = iter(items)
    for pos, item in it:
        if len(page) == page_size:
            return page, last
        page.append(item)
        last = pos
    return page, None
