"""The one cattrs converter: JSON bytes <-> generated attrs models.

Wire names come from each field's `metadata["wire"]` (written by the code generator), so no
hand-kept rename table exists. Structuring runs on every listing page, so each model's
structure function is compiled from its annotations (`_structure_compiler`, generic, never per
model), calling the scalar hooks below only for uncommon values; it skips cattrs' generic union
and validation machinery. A failure is re-run once through a second, detailed converter to say
*where* it failed.
"""

from __future__ import annotations

import datetime as dt
import math
import types
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs
import msgspec
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _json
from ._structure_compiler import (
    Mismatch,
    compile_copy_fn,
    compile_structure_fn,
    expect_object,
    is_list,
    is_open_enum,
    mirror_of,
    not_a_list,
    optional_inner,
)
from ._time import as_utc, format_datetime
from .errors import AmiliError

T = TypeVar("T")
_Hook = Callable[[Any, Any], Any]
_NONE = type(None)


class StructureError(AmiliError, ValueError):
    """A JSON document (or a dict) does not have the shape a model needs.

    The message names the failing path in wire names (`$.data[3].createdAt`), the expected type
    and the offending value's type, never the value itself: values can be personal data.
    """


class _InexactNumber(Exception):
    """A number has more significant digits than the float it arrived as keeps (a dict with
    floats: `wire`, or `parse`'s plain data).

    Raised on the fast path only; `structure` then re-reads the document with every number as
    an exact Decimal (`parse_exact`), so amounts are exact at any size JSON can carry.
    """


# Significant decimal digits every float reproduces exactly (DBL_DIG): a JSON number with at
# most this many comes back from repr(float) unchanged.
_EXACT_DIGITS = 15
# From here on a float is never trusted: at 10^13 a 15-digit number has just two decimals left,
# so a larger amount may have lost cents to the double (12164510040883199.00 reads back as
# ...3200). Below it, a number that rounds to a short double can only differ from its text past
# the 15th significant digit, which is below a cent: amounts are exact to the cent, and exact
# outright whenever they have at most 15 significant digits.
_EXACT_BELOW = 1e13


def _exact_text(value: float) -> str:
    """repr(value) when it is the number's text to the cent; else _InexactNumber (re-read)."""
    text = repr(value)
    if not -_EXACT_BELOW < value < _EXACT_BELOW:
        raise _InexactNumber
    # Fewer than 16 characters cannot hold 16 digits; the common case stops at len().
    if len(text) > _EXACT_DIGITS:
        mantissa = text.lstrip("-").partition("e")[0].replace(".", "").lstrip("0")
        if len(mantissa) > _EXACT_DIGITS:
            raise _InexactNumber
    return text


# -- primitive hooks --------------------------------------------------------------------------


def _structure_str(value: Any, _: Any) -> str:
    if type(value) is str:
        return value
    # Numbers where the spec says string (a case number sent as 5000001): keep them, as text.
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _exact_text(value)
    if type(value) is Decimal:  # a number read exactly (`parse_exact`)
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        _exact_text(value)  # a 20-digit integer given as a float is a rounded one
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _structure_bool(value: Any, _: Any) -> bool:
    if type(value) is bool:
        return value
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _structure_float(value: Any, _: Any) -> float:
    if type(value) in (int, float) or isinstance(value, Decimal):
        number = float(value)
        if math.isfinite(number):
            return number
        raise ValueError("expected a finite number")
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _structure_decimal(value: Any, _: Any) -> Decimal:
    """Money, exact: a float is trusted only while repr() is certainly its source text."""
    kind = type(value)
    if kind is float:
        text = repr(value)
        # The common case of _exact_text, without the call: a short text of a small number.
        if len(text) <= _EXACT_DIGITS and -_EXACT_BELOW < value < _EXACT_BELOW:
            return Decimal(text)
        if not math.isfinite(value):
            raise ValueError("amounts must be finite numbers")
        return Decimal(_exact_text(value))
    if isinstance(value, Decimal):  # dicts built in Python, or numbers read by parse_exact
        number = value
    elif kind is int:
        return Decimal(value)
    elif kind is str:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError("expected a decimal number") from None
    else:
        raise TypeError(f"expected a number, got {kind.__name__}")
    if not number.is_finite():
        raise ValueError("amounts must be finite numbers")
    return number


