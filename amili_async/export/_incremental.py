"""Incremental nightly runs: each organisation's last window, kept beside the table.

`<out>/_amili/state.json` holds, per organisation, the end (`to`) of the last window that was
committed, and the plan that did it. The next run lists each organisation from that end minus
a look-back (`lookback`) up to now: the new invoices, and again the recent ones that may have
changed since (a status filter cannot find those: an invoice withdrawn since the last run is
no longer OPEN, so the look-back lists every status). The listing filters on createdAt
(inferred: the docs do not say what From/To filter on; `x-amili-inferred` in the spec). Only a
Delta table can take windows that overlap the last run's (it merges on the id, the newer copy
winning); plain files would hold the re-listed invoices twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import _json
from .._time import as_utc, format_datetime
from ._commit import plan_id
from ._plan import ExportUnit, plan_export
from ._store import STATE_DIR, Store, open_store

__all__ = ["DEFAULT_LOOKBACK", "STATE", "plan_incremental", "save_state"]

STATE = f"{STATE_DIR}/state.json"
DEFAULT_LOOKBACK = dt.timedelta(days=30)
"""How far back a nightly run lists again: an invoice's status changes mostly within its first
month (reminders, payment, withdrawal: inferred, the docs give no figure); every day of it
costs one more day of listing per run (a 30-day look-back lists 31 days a night)."""


def _read(store: Store) -> dict[str, Any]:
    raw = store.read(STATE)
    if raw is None:
        return {"orgs": {}}
    try:
        state: dict[str, Any] = _json.loads(raw)
        if not isinstance(state.get("orgs"), dict):
            raise TypeError("no orgs")
    except (_json.DecodeError, TypeError, AttributeError):
        raise ValueError(
            f"{store.path(STATE)}: the incremental state is damaged (not a JSON object with "
            "orgs): remove it and pass --from to start over"
        ) from None
    return state


def plan_incremental(
    out_dir: Path | str,
    org_ids: Iterable[str],
    *,
    now: dt.datetime,
    storage_options: Mapping[str, Any] | None = None,
    start: dt.datetime | None = None,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
    partitions_per_org: int = 1,
    filters: dict[str, str] | None = None,
) -> list[ExportUnit]:
    """The units of the next run: each organisation from its last `to` minus `lookback` (or
    from `start`, for an organisation never exported) up to `now`. ValueError for an
    organisation with neither."""
    if lookback < dt.timedelta(0):
        raise ValueError("lookback must be >= 0")
    last = _read(open_store(out_dir, storage_options))["orgs"]
    units: list[ExportUnit] = []
    now = as_utc(now)
    for org in dict.fromkeys(o.strip() for o in org_ids):
        if org in last:
            begin = dt.datetime.fromisoformat(last[org]["to"]) - lookback
        elif start is not None:
            begin = as_utc(start)
        else:
            raise ValueError(
                f"organisation {org} was never exported here: pass --from (start=) for its "
                "first window"
            )
        if begin >= now:
            continue
        units.extend(
            plan_export(
                [org],
                from_=begin,
                to=now,
                partitions_per_org=partitions_per_org,
                filters=filters,
            )
        )
    return units


def save_state(
    out_dir: Path | str,
    units: Sequence[ExportUnit],
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Record a committed plan's windows (call it once the run returned): each organisation's
    latest `to`, from which the next `plan_incremental` starts."""
    store = open_store(out_dir, storage_options)
    state = _read(store)
    for unit in units:
        assert unit.to is not None, "an incremental unit has a window"
        known = state["orgs"].get(unit.org_id)
        end = format_datetime(unit.to)
        if known is None or dt.datetime.fromisoformat(known["to"]) < unit.to:
            state["orgs"][unit.org_id] = {"to": end}
    state["plan"] = plan_id(units)
    store.write(STATE, _json.dumps(state, indent=2, sort_keys=True))
