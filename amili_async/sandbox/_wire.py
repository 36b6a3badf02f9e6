"""JSON, number and time helpers shared by the sandbox modules (no aiohttp here)."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import _json
from .._time import as_utc

__all__ = [
    "DAY_MS",
    "ApiError",
    "day_str",
    "decimal_or_none",
    "dumps",
    "fmt_ms",
    "loads",
    "now_ms",
    "parse_date",
    "parse_datetime_ms",
]

#: Milliseconds per (UTC, leap-second-free) day: epoch ms <-> days.
DAY_MS = 86_400_000
# The Unix epoch as a date ordinal and as an aware datetime, for the conversions below.
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH_DT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ApiError(Exception):
    """An error answered as ProblemDetails (``application/problem+json``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = errors
        self.headers = headers or {}


def _default(obj: object) -> Any:
    if isinstance(obj, Decimal):
        text = str(obj)
        if "E" in text or "e" in text:
            text = format(obj, "f")
        # Exact JSON number, no float round trip: 4500.10 stays 4500.10.
        return _json.Fragment(text.encode())
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(obj: object) -> bytes:
    """Serialise to JSON bytes; Decimal values go out as exact JSON numbers, and so do
    integers beyond 64 bits (a stored legacy batch echoes what it was sent; JSON has no
    integer limit)."""
    try:
        return _json.dumps(obj, default=_default)
    except TypeError:
        return _json.dumps(_exact_big_ints(obj), default=_default)


# The integers orjson writes itself; a larger one goes out as its exact digits.
_INT64 = range(-(2**63), 2**64)


def _exact_big_ints(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _exact_big_ints(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_exact_big_ints(v) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool) and obj not in _INT64:
        return _json.Fragment(str(obj).encode())
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON number {name}")


def loads(body: bytes) -> Any:
    """Parse request JSON with every non-integer number as Decimal (never float)."""
    return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)


def now_ms() -> int:
    """Now, as epoch milliseconds (the wire's timestamp resolution)."""
    return time.time_ns() // 1_000_000


# day_str results: a listing formats the same few hundred days over and over.
_DAY_CACHE: dict[int, str] = {}


def day_str(days: int) -> str:
    """Days since the Unix epoch -> ``YYYY-MM-DD``."""
    s = _DAY_CACHE.get(days)
    if s is None:
        s = dt.date.fromordinal(_EPOCH_ORDINAL + days).isoformat()
        if len(_DAY_CACHE) < 100_000:
            _DAY_CACHE[days] = s
    return s


def fmt_ms(ms: int) -> str:
    """Epoch milliseconds -> ``2019-08-24T14:15:22.123Z`` (UTC)."""
    days, rem = divmod(ms, DAY_MS)
    h, rem = divmod(rem, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{day_str(days)}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"


def parse_datetime_ms(value: str) -> int:
    """ISO 8601 date or date-time -> epoch ms (naive means UTC). Raises ValueError."""
    text = value.strip()
    if not text:
        raise ValueError("empty date-time")
    if len(text) == 10:
        d = dt.date.fromisoformat(text)
        return (d.toordinal() - _EPOCH_ORDINAL) * DAY_MS
    parsed = as_utc(dt.datetime.fromisoformat(text))
    return (parsed - _EPOCH_DT) // dt.timedelta(milliseconds=1)


def parse_date(value: str) -> str:
    """ISO date or date-time -> ``YYYY-MM-DD`` (UTC day). Raises ValueError."""
    return day_str(parse_datetime_ms(value) // DAY_MS)


def decimal_or_none(value: object) -> Decimal | None:
    """A JSON number (int or Decimal, not bool) as Decimal, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        try:
            return value if value.is_finite() else None
        except InvalidOperation:  # pragma: no cover - defensive
            return None
    return None