def _structure_datetime(value: Any, _: Any) -> dt.datetime:
    if type(value) is dt.datetime:  # dicts built in Python
        return as_utc(value)
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 date-time, got {type(value).__name__}")
    # Amili sends UTC with "Z"; a timestamp without offset is read as UTC, never as local time.
    return as_utc(dt.datetime.fromisoformat(value))


def _structure_date(value: Any, _: Any) -> dt.date:
    if type(value) is dt.date:  # dicts built in Python
        return value
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 date, got {type(value).__name__}")
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    # Some pages show dates as midnight date-times (2024-01-15T00:00:00Z): keep the date part.
    return dt.datetime.fromisoformat(value).date()


def _structure_date_or_datetime(value: Any, _: Any) -> dt.date:
    """`date | datetime` (NewInvoice's dates): yyyy-MM-dd is a date, anything longer a date-time."""
    if type(value) is dt.date or (type(value) is str and len(value) == 10):
        return _structure_date(value, None)
    if type(value) is not str and type(value) is not dt.datetime:
        raise TypeError(f"expected an ISO 8601 date or date-time, got {type(value).__name__}")
    return _structure_datetime(value, None)


_DATE_OR_DATETIME = dt.date | dt.datetime


# -- hook factories (generic over the annotations) --------------------------------------------


def _exactly(cls: type) -> Callable[[Any], bool]:
    return lambda tp: tp is cls


def _is_optional(tp: Any) -> bool:
    return optional_inner(tp) is not None


# JSON's scalar types: a union of them (`int | str`, as a token's `expires_in`) is passed through.
_JSON_SCALARS = frozenset({str, int, float, bool, _NONE})


def _is_primitive_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is not typing.Union and origin is not types.UnionType:
        return False
    args = typing.get_args(tp)
    return len([a for a in args if a is not _NONE]) > 1 and all(a in _JSON_SCALARS for a in args)


# The hooks of the scalar types, also handed to the compiled structure functions.
_SCALAR_HOOKS: dict[Any, _Hook] = {
    str: _structure_str,
    int: _structure_int,
    bool: _structure_bool,
    float: _structure_float,
    Decimal: _structure_decimal,
    dt.datetime: _structure_datetime,
    dt.date: _structure_date,
}


