"""Case transitions (pause, resume, withdraw, accept/reject) from one table, DESIGN.md "Case
transitions", applied all-or-nothing per request."""

from __future__ import annotations

from ._events import CASE_UPDATED, EventBus, case_data
from ._records import ACTIVE_STATUSES, TERMINAL_STATUSES, InvoiceRecord
from ._store import Clock, OrgState
from ._wire import ApiError

__all__ = ["CASE_ACTIONS", "case_action"]

# Marks a transition that leaves the sub-status as it was (None is a real sub-status value).
_KEEP = "keep"
#: Case action -> (allowed statuses, allowed sub-statuses or None for any, new status or
#: None to keep it, new sub-status or ``_KEEP``). DESIGN.md "Case transitions".
_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, str | None, str | None]] = {
    "pause": (("OPEN",), None, "PAUSED", _KEEP),
    "resume": (("PAUSED",), None, "OPEN", _KEEP),
    "withdraw": (ACTIVE_STATUSES, None, "WITHDRAWN", _KEEP),
    "debt-collection-list/accept": (
        ACTIVE_STATUSES,
        ("DEBT_COLLECTION_LIST_MANUAL",),
        None,
        "DEBT_COLLECTION",
    ),
    "debt-collection-list/reject": (ACTIVE_STATUSES, ("DEBT_COLLECTION_LIST_MANUAL",), None, None),
    "eviction-request/accept": (
        ACTIVE_STATUSES,
        ("EVICTION_REQUESTED",),
        None,
        "EVICTION_CONFIRMATION_REQUESTED",
    ),
    "eviction-request/reject": (ACTIVE_STATUSES, ("EVICTION_REQUESTED",), None, None),
    "eviction-confirmation/accept": (
        ACTIVE_STATUSES,
        ("EVICTION_CONFIRMATION_REQUESTED",),
        None,
        "EVICTION_CONFIRMED",
    ),
    "eviction-confirmation/reject": (
        ACTIVE_STATUSES,
        ("EVICTION_CONFIRMATION_REQUESTED",),
        None,
        None,
    ),
}
#: Every action's name, which is also its URL tail (the app's routes come from here).
CASE_ACTIONS = tuple(_ACTIONS)


def case_action(
    org: OrgState, case_ids: list[str], action: str, clock: Clock, events: EventBus
) -> None:
    """Apply ``action`` to all of ``case_ids`` or to none (404 unknown, 409 illegal);
    a case it closes gets closedAt from ``clock``; each changed case publishes CASE_UPDATED."""
    statuses, subs, new_status, new_sub = _ACTIONS[action]
    targets: list[tuple[InvoiceRecord, int]] = []
    for case_id in case_ids:
        hit = org.find_case(case_id)
        if hit is None:
            raise ApiError(404, f"Case {case_id} was not found.")
        record = hit[0]
        if record.status not in statuses or (subs is not None and record.sub_status not in subs):
            raise ApiError(
                409,
                f"Cannot {action.replace('/', ' ')} case {case_id}: status {record.status}, "
                f"subStatus {record.sub_status}.",
                title="Illegal case transition",
            )
        targets.append(hit)
    when = clock.next_ms() if new_status in TERMINAL_STATUSES else None
    for found, i in targets:
        record = org.seeded_record(i, for_update=True) if i >= 0 else found
        fields = []
        if new_status is not None:
            record.status = new_status
            fields.append("status")
            if when is not None:
                record.closed_ms = when
        if new_sub != _KEEP:
            record.sub_status = new_sub
            fields.append("subStatus")
        org.sync(i, record)
        # The one place a case action publishes CASE_UPDATED.
        events.publish(CASE_UPDATED, case_data(record, fields))
