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
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from . import _codegen, _json, _serde
from ._explain import type_name, why
from ._fields import model_fields as _fields
from ._fields import node, wire_name
from ._fields import unwrap_optional as _unwrap_optional
from ._structure_compiler import emit_build, is_open_enum

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
    if type(item) is dict:
        fast: M | None = _read_fast(item, cls, decoded)
        if fast is not None:
            return fast
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


@attrs.frozen
class Sealed:
    """A request item checked and encoded earlier (a row `submit` validated, kept as its wire
    JSON on disk): `encoded_items` sends `wire` as it is, with nothing read or checked again.

    Made only by `seal`; ``unique_source_invoice_id`` lets a batch's result be matched to it
    the way it would be to its model (`bulk`).
    """

    cls: type[Any]
    wire: _json.Fragment = attrs.field(repr=False)  # debtor data
    unique_source_invoice_id: str | None = attrs.field(default=None, repr=False)


def encoded_item(
    item: M | Mapping[str, Any], cls: type[M], path: str = "$", *, decoded: bool = False
) -> tuple[M, _json.Fragment]:
    """`request_item` of `item` and its wire JSON (`_serde.dumps` of the model); a dict's
    wire data is built as it is read (the writer's walk saved)."""
    read = _read_fast(item, cls, decoded, wire=True) if type(item) is dict else None
    if read is not None:
        return read[0], _json.Fragment(_serde.dumps_wire(read[1]))
    model = request_item(item, cls, path, decoded=decoded)
    return model, _json.Fragment(_serde.dumps(model))


def seal(item: Mapping[str, Any], cls: type[Any], path: str = "$", *, decoded: bool) -> Sealed:
    """`item` read and checked as `cls` (raising what `request_item` raises), kept as a
    `Sealed` item: its wire JSON."""
    model, wire = encoded_item(item, cls, path, decoded=decoded)
    return Sealed(cls, wire, getattr(model, "unique_source_invoice_id", None))


def encoded_items(
    cls: type[M], start: int, items: list[M | Mapping[str, Any]]
) -> tuple[list[M], list[_json.Fragment]]:
    """Each item as a checked `cls` with its wire JSON (`encoded_item`: an error names its
    input position, the first at `start`): what `create_many` sends of a chunk (`Checked`).
    A `Sealed` item of `cls` was checked and encoded before: it goes as it is."""
    checked: list[Any] = []
    wire: list[_json.Fragment] = []
    for i, item in enumerate(items):
        if type(item) is Sealed and item.cls is cls:
            checked.append(item)
            wire.append(item.wire)
        else:
            model, encoded = encoded_item(item, cls, f"$[{start + i}]")
            checked.append(model)
            wire.append(encoded)
    return checked, wire


class Checked(_serde.Encoded):
    """`cls` items checked one by one (`encoded_items`), with their wire JSON: `as_models`
    takes them as they are (one check per item), and the request's writer sends `wire`
    (`wire._writer`), the bytes the ledger keys hashed."""

    __slots__ = ("cls",)

    def __init__(self, items: list[Any], wire: list[_json.Fragment], cls: type[Any]) -> None:
        super().__init__(items, wire)
        self.cls = cls


def problems(
    item: Mapping[str, Any], cls: type[Any], *, decoded: bool = False
) -> list[tuple[str, str]]:
    """Every (wire path, reason) that keeps `item` from being sent as `cls`; [] when it can.

    What `request_item` raises for, all of it at once (a file's row is fixed in one go).
    """
    if type(item) is dict and _read_fast(item, cls, decoded) is not None:
        return []
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
    if not _checker(type(model))(model):
        _check_fields(model, path)


def _check_fields(model: Any, path: str) -> None:
    """`check` field by field, raising for the first value refused (the detailed path)."""
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


# -- compiled per class: the fast path of `check` and of reading a dict -----------------------
#
# `check` and `request_item` run once per item of every write (a bulk file is 100,000 items),
# so each request class gets two functions generated from its annotations once, like the
# reader's structure functions: a checker (model -> True when every value is acceptable) and
# readers (dict -> checked model). They only say yes or fall back: anything they do not accept
# at once (a wrong type, a naive date-time, an unknown or mixed-style key) is handed to the
# detailed code above, which raises the very errors it always raised (or accepts what the fast
# path was too strict for). So no message or rule lives in the compiled code.


class _Fallback(Exception):
    """Raised by a compiled reader for anything it leaves to the detailed path."""


_checkers: dict[type[Any], Callable[[Any], bool]] = {}
_ReaderKey = tuple[type[Any], bool, bool, bool]
"""(class, keyed by attribute names, decoded from text, giving the wire data too)."""
_readers: dict[_ReaderKey, Callable[[Any], Any]] = {}
_compiling: set[_ReaderKey] = set()  # readers being written: a recursive one is looked up late


def _checker(cls: type[Any]) -> Callable[[Any], bool]:
    """The compiled checker of `cls` (cached per class)."""
    function = _checkers.get(cls)
    if function is None:
        function = _checkers[cls] = _CheckerSource(cls).compile()
    return function


