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

from collections.abc import Mapping
from typing import Any, TypeVar

from . import _request_checks, _serde, models

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