def _configure(conv: cattrs.Converter, *, detailed: bool) -> cattrs.Converter:
    for tp, hook in _SCALAR_HOOKS.items():
        # Exact-type predicates, not singledispatch: the str hook must not catch the StrEnums.
        conv.register_structure_hook_func(_exactly(tp), hook)
    conv.register_structure_hook_func(
        lambda tp: tp == _DATE_OR_DATETIME, _structure_date_or_datetime
    )

    def optional_factory(tp: Any) -> _Hook:
        inner_type = optional_inner(tp)
        inner = conv.get_structure_hook(inner_type)

        def structure_optional(value: Any, _: Any) -> Any:
            return None if value is None else inner(value, inner_type)

        return structure_optional

    def primitive_union_factory(tp: Any) -> _Hook:
        accepted = frozenset(typing.get_args(tp))

        def structure_union(value: Any, _: Any) -> Any:
            if type(value) in accepted:
                return value
            if type(value) is Decimal and float in accepted:  # read exactly (`parse_exact`)
                return float(value)
            names = " or ".join(sorted(t.__name__ for t in accepted))
            raise TypeError(f"expected {names}, got {type(value).__name__}")

        return structure_union

    def list_factory(tp: Any) -> _Hook:
        (item_type,) = typing.get_args(tp) or (Any,)
        if item_type is Any:
            return lambda value, _: list(value) if type(value) is list else not_a_list(value)
        item = conv.get_structure_hook(item_type)

        def structure_list(value: Any, _: Any) -> list[Any]:
            if type(value) is not list:
                not_a_list(value)
            return [item(v, item_type) for v in value]

        return structure_list

    def enum_factory(tp: Any) -> _Hook:
        members = tp._value2member_map_

        def structure_enum(value: Any, _: Any) -> Any:
            if type(value) is not str:
                raise TypeError(f"expected a string for {tp.__name__}, got {type(value).__name__}")
            return members.get(value) or tp(value)

        return structure_enum

    def attrs_structure_factory(cls: Any) -> _Hook:
        if not detailed:
            return compile_structure_fn(cls, conv, _SCALAR_HOOKS)
        attrs.resolve_types(cls)
        # cattrs' own str/int/bool/float handling (a plain call: bool("no") is True) comes
        # before our exact-type hooks in its dispatch: name ours per field, so the explanation
        # fails where the fast path failed.
        # Likewise cattrs' list hook takes any iterable ({} or "" read as []): ours refuses
        # what is not an array first, then lets cattrs' hook name the failing index.
        renames: dict[str, Any] = {
            a.name: override(
                rename=a.metadata.get("wire", a.name),
                struct_hook=_primitive_hook(a.type) or _array_hook(a.type, conv),
            )
            for a in attrs.fields(cls)
        }
        fields = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=False, **renames)

        def structure_object(value: Any, target: Any) -> Any:
            # cattrs reads any container by key (`"k" in []`): only a JSON object is one.
            if type(value) is not dict:
                expect_object(value)
            return fields(value, target)

        return structure_object

    def attrs_unstructure_factory(cls: Any) -> Callable[[Any], Any]:
        renames: dict[str, Any] = _renames(cls)
        # Fields left at their default (None) are not sent: no explicit nulls on the wire.
        return make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **renames)

    conv.register_structure_hook_factory(attrs.has, attrs_structure_factory)
    conv.register_structure_hook_factory(is_open_enum, enum_factory)
    if not detailed:
        # The detailed converter keeps cattrs' own list hook, which records failing indexes.
        conv.register_structure_hook_factory(is_list, list_factory)
    conv.register_structure_hook_factory(_is_optional, optional_factory)
    conv.register_structure_hook_factory(_is_primitive_union, primitive_union_factory)

    conv.register_unstructure_hook_factory(attrs.has, attrs_unstructure_factory)
    conv.register_unstructure_hook(dt.datetime, format_datetime)
    conv.register_unstructure_hook(dt.date, dt.date.isoformat)
    conv.register_unstructure_hook_func(is_open_enum, lambda member: member._value_)
    # Decimals stay Decimals here (the identity: compiled writers then write the value as it
    # is, no call); `dumps` writes them as exact numbers.
    conv.register_unstructure_hook(Decimal, identity)
    return conv


# The JSON primitives among them: the detailed converter names these per field (see below).
_PRIMITIVE_HOOKS: dict[Any, _Hook] = {tp: _SCALAR_HOOKS[tp] for tp in (str, int, bool, float)}


def _primitive_hook(tp: Any) -> _Hook | None:
    """Our hook for a `str`/`int`/`bool`/`float` field (optional or not), else None."""
    inner = optional_inner(tp)
    hook = _PRIMITIVE_HOOKS.get(tp if inner is None else inner)
    if hook is None or inner is None:
        return hook
    primitive = hook

    def structure_optional(value: Any, target: Any) -> Any:
        return None if value is None else primitive(value, target)

    return structure_optional


def _array_hook(tp: Any, conv: cattrs.Converter) -> _Hook | None:
    """For a `list[X]` field (optional or not) of the detailed converter: refuse a value that
    is not a JSON array, as the fast path does, then structure it with ``conv``'s list hook."""
    inner = optional_inner(tp)
    array = tp if inner is None else inner
    if not is_list(array):
        return None
    nullable = inner is not None
    (item,) = typing.get_args(array) or (Any,)
    # cattrs' list hook would read str/int/bool/float items with its own plain calls too.
    primitive = _PRIMITIVE_HOOKS.get(item)

    def structure_array(value: Any, _: Any) -> Any:
        if value is None and nullable:
            return None
        if type(value) is not list:
            not_a_list(value)
        if primitive is None:
            return conv.structure(value, array)
        items, errors = [], []
        for index, element in enumerate(value):
            try:
                items.append(primitive(element, item))
            except Exception as error:  # noted with its index, as cattrs' list hook does
                error.add_note(IterableValidationNote(f"@ index {index}", index, item))
                errors.append(error)
        if errors:
            raise IterableValidationError(f"While structuring {array!r}", errors, array)
        return items

    return structure_array


