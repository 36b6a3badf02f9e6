"""Models to and from their wire JSON: the documented shape, with the API's field names.

    from amili_async import wire

    data = wire.to_wire(invoice)          # {"invoiceNumber": ..., "originalInvoiceAmount": Decimal}
    text = wire.to_json(invoice)          # bytes, amounts written exactly (4500.10, never a float)
    same = wire.from_json(text, models.Invoice)
    new = wire.from_wire({"invoice_number": ...}, models.NewInvoice)  # attribute names work too

Reading fails with StructureError (an AmiliError and a ValueError) naming the wire path
(`$.debtors[0].dateOfBirth`) and the offending value's type. Request models
(`models.REQUEST_MODELS`, marked by codegen from the spec's request bodies) are checked as
they are before the network: TypeError for a float amount or
text where a number is meant, ValueError for a naive date-time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from . import _codegen, _request_checks, _serde, models
from ._fields import model_fields, node, wire_name

__all__ = ["from_json", "from_wire", "to_json", "to_wire"]

M = TypeVar("M")


_REQUESTS = frozenset(models.REQUEST_MODELS)


def _is_request(cls: type[Any]) -> bool:
    """Models the SDK sends (the spec's request bodies and their items, as codegen marks)."""
    return cls in _REQUESTS


def to_wire(model: Any) -> Any:
    """A model as JSON-ready data: wire names, Decimal amounts, ISO 8601 text for dates."""
    if _is_request(type(model)):
        _request_checks.check(model)
    return _serde.unstructure(model)


def to_json(model: Any) -> bytes:
    """A model as JSON bytes, exactly as the SDK would send it."""
    if _is_request(type(model)):
        _request_checks.check(model)
    return _serde.dumps(model)


def from_wire(data: Mapping[str, Any], cls: type[M]) -> M:
    """A model from decoded JSON (or a dict keyed by wire or attribute names).

    Decoded JSON carries amounts as JSON numbers or numeric text, read here exactly; a dict
    handed to `create` must hold Decimals, as the models do (`_request_checks`).
    """
    if _is_request(cls):
        return _request_checks.request_item(data, cls, decoded=True)
    return _serde.structure(_request_checks.wire_keys(data, cls), cls)


def from_json(data: bytes | str, cls: type[M]) -> M:
    """A model from JSON text; numbers too long for a float are read exactly."""
    raw = data.encode() if isinstance(data, str) else data
    if _is_request(cls):
        parsed: Any = _serde.parse(raw)
        if not isinstance(parsed, Mapping):
            raise _serde.StructureError(f"data does not match {cls.__name__}: not an object")
        return _request_checks.request_item(parsed, cls, decoded=True)
    return _serde.decode(raw, cls)


# -- request models written by a function compiled per class ----------------------------------
#
# A bulk write serialises every item once; cattrs' generic unstructure dispatches on the type
# of every optional value again. Each request model gets one function generated from its
# annotations (its nested models inlined as calls), producing exactly what the converter's
# hooks would (wire names, fields left at None omitted, Decimals kept for `dumps`, dates as ISO
# text), registered with the converter, so `_serde.dumps` and `to_wire` use it.


def _writer(cls: type[Any], done: dict[type[Any], Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The compiled unstructure function of `cls` (and, in `done`, of its nested models)."""
    if cls in done:
        return done[cls]
    namespace: dict[str, Any] = {"type": type, "Checked": _request_checks.Checked}
    done[cls] = lambda value: namespace["write"](value)  # a recursive model calls it late
    lines = ["def write(m):", "    o = {}"]

    def expr(tp: Any, x: str, depth: int) -> str:
        shape, tp = node(tp)
        if shape == "list":
            e = f"e{depth}"
            items = f"[{expr(tp, e, depth + 1)} for {e} in {x}]"
            item_shape, item_cls = node(tp)
            if item_shape != "model" or not _is_request(item_cls):
                return items
            # Items `create_many` checked and encoded already: their JSON as it was encoded.
            namespace[f"c{len(namespace)}"] = item_cls
            checked = f"type({x}) is Checked and {x}.cls is c{len(namespace) - 1}"
            return f"({x}.wire if {checked} else {items})"
        if shape == "model":
            namespace[f"w{len(namespace)}"] = _writer(tp, done)
            return f"w{len(namespace) - 1}({x})"
        return _serde.wire_expression(tp, x, ref)

    def ref(value: Any) -> str:
        namespace[f"h{len(namespace)}"] = value
        return f"h{len(namespace) - 1}"

    for field in model_fields(cls):
        key, value = wire_name(field), expr(field.type, "v", 0)
        lines.append(f"    v = m.{field.name}")
        if field.default is None:  # left at its default: not sent (no explicit nulls)
            lines.append(f"    if v is not None: o[{key!r}] = {value}")
        elif field.default is attrs.NOTHING:
            lines.append(f"    o[{key!r}] = None if v is None else {value}")
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: a default the writer does not know")
    lines.append("    return o")
    source = "\n".join(lines) + "\n"
    function: Callable[[Any], Any] = _codegen.define(source, namespace, f"write {cls.__name__}")[
        "write"
    ]
    done[cls] = function
    return function


_written: dict[type[Any], Callable[[Any], Any]] = {}
for _cls in models.REQUEST_MODELS:
    _serde.converter.register_unstructure_hook(_cls, _writer(_cls, _written))
