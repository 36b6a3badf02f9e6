"""The end of a plan: the Delta commit (for `format="delta"`), then `_SUCCESS`, written last.

`<out>/_SUCCESS` (as Spark's output committer writes it) says that every unit of the plan it
names is in the output: a reader or the next job of a nightly pipeline waits for it. It is
rewritten only when its content changes, so running a finished plan again changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .. import _json
from ._manifest import UnitResult
from ._plan import ExportUnit
from ._store import Store

__all__ = ["SUCCESS", "finish_plan", "plan_id"]

SUCCESS = "_SUCCESS"
_ID_HEX = 16
"""Hex digits of a plan id: as for unit ids (`_plan._ID_HEX`)."""


def plan_id(units: Sequence[ExportUnit]) -> str:
    """A digest of the plan's unit ids (the same units, in any order, the same plan)."""
    return hashlib.sha256(" ".join(sorted(u.unit_id for u in units)).encode()).hexdigest()[:_ID_HEX]


def finish_plan(
    store: Store, units: Sequence[ExportUnit], results: Sequence[UnitResult], fmt: str
) -> list[UnitResult]:
    """Commit a finished plan (every unit done); its results, with their Delta versions."""
    done = list(results)
    if fmt == "delta":
        from ._delta import commit_parts

        done = commit_parts(store, units, done)
    marker = _json.dumps(
        {
            "plan": plan_id(units),
            "format": fmt,
            "units": len(done),
            "rows": sum(r.rows for r in done),
        },
        sort_keys=True,
    )
    if store.read(SUCCESS) != marker:
        store.write(SUCCESS, marker)
    return done