def _renames(cls: Any) -> dict[str, Any]:
    """cattrs overrides mapping each attribute to its wire name (from the field metadata)."""
    return {a.name: override(rename=a.metadata.get("wire", a.name)) for a in attrs.fields(cls)}


converter = _configure(cattrs.Converter(detailed_validation=False), detailed=False)
"""The converter on the hot path: specialised hooks, no detailed validation."""

_explainer = _configure(cattrs.Converter(detailed_validation=True), detailed=True)
"""Used only after a failure, to name the path that failed."""


# -- public helpers ---------------------------------------------------------------------------


def structure(data: Any, cls: type[T], *, source: bytes | None = None) -> T:
    """Build `cls` from decoded JSON; raise StructureError naming the failing path.

    ``source`` is the JSON text `data` was parsed from: when a number in it has more digits
    than a float keeps, the document is read again exactly from it. The error is never
    chained to its cause: a parser's message may quote the offending (personal) value.
    """
    try:
        return converter.structure(data, cls)
    except _InexactNumber:
        if source is None:
            raise StructureError(
                f"data does not match {cls.__name__}: a float cannot carry one of its numbers "
                "exactly; pass amounts as Decimal or as strings"
            ) from None
        return structure(parse_exact(source), cls)
    except Exception as fast_error:
        raise StructureError(_explain(data, cls, fast_error)) from None


def _explain(data: Any, cls: type[Any], fast_error: Exception) -> str:
    from ._explain import explain  # wire-name paths; only ever needed after a failure

    try:
        _explainer.structure(data, cls)
    except cattrs.BaseValidationError as error:
        return f"data does not match {cls.__name__}: " + "; ".join(explain(error, data))
    except Exception as error:
        return f"data does not match {cls.__name__}: {type(error).__name__}"
    return f"data does not match {cls.__name__}: {type(fast_error).__name__}"


def unstructure(obj: Any) -> Any:
    """Model -> plain JSON-ready data (wire names; Decimal kept for exact output)."""
    return converter.unstructure(obj)


def _json_default(value: Any) -> Any:
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(obj: Any) -> bytes:
    """Model or plain data -> JSON bytes; Decimals as exact numbers (4500.10, not a float)."""
    return dumps_wire(unstructure(obj))


def dumps_wire(data: Any) -> bytes:
    """`unstructure`'s output (or what a compiled reader built as it: `_request_checks`) ->
    the JSON bytes `dumps` writes."""
    try:
        return _json.dumps(data, default=_json_default)
    except ValueError:  # the engine's only ValueError: a NaN or infinite Decimal
        raise ValueError("amounts must be finite numbers") from None


_WIRE_STRUCTS: dict[type, type[msgspec.Struct]] = {}
"""`wire_struct` per request model, made once (a handful of classes: no bound needed)."""


def wire_struct(cls: type) -> type[msgspec.Struct]:
    """A msgspec Struct that `dumps_wire` writes as `dumps` writes a `cls` model, given each
    field's wire value (`wire_expression`; None: left out, as the writers leave out fields at
    their None default): the wire names, in the fields' order. Built from positional values,
    one per field in that order: cheaper than a dict."""
    found = _WIRE_STRUCTS.get(cls)
    if found is None:
        fields = attrs.fields(cls)
        found = _WIRE_STRUCTS[cls] = msgspec.defstruct(
            f"{cls.__name__}Wire",
            [(a.name, object, None) for a in fields],  # every field a default: positional
            omit_defaults=True,
            rename={a.name: a.metadata.get("wire", a.name) for a in fields},
        )
    return found


