"""A delivery's body -> its typed event (or `UnknownEvent`), from the four documented payloads.

The docs spell two fields two ways: the event name is `type` in BATCH_COMPLETED and
SETTLEMENT_CREATED but `eventType` in CASE and CASE_UPDATED, and the organisation is
`organizationId` in the first two but `orgId` in the case events. Either spelling fills the one
attribute the model declares, so a payload that switches spelling still parses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import msgspec

from .. import _serde, models
from ._errors import WebhookError
from ._verify import SIGNATURE_HEADER, header, verify_signature

__all__ = ["EVENT_HEADER", "EVENT_MODELS", "UnknownEvent", "WebhookEvent", "parse_event"]

# The delivery header naming the event, as the webhooks guide names it.
EVENT_HEADER = "X-Amili-Event"

WebhookEvent = (
    models.BatchCompletedEvent
    | models.SettlementCreatedEvent
    | models.CaseEvent
    | models.CaseUpdatedEvent
)

EVENT_MODELS: dict[str, type[Any]] = {
    "BATCH_COMPLETED": models.BatchCompletedEvent,
    "SETTLEMENT_CREATED": models.SettlementCreatedEvent,
    "CASE": models.CaseEvent,
    "CASE_UPDATED": models.CaseUpdatedEvent,
}
# The model of each event's `data` object (where the organisation id's spelling is settled).
_DATA_MODELS: dict[str, type[Any]] = {
    "BATCH_COMPLETED": models.BatchCompletedData,
    "SETTLEMENT_CREATED": models.SettlementCreatedData,
    "CASE": models.CaseEventData,
    "CASE_UPDATED": models.CaseUpdatedEventData,
}

# The two spellings the docs use for one field; the model declares one of each pair.
_NAME_SPELLINGS = ("type", "eventType")
_ORG_SPELLINGS = ("organizationId", "orgId")


@attrs.frozen
class UnknownEvent:
    """An event type this SDK version does not know: kept raw instead of failing."""

    event_type: str | None
    payload: Any = attrs.field(repr=False)


def _declared(cls: type[Any], spellings: tuple[str, ...]) -> str | None:
    """The spelling `cls` declares (None: neither)."""
    wires = {f.metadata.get("wire", f.name) for f in attrs.fields(cls)}
    return next((name for name in spellings if name in wires), None)


# Per event name: the spelling its model declares for the event name, and its data's for the
# organisation id (found once: every delivery asks).
_DECLARED = {
    name: (_declared(model, _NAME_SPELLINGS), _declared(_DATA_MODELS[name], _ORG_SPELLINGS))
    for name, model in EVENT_MODELS.items()
}


def _one_of(payload: Mapping[str, Any], spellings: tuple[str, ...], what: str) -> Any:
    """The value under either spelling; WebhookError when both are present and disagree."""
    first, second = (payload.get(name) for name in spellings)
    first = first if isinstance(first, str) else None
    second = second if isinstance(second, str) else None
    if first is not None and second is not None and first != second:
        raise WebhookError(f"the payload names two different {what}s ({' and '.join(spellings)})")
    return first if first is not None else second


def _respell(
    payload: dict[str, Any], declared: str | None, spellings: tuple[str, ...], what: str
) -> None:
    """Put the value of either spelling under the one the model declares."""
    value = _one_of(payload, spellings, what)
    if declared is not None and value is not None:
        payload[declared] = value


def event_name(payload: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The event's name: the payload's own (`type` or `eventType`), else `X-Amili-Event`.

    The header is not covered by the signature, so it may never contradict the signed body.
    """
    in_body = _one_of(payload, _NAME_SPELLINGS, "event type")
    in_header = header(headers, EVENT_HEADER)
    if in_body is not None and in_header is not None and in_header.strip() != in_body:
        raise WebhookError(f"{EVENT_HEADER} disagrees with the event type in the payload")
    name = in_body if in_body is not None else in_header
    return name.strip() if isinstance(name, str) else None


def parse_event(
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    secret: str | bytes | None = None,
) -> WebhookEvent | UnknownEvent:
    """Verify (when `secret` is given) and parse one delivery into its typed event.

    Unknown event names give `UnknownEvent`, never an exception; a body that is not JSON, not
    an object or not the documented shape raises `WebhookError`.
    """
    headers = headers or {}
    if secret is not None:
        verify_signature(body, header(headers, SIGNATURE_HEADER), secret)
    typed = _as_declared(body, headers)
    if typed is not None:
        return typed
    try:
        payload = _serde.parse(body)
    except _serde.StructureError:
        raise WebhookError("webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookError("webhook body is not a JSON object")
    name = event_name(payload, headers)
    model = EVENT_MODELS.get(name) if name is not None else None
    if model is None or name is None:
        return UnknownEvent(event_type=name, payload=payload)
    name_spelling, org_spelling = _DECLARED[name]
    _respell(payload, name_spelling, _NAME_SPELLINGS, "event type")
    data = payload.get("data")
    if isinstance(data, dict):
        _respell(data, org_spelling, _ORG_SPELLINGS, "organization id")
    try:
        event: WebhookEvent = _STRUCTURE[name](payload, model)
    except Exception:  # the long way: exact numbers, or the error naming the failing path
        try:
            event = _serde.structure(payload, model, source=body)
        except _serde.StructureError as error:
            raise WebhookError(f"{name} event: {error}") from None
    return event


class _Data(msgspec.Struct):
    organizationId: str | None = None  # wire names
    orgId: str | None = None


class _Head(msgspec.Struct):
    """What decides an event's model and spellings, read in C (the rest of the body skipped)."""

    type: str | None = None
    eventType: str | None = None
    data: _Data | None = None


_HEAD = msgspec.json.Decoder(_Head)


def _as_declared(body: bytes, headers: Mapping[str, str]) -> WebhookEvent | None:
    """The typed event read straight from `body` when it spells its event name and
    organisation as its model declares (every documented payload does) and the header agrees;
    None for anything else, which `parse_event`'s general path reads or explains."""
    try:
        head = _HEAD.decode(body)
    except (msgspec.DecodeError, RecursionError):  # incl. ValidationError: another shape
        return None
    if head.type is not None and head.eventType is None:
        spelling, name = "type", head.type
    elif head.eventType is not None and head.type is None:
        spelling, name = "eventType", head.eventType
    else:
        return None  # neither spelling, or both: the general path settles it
    declared = _DECLARED.get(name)
    if declared is None or declared[0] != spelling:
        return None
    org_spelling = declared[1]
    data = head.data
    other = None if data is None else data.organizationId if org_spelling == "orgId" else data.orgId
    if other is not None:
        return None  # the organisation under the other spelling: respelled the general way
    in_header = header(headers, EVENT_HEADER)
    if in_header is not None and in_header != name:
        return None
    try:
        event: WebhookEvent = _serde.decode(body, EVENT_MODELS[name])
    except _serde.StructureError:
        return None  # the general path says why, as it always has
    return event


# The converter's compiled structure function of each event model, looked up once.
_STRUCTURE = {name: _serde.converter.get_structure_hook(cls) for name, cls in EVENT_MODELS.items()}
