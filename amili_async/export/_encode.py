"""Staged rows: models -> JSON Lines bytes, one compiled function per model class.

The export stages every listed item as its wire JSON, byte for byte what `_serde.dumps(item)`
gives (wire names, fields at their default left out, exact money as JSON numbers, date-times
by `_time.format_datetime`, dates ISO, enums by value, unknown ones too). cattrs' generic
unstructuring dispatches on every optional value and `dumps` then calls back into Python for
every amount; here each model gets one generated function that reads its fields and converts
each by its known type inline, and the JSON engine writes the dict, then the newline. Anything but
the known types goes through `_serde.unstructure`, so the bytes never differ
(`tests/unit/test_export_rows.py` holds them to `_serde.dumps`).

This is the models' way: a unit's pages are written in C from their typed document
(`_staging`) wherever that gives the same bytes; pages and models it does not take come here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

from .. import _codegen, _json, _serde
from .._fields import model_fields, node, unwrap_optional, wire_name
from .._time import format_datetime

__all__ = ["encode_lines", "line_encoder"]

Encode = Callable[[Sequence[Any]], bytes]
_ENCODERS: dict[type[Any], Encode] = {}


def encode_lines(items: Sequence[Any], cls: type[Any]) -> bytes:
    """`items` (models of `cls`) as JSON Lines: `_serde.dumps(item) + b"\\n"` each, joined."""
    encode = _ENCODERS.get(cls)
    if encode is None:
        encode = _ENCODERS[cls] = line_encoder(cls)
    return encode(items)


def _money(value: Decimal) -> _json.Fragment:
    """An amount as its exact JSON number (as `_serde.dumps` writes it)."""
    if not value.is_finite():
        raise ValueError("amounts must be finite numbers")
    return _json.Fragment(str(value).encode())


def _stamp(value: dt.datetime) -> str:
    """`format_datetime(value)`, its common case (UTC, whole milliseconds or seconds, as the
    decoder gives Amili's stamps) without its intermediate copies."""
    if value.tzinfo is dt.UTC:
        micro = value.microsecond
        if micro == 0:
            return value.isoformat(timespec="seconds")[:-6] + "Z"
        if micro % 1000 == 0:
            return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return format_datetime(value)


def line_encoder(cls: type[Any]) -> Encode:
    """The compiled JSON Lines encoder of one model class."""
    names: dict[str, Any] = {
        "_dumps": _json.dumps,
        "_NEWLINE": b"\n",
        "_money": _money,
        "_stamp": _stamp,
        "_unstructure": _serde.unstructure,
    }
    source: list[str] = []
    root = _compile(cls, names, source, {})
    source += [
        "def encode_lines(items):",
        f"    return b''.join([_dumps({root}(item)) + _NEWLINE for item in items])",
    ]
    text = "\n".join(source) + "\n"
    label = f"export line encoder {cls.__module__}.{cls.__qualname__}"
    encode: Encode = _codegen.define(text, names, label)["encode_lines"]
    return encode


def _compile(cls: type[Any], names: dict[str, Any], source: list[str], done: dict[Any, str]) -> str:
    """Append the function turning one `cls` into its wire dict to `source`; its name."""
    if cls in done:
        return done[cls]
    name = done[cls] = f"_model_{len(done)}"
    body = [f"def {name}(o):", "    r = {}"]
    for field in model_fields(cls):
        convert = _value(field.type, names, source, done)
        default = field.default
        put = f"r[{wire_name(field)!r}] = {convert.format('v')}"
        body.append(f"    v = o.{field.name}")
        if default is None:
            body.append(f"    if v is not None: {put}")
        elif default is attrs.NOTHING:  # required: a None is written as null, as cattrs does
            wire = wire_name(field)
            body.append(f"    {put}" if convert == "{0}" else f"    {_or_null(put, wire)}")
        else:  # as cattrs' omit-if-default: left out while equal to the default
            key = f"_default_{len(names)}"
            names[key] = default
            test = f"{key}.factory()" if isinstance(default, attrs.Factory) else key  # type: ignore[arg-type]
            body.append(f"    if v != {test}: {put}")
    body.append("    return r")
    source += body
    return name


def _or_null(put: str, wire: str) -> str:
    return f"if v is None: r[{wire!r}] = None\n    else: {put}"


def _value(tp: Any, names: dict[str, Any], source: list[str], done: dict[Any, str]) -> str:
    """An expression template (`{0}`: the value, not None) for a value of type `tp`."""
    kind, inner = node(tp)
    if kind == "list":
        item = _value(inner, names, source, done)
        if item != "{0}" and unwrap_optional(inner) is not inner:  # a None item stays null
            item = f"(None if {{0}} is None else {item})"
        expression = f"[{item.format('x')} for x in {{0}}]"
    elif kind == "model":
        expression = _compile(inner, names, source, done) + "({0})"
    elif inner is Decimal:
        expression = "_money({0})"
    elif inner is dt.datetime:
        expression = "_stamp({0})"
    elif inner is dt.date:
        expression = "{0}.isoformat()"
    elif isinstance(inner, type) and issubclass(inner, Enum):
        expression = "{0}._value_"
    elif inner in (str, int, float, bool):
        expression = "{0}"
    else:
        expression = "_unstructure({0})"
    return expression
