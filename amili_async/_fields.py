"""The fields of a generated model, with their types resolved: for code that walks models
(CSV columns, the Parquet schema)."""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs


def model_fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    """The attrs fields of a model with their types resolved.

    The generated models use postponed annotations, so `field.type` is a string such as
    "Organization | None" until resolved: nested models would not be recognised as models.
    """
    attrs.resolve_types(cls)
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cls)
    return fields


def unwrap_optional(tp: Any) -> Any:
    """`X | None` -> `X`, `X | Y | None` -> `X | Y`; any other type unchanged."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) not in (typing.Union, types.UnionType) or type(None) not in args:
        return tp
    inner = [a for a in args if a is not type(None)]
    if len(inner) == 1:
        return inner[0]
    return typing.Union[tuple(inner)]  # noqa: UP007 - built from a runtime tuple