def _reader(
    cls: type[Any], by_name: bool, decoded: bool, wire: bool = False
) -> Callable[[Any], Any]:
    """The compiled reader of `cls` dicts keyed by wire names (or attribute names); `wire`:
    one answering (model, the model's wire data), built as it reads (`encoded_items`)."""
    key = (cls, by_name, decoded, wire)
    function = _readers.get(key)
    if function is None:
        _compiling.add(key)
        try:
            function = _readers[key] = _ReaderSource(*key).compile()
        finally:
            _compiling.discard(key)
    return function


def _read_fast(item: dict[str, Any], cls: type[M], decoded: bool, wire: bool = False) -> Any:
    """`item` read and checked by the compiled reader (with `wire`: and its wire data, as
    `_serde.unstructure` gives it of the model); None: leave it to the detailed path."""
    for by_name in (False, True):
        try:
            return _reader(cls, by_name, decoded, wire)(item)
        except Exception:  # any doubt goes to the detailed path, which explains
            continue
    return None


class _Source(_codegen.Source):
    """Shared by the generated checkers and readers: the helpers their code names."""

    def __init__(self) -> None:
        super().__init__(
            {
                "Decimal": Decimal,
                "date": dt.date,
                "datetime": dt.datetime,
                "Fallback": _Fallback,
                "new": object.__new__,
                "fromiso": dt.datetime.fromisoformat,
                "date_fromiso": dt.date.fromisoformat,
                **{f.__name__: f for f in (type, isinstance, len, list, dict)},
            }
        )


def _is_aware(x: str) -> str:
    return f"{x}.tzinfo is not None and {x}.utcoffset() is not None"


class _CheckerSource(_Source):
    """`def check(m) -> bool`: True when `check` would accept every value of `m`."""

    def __init__(self, cls: type[Any]) -> None:
        super().__init__()
        self.cls = cls

    def compile(self) -> Callable[[Any], bool]:
        for field in _fields(self.cls):
            value = self.var()
            self.emit(1, f"{value} = m.{field.name}")
            self.emit(1, f"if {value} is not None:")
            self.value(value, field.type, 2)
        self.emit(1, "return True")
        function: Callable[[Any], bool] = self.function("check(m)", f"check {self.cls.__name__}")
        return function

    def value(self, x: str, tp: Any, indent: int) -> None:
        """Statements returning False unless the (non-None) value in `x` is acceptable."""
        shape, tp = node(tp)
        if shape == "list":
            element = self.var()
            self.emit(indent, f"if not isinstance({x}, list): return False")
            self.emit(indent, f"for {element} in {x}:")
            self.value(element, tp, indent + 1)
            return
        if shape == "model":
            cls, check = self.ref(tp), self.ref(lambda value, tp=tp: _checker(tp)(value))
            self.emit(indent, f"if not isinstance({x}, {cls}) or not {check}({x}): return False")
            return
        ok = _scalar_ok(x, tp)
        if ok is not None:
            self.emit(indent, f"if not ({ok}): return False")
        else:  # nothing to check (an enum...), but the block needs a body
            self.emit(indent, "pass")


def _scalar_ok(x: str, tp: Any) -> str | None:
    """An expression true when `_check_value` accepts the scalar in `x`; None: any value."""
    if tp is Decimal:
        return f"(type({x}) is Decimal and {x}.is_finite()) or type({x}) is int"
    if tp is int:
        return f"type({x}) is int"
    if tp is float:
        return f"type({x}) is int or type({x}) is float"
    if tp is bool or tp is str:
        return f"isinstance({x}, {tp.__name__})"
    if tp is dt.datetime:
        return f"isinstance({x}, datetime) and {_is_aware(x)}"
    if tp == dt.date | dt.datetime:
        return f"type({x}) is date or (isinstance({x}, datetime) and {_is_aware(x)})"
    if tp is dt.date:
        return f"type({x}) is date"
    return None


