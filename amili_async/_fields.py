"""How model annotations nest: the one walker every piece of code that walks models uses.

The generated models are attrs classes whose field types are scalars, enums, nested models,
`list[X]` and `X | None`. Every walk (CSV columns and coercion, the Parquet schema and rows,
request checks and renames, the sandbox's shape check, the structure compiler, error messages)
asks `node(tp)` what a type is: a list (of what), a model (which), or a scalar, after the
optional is unwrapped; here, and only here, `Optional` is taken apart.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import attrs

__all__ = [
    "is_list",
    "model_fields",
    "node",
    "optional_inner",
    "unwrap_optional",
    "wire_name",
]

_NONE = type(None)

Kind = Literal["list", "model", "scalar"]


def model_fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    """The attrs fields of a model with their types resolved.

    The generated models use postponed annotations, so `field.type` is a string such as
    "Organization | None" until resolved: nested models would not be recognised as models.
    """
    attrs.resolve_types(cls)
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cls)
    return fields


def wire_name(field: attrs.Attribute[Any]) -> str:
    """The field's name on the wire (the generated models keep it in the metadata)."""
    name: str = field.metadata.get("wire", field.name)
    return name


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def optional_inner(tp: Any) -> Any | None:
    """`X` for exactly `X | None` / `Optional[X]`, else None."""
    if not _is_union(tp):
        return None
    args = typing.get_args(tp)
    inner = [a for a in args if a is not _NONE]
    if len(inner) != 1 or len(args) != 2:
        return None
    return inner[0]


def unwrap_optional(tp: Any) -> Any:
    """`X | None` -> `X`, `X | Y | None` -> `X | Y`; any other type unchanged."""
    inner = optional_inner(tp)
    if inner is not None:
        return inner
    if not _is_union(tp) or _NONE not in typing.get_args(tp):
        return tp
    return typing.Union[tuple(a for a in typing.get_args(tp) if a is not _NONE)]  # noqa: UP007 - built from a runtime tuple


def is_list(tp: Any) -> bool:
    """True for `list[X]`."""
    return typing.get_origin(tp) is list


def node(tp: Any) -> tuple[Kind, Any]:
    """What `tp` is once its optional is unwrapped: ("list", item type; Any when not given),
    ("model", the attrs class) or ("scalar", the type)."""
    tp = unwrap_optional(tp)
    if is_list(tp):
        (item,) = typing.get_args(tp) or (Any,)
        return "list", item
    if isinstance(tp, type) and attrs.has(tp):
        return "model", tp
    return "scalar", tp
