"""Date-times on the wire: one rule for naive values, one way to write them."""

from __future__ import annotations

import datetime as dt
import itertools


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


def split_window(
    start: dt.datetime, end: dt.datetime, parts: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[start, end)`` cut into ``parts`` equal, adjacent windows (the last ends at ``end``)."""
    if parts < 1 or not start < end:
        raise ValueError("a window needs start < end and parts >= 1")
    step = (end - start) / parts
    bounds = [start + step * i for i in range(parts)] + [end]
    return list(itertools.pairwise(bounds))