class _ReaderSource(_Source):
    """`def read(d)`: the checked model from a dict keyed one way, or raise (any exception).

    With `wire`, it answers (model, wire data) instead: a `_serde.wire_struct`, which encodes
    as the dict `_serde.unstructure` gives of the model, built from the values as they are
    read (the writer's walk saved: `wire` and this code write each value by the same rule,
    `_serde.wire_expression`).
    """

    def __init__(self, cls: type[Any], by_name: bool, decoded: bool, wire: bool) -> None:
        super().__init__()
        self.cls, self.by_name, self.decoded, self.wire = cls, by_name, decoded, wire

    def compile(self) -> Callable[[Any], Any]:
        fields = _fields(self.cls)
        by_wire = {f.metadata.get("wire", f.name): f for f in fields}
        # The key each field is read by; by attribute name only where `wire_keys` would read
        # that name as this very field (a name that is another field's wire name is not).
        keys = [
            f.name if self.by_name and by_wire.get(f.name, f) is f else wire_name(f) for f in fields
        ]
        self.emit(1, "if type(d) is not dict: raise Fallback")
        self.emit(1, "n = 0  # the values found: all of the dict's keys when it is len(d)")
        names = [self.var() for _ in fields]
        wire_values: list[str] = []  # each field's wire value (None: left out, no null sent)
        for name, field, key in zip(names, fields, keys, strict=True):
            self.emit(1, f"{name} = d.get({key!r})")
            required = field.default is attrs.NOTHING
            if required:
                self.emit(1, f"if {name} is None: raise Fallback")
                written = self.value(name, field.type, 1)
            else:
                at = len(self.lines)
                self.emit(1, f"if {name} is not None:")
                written = self.value(name, field.type, 2)
                if self.wire and written != name:  # a value of its own, None when not given
                    value, written = written, self.var()
                    self.lines.insert(at, f"    {written} = None")
                    self.emit(2, f"{written} = {value}")
            wire_values.append(written)
            self.emit(2 - required, "n += 1")
        # Else some keys were null or unknown: an unknown key goes the detailed way.
        known = self.ref(frozenset(keys).issuperset)
        self.emit(1, f"if n != len(d) and not {known}(d): raise Fallback")
        # Every value was checked above: no __attrs_post_init__ check again, where no field
        # has a default of its own (which only __init__ would know to give).
        defaults = all(f.default is attrs.NOTHING or f.default is None for f in fields)
        result = emit_build(self, self.cls, fields, names, 1, checked=defaults)
        if self.wire:
            arguments = ", ".join(wire_values)  # positional, in the fields' order
            self.emit(1, f"return {result}, {self.ref(_serde.wire_struct(self.cls))}({arguments})")
        else:
            self.emit(1, f"return {result}")
        label = f"read {self.cls.__name__}{' with wire data' if self.wire else ''}"
        function: Callable[[Any], Any] = self.function("read(d)", label)
        return function

    def value(self, x: str, tp: Any, indent: int) -> str:
        """Statements turning the (non-None) value in `x` into the field's type, in place;
        the expression of its wire data afterwards (with `wire`; else "")."""
        shape, tp = node(tp)
        emit = self.emit
        if shape == "list":
            element, items, written = self.var(), self.var(), self.var()
            emit(indent, f"if type({x}) is not list: raise Fallback")
            emit(indent, f"{items} = []")
            if self.wire:
                emit(indent, f"{written} = []")
            emit(indent, f"for {element} in {x}:")
            emit(indent + 1, f"if {element} is None: raise Fallback")
            element_written = self.value(element, tp, indent + 1)
            emit(indent + 1, f"{items}.append({element})")
            if self.wire:
                emit(indent + 1, f"{written}.append({element_written})")
            emit(indent, f"{x} = {items}")
            return written if self.wire else ""
        if shape == "model":
            key = (tp, self.by_name, self.decoded, self.wire)
            read = self.ref(
                _reader(*key)
                if key not in _compiling
                else lambda d, key=key: _reader(*key)(d)  # recursive
            )
            if not self.wire:
                emit(indent, f"{x} = {read}({x})")
                return ""
            written = self.var()
            emit(indent, f"{x}, {written} = {read}({x})")
            return written
        if tp is str or tp is bool or tp is int:
            emit(indent, f"if type({x}) is not {tp.__name__}: raise Fallback")
        elif tp is Decimal:
            emit(indent, f"if type({x}) is Decimal:")
            emit(indent + 1, f"if not {x}.is_finite(): raise Fallback")
            text = " or type({x}) is str or type({x}) is float" if self.decoded else ""
            emit(indent, f"elif type({x}) is int{text.format(x=x)}:")
            emit(indent + 1, f"{x} = {self.ref(_serde._SCALAR_HOOKS[Decimal])}({x}, None)")
            emit(indent, "else: raise Fallback")
        elif tp is dt.datetime or tp == dt.date | dt.datetime:
            if tp is not dt.datetime:
                emit(indent, f"if type({x}) is date: pass")
                emit(indent, f"elif type({x}) is str and len({x}) == 10:")
                emit(indent + 1, f"{x} = date_fromiso({x})")
                emit(indent, "else:")
                indent += 1
            emit(indent, f"if type({x}) is str: {x} = fromiso({x})")
            emit(indent, f"elif type({x}) is not datetime: raise Fallback")
            emit(indent, f"if not ({_is_aware(x)}): raise Fallback")
        elif tp is dt.date:
            emit(indent, f"if type({x}) is date: pass")
            emit(indent, f"elif type({x}) is str and len({x}) == 10: {x} = date_fromiso({x})")
            emit(indent, "else: raise Fallback")
        elif is_open_enum(tp):  # a known value (or member) is one dict lookup
            members = self.ref(tp._value2member_map_)
            hook = self.ref(_serde.converter.get_structure_hook(tp))
            emit(indent, f"{x} = {members}.get({x}) or {hook}({x}, {self.ref(tp)})")
        else:  # the rest: the converter's own hook, which raises for a bad value
            hook = self.ref(_serde.converter.get_structure_hook(tp))
            emit(indent, f"{x} = {hook}({x}, {self.ref(tp)})")
            if _scalar_ok(x, tp) is not None:  # float: reading may give what check refuses
                emit(indent, f"if not ({_scalar_ok(x, tp)}): raise Fallback")
        return _serde.wire_expression(tp, x, self.ref) if self.wire else ""
