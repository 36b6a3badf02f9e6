"""Planning: an export cut into units of work, each one organisation's listing over one window.

A unit is plain data (frozen, picklable, JSON-serialisable) so any engine can ship it to any
process; its id is a digest of what it exports, so the same plan made twice, anywhere, names
the same units and the same output files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .. import _json
from .._time import as_utc, format_datetime, partition_window
from ._listings import LISTINGS

__all__ = ["FILTERS", "RESOURCES", "ExportUnit", "plan_export"]

RESOURCES = tuple(LISTINGS)
"""What can be exported in units (`_listings.LISTINGS`)."""

FILTERS = LISTINGS["invoices"].filters
"""Filters an invoice unit may carry: the keyword arguments of `client.invoices.list`."""

# Organisation ids become directory names: keep them to characters that are safe in a path.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Hex digits of the sha256 kept in a unit id: 64 bits, so a collision among even a billion
# units of one plan is unlikely (birthday bound ~ n^2 / 2^65), and names stay short.
_ID_HEX = 16


def _parse_time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """One instant, one spelling: naive times are UTC, others converted to UTC."""
    return None if value is None else as_utc(value).astimezone(dt.UTC)


def _check_org(unit: ExportUnit, _: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value):
        raise ValueError(f"not an organisation id: {value!r}")


def _check_resource(unit: ExportUnit, _: attrs.Attribute[str], value: str) -> None:
    if value not in LISTINGS:
        raise ValueError(f"resource must be one of {', '.join(LISTINGS)}, not {value!r}")


def _check_filters(
    unit: ExportUnit, _: attrs.Attribute[tuple[tuple[str, str], ...]], value: Any
) -> None:
    known = LISTINGS[unit.resource].filters
    for pair in value:
        if not (
            isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise ValueError(f"a filter is a (name, value) pair of strings, not {pair!r}")
        if pair[0] not in known:
            raise ValueError(
                f"unknown filter {pair[0]!r} for {unit.resource}; known: {sorted(known)}"
            )


def _check_count(unit: ExportUnit, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"{attribute.name} must be an integer >= 0, not {value!r}")


@attrs.frozen
class ExportUnit:
    """One organisation's listing over one window `[from_, to)`, with filters: a unit of work.

    `unit_id` is derived from what the unit exports (resource, organisation, window, filters),
    never from where or when it runs. `part`/`parts` only name its file in a readable order.
    Every field that becomes part of a path is checked here, however the unit is made (directly,
    `from_dict`, `plan_export`): a unit can never name a file outside its output directory.
    """

    org_id: str = attrs.field(validator=_check_org)
    resource: str = attrs.field(validator=_check_resource)
    from_: dt.datetime | None = attrs.field(converter=_utc)
    to: dt.datetime | None = attrs.field(converter=_utc)
    filters: tuple[tuple[str, str], ...] = attrs.field(default=(), validator=_check_filters)
    part: int = attrs.field(default=0, validator=_check_count)
    parts: int = attrs.field(default=1, validator=_check_count)
    unit_id: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not self.part < self.parts:
            raise ValueError(f"part {self.part} of {self.parts}: needs 0 <= part < parts")
        if self.from_ is not None and self.to is not None and not self.from_ < self.to:
            raise ValueError("a unit's window needs from_ < to")

    @unit_id.default
    def _digest(self) -> str:
        identity = _json.dumps(self._identity(), sort_keys=True)
        return hashlib.sha256(identity).hexdigest()[:_ID_HEX]

    def _identity(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "org_id": self.org_id,
            "from": None if self.from_ is None else format_datetime(self.from_),
            "to": None if self.to is None else format_datetime(self.to),
            "filters": [list(pair) for pair in self.filters],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO 8601 UTC); `ExportUnit.from_dict` reads it back."""
        return {**self._identity(), "part": self.part, "parts": self.parts, "id": self.unit_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportUnit:
        """The unit `to_dict` wrote; ValueError when its id does not match its content."""
        unit = cls(
            org_id=data["org_id"],
            resource=data["resource"],
            from_=_parse_time(data["from"]),
            to=_parse_time(data["to"]),
            filters=tuple(tuple(pair) for pair in data["filters"]),
            part=data["part"],
            parts=data["parts"],
        )
        if data.get("id", unit.unit_id) != unit.unit_id:
            raise ValueError(f"unit {data['id']!r} does not match its content")
        return unit

    def file_stem(self) -> str:
        """`org=<org>/part-0003-of-0008-<id>`: the output path without its extension, in the
        hive layout every dataset reader understands (an `org` column from the path). Invoices
        are the plan's resource; another resource is named in the file (`cases-part-...`), so
        put each resource's plan in its own root to read it as one dataset."""
        part = f"part-{self.part:04d}-of-{self.parts:04d}-{self.unit_id}"
        kind = "" if self.resource == "invoices" else f"{self.resource}-"
        return f"org={self.org_id}/{kind}{part}"

    def listing_filters(self) -> dict[str, str]:
        """The unit's filters as keyword arguments of the listing."""
        return dict(self.filters)


def plan_export(
    org_ids: Iterable[str],
    *,
    resource: str = "invoices",
    from_: dt.datetime | None = None,
    to: dt.datetime | None = None,
    partitions_per_org: int = 1,
    filters: Mapping[str, str] | None = None,
) -> list[ExportUnit]:
    """Units covering every given organisation's listing, `partitions_per_org` windows each.

    No network call: the window `[from_, to)` (naive times are UTC) is cut into equal parts.
    Without a window each organisation is one unit (its whole listing). Duplicate ids are
    exported once.
    """
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {', '.join(RESOURCES)}")
    known = LISTINGS[resource].filters
    unknown = set(filters or ()) - known
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}; known: {sorted(known)}")
    pairs = tuple(sorted((k, str(v)) for k, v in (filters or {}).items() if v is not None))
    start, end = _utc(from_), _utc(to)
    if partitions_per_org > 1 and not LISTINGS[resource].partitionable:
        raise ValueError(f"{resource} cannot be partitioned (no date-time window)")
    windows = partition_window(start, end, partitions_per_org)
    units: list[ExportUnit] = []
    seen: set[str] = set()
    for org in org_ids:
        org = org.strip()
        if org in seen:
            continue
        seen.add(org)
        units.extend(
            ExportUnit(org, resource, lo, hi, pairs, part, len(windows))
            for part, (lo, hi) in enumerate(windows)
        )
    return units