def wire_expression(tp: Any, x: str, ref: Callable[[Any], str]) -> str:
    """Code for the wire value of the (non-None) scalar of type `tp` in variable `x`: what the
    converter's unstructure hooks give (ISO 8601 text for dates, the value itself where the
    hook is the identity), for the compiled writers (`wire`) and readers (`_request_checks`).
    `ref` names a value the code takes from outside."""
    if tp is dt.datetime:
        return f"{ref(format_datetime)}({x})"
    if tp is dt.date:
        return f"{x}.isoformat()"
    if tp == _DATE_OR_DATETIME:
        written = f"{ref(format_datetime)}({x})"
        return f"({written} if {ref(isinstance)}({x}, {ref(dt.datetime)}) else {x}.isoformat())"
    hook = converter.get_unstructure_hook(tp)
    return x if hook is identity else f"{ref(hook)}({x})"


class Encoded(list[Any]):
    """Items with their wire JSON (`wire`: one `_json.Fragment` of `dumps` each), encoded once,
    so a bulk chunk's ledger keys hash the very bytes its POST sends (`bulk`)."""

    __slots__ = ("wire",)

    def __init__(self, items: Iterable[Any], wire: list[_json.Fragment]) -> None:
        super().__init__(items)
        self.wire = wire


def parse(data: bytes) -> Any:
    """JSON bytes -> plain data; StructureError for a body that is not JSON (an HTML page).

    Numbers come as floats; a document with a number beyond a double's range (1e400) is read
    exactly instead (see `parse_exact`), so a valid document never fails here.
    """
    try:
        return _json.loads(data)
    except _json.DecodeError:
        return parse_exact(data)


def parse_exact(data: bytes) -> Any:
    """JSON bytes -> plain data with every non-integer number as an exact Decimal, read from
    its text in C (the engine's). NaN and Infinity, which are not JSON, are refused."""
    try:
        return _json.loads_exact(data)
    except _json.DecodeError as error:
        raise StructureError(f"body is not valid JSON (at byte {error.pos})") from None


# -- typed reading: the page's document in one C pass ---------------------------------------


@attrs.frozen
class _Typed:
    """How `cls` is read in C: its mirror's decoder and the copy into the models."""

    mirror: Any
    decoder: msgspec.json.Decoder[Any]
    copy: Callable[[Any], Any]


_TYPED: dict[type, _Typed | None] = {}


def _typed(cls: type) -> _Typed | None:
    try:
        return _TYPED[cls]
    except KeyError:
        pass
    mirror = mirror_of(cls) if attrs.has(cls) else None
    typed = None
    if mirror is not None:
        # Numbers under `Any` exact too, as `parse_exact` reads them on the dict path.
        decoder = msgspec.json.Decoder(mirror, float_hook=Decimal)
        typed = _Typed(mirror, decoder, compile_copy_fn(cls))
    _TYPED[cls] = typed
    return typed


def read(data: bytes, cls: type) -> Any:
    """JSON bytes -> the document `structure` builds `cls` from: `cls`'s mirror, decoded in C
    (amounts exact from their text), or, when the mirror refuses it, plain data with exact
    numbers (`parse_exact`), which the dict path reads or explains. StructureError when the
    body is not JSON."""
    typed = _typed(cls)
    if typed is not None:
        try:
            return typed.decoder.decode(data)
        except msgspec.ValidationError:
            pass  # valid JSON of another shape: the dict path reads it or says why not
        except (msgspec.DecodeError, RecursionError):
            pass  # not JSON (or nested too deeply): parse_exact says so
    return parse_exact(data)


def built(document: Any, cls: type[T], source: bytes) -> T:
    """The model from a document of `read` (a mirror is copied; plain data is structured)."""
    typed = _TYPED.get(cls)
    if typed is not None and type(document) is typed.mirror:
        try:
            result: T = typed.copy(document)
            return result
        except Mismatch:
            document = parse_exact(source)
    return structure(document, cls, source=source)


def decode(data: bytes, cls: type[T]) -> T:
    """JSON bytes -> model; StructureError for a body that is not JSON or not the shape.

    `read` then `built` in one step (a single model's answer: nothing to overlap).
    """
    typed = _TYPED.get(cls) or _typed(cls)
    if typed is not None:
        try:
            result: T = typed.copy(typed.decoder.decode(data))
            return result
        except (msgspec.DecodeError, RecursionError, Mismatch):  # incl. ValidationError
            pass  # another shape, or not JSON: the dict path reads it or says why not
    return structure(parse_exact(data), cls, source=data)
