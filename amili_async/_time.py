"""Date-times on the wire: one rule for naive values, one way to write them, and how long a
server's Retry-After asks us to wait."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from email.utils import parsedate_to_datetime


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` with UTC attached when it is naive: Amili speaks UTC, never local time."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    """ISO 8601 the way Amili writes it: `Z` for UTC, milliseconds only when present."""
    value = as_utc(value)
    if value.utcoffset() == dt.timedelta(0):
        suffix = "Z"
        value = value.replace(tzinfo=None)
    else:
        suffix = ""
    if value.microsecond == 0:
        text = value.isoformat(timespec="seconds")
    elif value.microsecond % 1000 == 0:
        text = value.isoformat(timespec="milliseconds")
    else:
        text = value.isoformat(timespec="microseconds")
    return text + suffix


def partition_window(
    start: dt.datetime | None, end: dt.datetime | None, parts: int
) -> list[tuple[dt.datetime | None, dt.datetime | None]]:
    """The one window partitioner (export plans, ``invoices.list(partitions=)``): ``[start,
    end)`` cut into ``parts`` equal, adjacent windows, the last ending at ``end``.

    One part may be unbounded (``[(start, end)]`` as given); more need both bounds.
    """
    if parts < 1:
        raise ValueError(f"partitions must be >= 1, not {parts}")
    if start is None or end is None:
        if parts > 1:
            raise ValueError("more than one partition needs a window: from_ and to")
        return [(start, end)]
    if not start < end:
        raise ValueError("a window to partition needs from_ < to")
    step = (end - start) / parts
    bounds = [start + step * i for i in range(parts)] + [end]
    return list(itertools.pairwise(bounds))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a Retry-After header asks us to wait, None when absent or unreadable.

    ``value`` is delta-seconds or an HTTP date; ``now`` is the current unix time. A date in
    the past or a negative number means "now" (0).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # float() also reads "nan" and "inf", which are not delta-seconds.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 9110 dates are always GMT; parsedate_to_datetime leaves "-0000" naive.
    return max(0.0, as_utc(when).timestamp() - now)
