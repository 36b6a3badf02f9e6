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
    """`X | None` -> `X`; any other type unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp
