"""Why a document does not fit a model: one line per failure, in wire names, without values.

cattrs' detailed errors name attributes (`invoice_date`); users wrote wire names
(`invoiceDate`), so each path is rebuilt here from the class's wire metadata, and the offending
value is described by its type only (values can be personal data).
"""

from __future__ import annotations

import datetime as dt
import typing
from decimal import Decimal
from typing import Any

import attrs
import cattrs

from ._fields import optional_inner

_MISSING = object()

# How each expected type is named in a message.
_TYPE_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    float: "a number",
    Decimal: "a decimal number",
    dt.datetime: "an ISO 8601 date-time",
    dt.date: "an ISO 8601 date",
    dt.date | dt.datetime: "an ISO 8601 date or date-time",
}


def explain(error: BaseException, data: Any, path: str = "$") -> list[str]:
    """`$.invoices[0].invoiceDate: expected an ISO 8601 date-time, got int` lines for `error`."""
    if isinstance(error, cattrs.ClassValidationError):
        wire = (
            {f.name: f.metadata.get("wire", f.name) for f in attrs.fields(error.cl)}
            if attrs.has(error.cl)
            else {}
        )
        noted, plain = error.group_exceptions()
        lines: list[str] = []
        for exc, note in noted:
            name = wire.get(note.name, note.name)
            value = data.get(name, _MISSING) if isinstance(data, dict) else _MISSING
            lines += _leaf(exc, value, f"{path}.{name}", note.type)
        lines += [f"{path}: {why(exc, data, error.cl)}" for exc in plain]
        return lines
    if isinstance(error, cattrs.IterableValidationError):
        noted_items, plain_items = error.group_exceptions()
        lines = []
        for exc, item_note in noted_items:
            index = item_note.index
            ok = isinstance(data, list) and isinstance(index, int) and index < len(data)
            value = data[index] if ok else _MISSING
            lines += _leaf(exc, value, f"{path}[{index}]", item_note.type)
        lines += [f"{path}: {why(exc, data, list)}" for exc in plain_items]
        return lines
    return [f"{path}: {why(error, data, None)}"]


def _leaf(error: BaseException, value: Any, path: str, expected: Any) -> list[str]:
    if isinstance(error, cattrs.BaseValidationError):
        return explain(error, value, path)
    return [f"{path}: {why(error, value, expected)}"]


def why(error: BaseException, value: Any, expected: Any) -> str:
    """The reason, naming the expected type and the value's type (never the value)."""
    if isinstance(error, KeyError) or value is _MISSING:
        return "required field missing"
    got = "null" if value is None else type(value).__name__
    want = type_name(expected)
    if isinstance(error, TypeError) and str(error).startswith("expected "):
        return str(error)  # the SDK's own hooks say "expected X, got Y" already
    if isinstance(error, ValueError) and value is not None and type(value) is str:
        return f"not {want}: a str that does not parse as one"
    return f"expected {want}, got {got}"


def type_name(tp: Any) -> str:
    """`a decimal number`, `an ISO 8601 date-time`, `InvoiceType`..., for messages."""
    tp = optional_inner(tp) or tp
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if typing.get_origin(tp) is list:
        return "an array"
    if attrs.has(tp):
        return f"an object ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))
