"""Request items checked before they are sent: the mistakes a model can catch locally.

Responses are read leniently (a number where a string is documented becomes text, a naive
timestamp is UTC, as Amili means it); what *we* send is held to the types the models declare:

- money is a Decimal (or an int), in a model and in a dict alike: a float `0.1 + 0.2` would go
  out as 0.30000000000000004, and text (`"12.50"`) is not a number; only data decoded from
  text (`decoded=True`: a CSV row, parsed JSON, whose numbers are read exactly) may carry them;
- a number is a number, never a string (`amount="12.50"`);
- a date-time carries its timezone: a naive one is refused, not silently taken as UTC;
- a field documented as a date takes `datetime.date`.

A dict may be keyed by wire names (`invoiceDate`) or attribute names (`invoice_date`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from . import _serde
from ._explain import type_name, why
from ._fields import model_fields as _fields
from ._fields import node
from ._fields import unwrap_optional as _unwrap_optional

M = TypeVar("M")

_NAIVE = (
    "a date-time without a timezone: which timezone did you mean? Add one: Z or +02:00 in "
    "text, tzinfo=datetime.UTC or ZoneInfo('Europe/Oslo') in Python"
)


def request_item(
    item: M | Mapping[str, Any], cls: type[M], path: str = "$", *, decoded: bool = False
) -> M:
    """`item` as a checked `cls`: a model is checked as it is, a dict is read then checked.

    `decoded`: the dict was decoded from text (a CSV row, parsed JSON): its amounts are numeric
    text or JSON numbers, read exactly. A dict built in Python holds Decimals, as a model does.
    """
    if isinstance(item, cls):
        check(item, path)
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"{path}: expected {cls.__name__} or a dict, got {type(item).__name__}")
    data = wire_keys(item, cls)
    for where, reason, kind in _dict_problems(data, cls, path, decoded):
        raise kind(f"{where}: {reason}")
    try:
        model = _serde.structure(data, cls)
    except _serde.StructureError as error:
        found = _structure_problems(data, cls, error)
        lines = "; ".join(f"{path}{where.removeprefix('$')}: {why}" for where, why in found)
        raise _serde.StructureError(f"data does not match {cls.__name__}: {lines}") from None
    # No `check` again: reading gave every field its declared type (amounts Decimal, dates
    # dates), naive date-times and float or text money were refused above, and request
    # models check themselves as they are built (`__attrs_post_init__`).
    return model


def problems(
    item: Mapping[str, Any], cls: type[Any], *, decoded: bool = False
) -> list[tuple[str, str]]:
    """Every (wire path, reason) that keeps `item` from being sent as `cls`; [] when it can.

    What `request_item` raises for, all of it at once (a file's row is fixed in one go).
    """
    try:
        data = wire_keys(item, cls)
    except ValueError as error:
        return [("$", str(error))]
    found = [(where, reason) for where, reason, _ in _dict_problems(data, cls, "$", decoded)]
    try:
        _serde.structure(data, cls)  # what `request_item` reads, so nothing more to check
    except _serde.StructureError as error:
        return found + _structure_problems(data, cls, error)
    return found


def _structure_problems(
    data: Any, cls: type[Any], error: _serde.StructureError
) -> list[tuple[str, str]]:
    """Every field that fails to read, found by reading each field on its own."""
    found = _field_problems(data, cls, "$")
    return found or [("$", str(error))]


def _field_problems(data: Any, tp: Any, path: str) -> list[tuple[str, str]]:
    kind, inner = node(tp)
    if kind == "list":
        if not isinstance(data, list):
            return [(path, why(TypeError(), data, _unwrap_optional(tp)))]
        return [p for i, v in enumerate(data) for p in _field_problems(v, inner, f"{path}[{i}]")]
    if kind == "model":
        if not isinstance(data, Mapping):
            return [(path, why(TypeError(), data, inner))]
        found: list[tuple[str, str]] = []
        for field in _fields(inner):
            wire = field.metadata.get("wire", field.name)
            value = data.get(wire)
            where = f"{path}.{wire}"
            if value is None:
                if field.default is attrs.NOTHING:
                    found.append((where, "required field missing"))
                continue
            found += _field_problems(value, field.type, where)
        return found
    hook = _serde._PRIMITIVE_HOOKS.get(inner)
    try:
        (hook or _serde.converter.get_structure_hook(inner))(data, inner)
    except Exception as error:
        return [(path, why(error, data, inner))]
    return []


def wire_keys(data: Any, cls: Any) -> Any:
    """`data` with attribute-name keys renamed to wire names, nested models and lists too."""
    kind, cls = node(cls)
    if kind == "list" and isinstance(data, list):
        return [wire_keys(value, cls) for value in data]
    if not (kind == "model" and isinstance(data, Mapping)):
        return data
    fields = _fields(cls)
    by_name = {f.name: f for f in fields}
    by_wire = {f.metadata.get("wire", f.name): f for f in fields}
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = by_wire.get(key) or by_name.get(key)
        if field is None:
            out[key] = value  # unknown keys are left for the structure step to ignore
            continue
        wire = field.metadata.get("wire", field.name)
        if wire in out:
            raise ValueError(f"{wire!r} is given twice (as {wire!r} and {field.name!r})")
        out[wire] = wire_keys(value, field.type)
    return out


def check_request(model: Any) -> None:
    """The generated request models' `__attrs_post_init__`: `check` as the model is built."""
    check(model)


def check(model: Any, path: str = "$") -> None:
    """Raise TypeError/ValueError, naming the wire path, for a value the API must not get."""
    for field in _fields(type(model)):
        value = getattr(model, field.name)
        if value is not None:
            _check_value(value, field.type, f"{path}.{field.metadata.get('wire', field.name)}")


def _check_value(value: Any, tp: Any, path: str) -> None:
    shape, tp = node(tp)  # the optional unwrapped: a list's item type, the model, the scalar
    kind = type(value)
    if shape == "list":
        if not isinstance(value, list):
            raise TypeError(f"{path}: expected a list, got {kind.__name__}")
        for index, element in enumerate(value):
            _check_value(element, tp, f"{path}[{index}]")
        return
    if shape == "model":
        if not isinstance(value, tp):
            raise TypeError(f"{path}: expected {tp.__name__}, got {kind.__name__}")
        check(value, path)
        return
    if tp is Decimal:
        wrong = _money_type(value)
        if wrong is not None:
            raise TypeError(f"{path}: {wrong}")
        if kind is Decimal and not value.is_finite():
            raise ValueError(f"{path}: amounts must be finite numbers")
    elif tp in (int, float):
        if kind is bool or kind not in (int, float) or (tp is int and kind is float):
            raise TypeError(f"{path}: expected {type_name(tp)}, got {kind.__name__}")
    elif tp is bool or tp is str:
        if not isinstance(value, tp):
            raise TypeError(f"{path}: expected {type_name(tp)}, got {kind.__name__}")
    elif tp is dt.datetime:
        if kind is dt.date:
            raise TypeError(
                f"{path}: expected a date-time, got a date (this field is a point in time: pass "
                "a datetime with its timezone)"
            )
        _aware(value, path)
    elif tp == dt.date | dt.datetime:
        if isinstance(value, dt.datetime):
            _aware(value, path)
        elif kind is not dt.date:
            raise TypeError(f"{path}: expected a date or a datetime, got {kind.__name__}")
    elif tp is dt.date and kind is not dt.date:
        hint = ": pass value.date()" if kind is dt.datetime else ""
        raise TypeError(f"{path}: expected a date, got {kind.__name__}{hint}")


def refuse_naive(value: dt.datetime, where: str) -> None:
    """ValueError naming `where` for a date-time without a timezone: the one rule of request
    bodies (models and dicts) and query parameters alike."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{where}: {_NAIVE}")


def _aware(value: Any, path: str) -> None:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{path}: expected a datetime, got {type(value).__name__}")
    refuse_naive(value, path)


def _money_type(value: Any) -> str | None:
    """Why `value` cannot be an amount the API gets (None: it can): a Decimal or an int only."""
    kind = type(value)
    if kind is float:
        return (
            "a float cannot hold money exactly (0.1 + 0.2 is 0.30000000000000004); "
            'use Decimal, e.g. Decimal("12.50")'
        )
    if kind is not Decimal and kind is not int:
        return f"expected a Decimal amount, got {kind.__name__}"
    return None


def _dict_problems(
    data: Any, cls: Any, path: str, decoded: bool
) -> list[tuple[str, str, type[Exception]]]:
    """(wire path, reason, error class) of what a request dict carries that its model refuses
    and reading would hide: naive date-times (objects or ISO text: reading makes them UTC) and,
    unless the dict was decoded from text, money as a float or as text."""
    kind, cls = node(cls)
    if kind == "list" and isinstance(data, list):
        return [
            p for i, v in enumerate(data) for p in _dict_problems(v, cls, f"{path}[{i}]", decoded)
        ]
    if not (kind == "model" and isinstance(data, Mapping)):
        return []
    found: list[tuple[str, str, type[Exception]]] = []
    for field in _fields(cls):
        wire = field.metadata.get("wire", field.name)
        value = data.get(wire)
        tp = _unwrap_optional(field.type)
        where = f"{path}.{wire}"
        if value is None:
            continue
        if tp in (dt.datetime, dt.date | dt.datetime):
            if isinstance(value, str) and (tp is dt.datetime or len(value) != 10):
                try:
                    value = dt.datetime.fromisoformat(value)
                except ValueError:
                    continue  # not a date-time at all: the structure step says so
            if isinstance(value, dt.datetime) and value.utcoffset() is None:
                found.append((where, _NAIVE, ValueError))
        elif tp is Decimal:
            # Only what reading would take (a float, numeric text); other types it refuses.
            wrong = _money_type(value) if isinstance(value, float | str) and not decoded else None
            if wrong is not None:
                found.append((where, wrong, TypeError))
        else:
            found += _dict_problems(value, tp, where, decoded)
    return found
