"""Compiled structure functions: decoded JSON -> generated attrs models, one flat function each.

A listing page is ~100-1,000 invoices of ~60 fields in 7 nested objects, so the cost per field
is what a decode costs. The function compiled for a class reads its fields in one block of
subscripts (falling back to `dict.get` for the rare object that omits an optional key),
checks the JSON type inline, parses date-times and dates inline, looks money up in a memo, and
inlines the code of its nested attrs classes and of its lists of them instead of calling their
hooks: no Python call per field or per nested object in the common case. Every mismatch raises
(anything: the caller re-runs the document through cattrs' detailed converter to say where), so
the fast path needs no error bookkeeping. Only the shape is derived here, from the annotations;
what a value means stays in the converter's scalar hooks, called for everything uncommon.
"""

from __future__ import annotations

import datetime as dt
import math
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import cattrs
import msgspec

from . import _codegen, _json
from ._fields import is_list as is_list  # re-exported: _serde registers its hooks by these
from ._fields import node
from ._fields import optional_inner as optional_inner
from ._openenum import OpenEnum
from ._time import as_utc

_Hook = Callable[[Any, Any], Any]


def is_open_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, OpenEnum)


def expect_object(value: Any) -> typing.NoReturn:
    raise TypeError(f"expected an object, got {type(value).__name__}")


def not_a_list(value: Any) -> typing.NoReturn:
    raise TypeError(f"expected an array, got {type(value).__name__}")


# -- the money memo ---------------------------------------------------------------------------

# Parsed amounts, keyed by their JSON value. Amounts repeat within an invoice (its principal
# claim carries the invoice's own amounts) and across a page (a third are 0 or 1), while reading
# a float into an exact Decimal costs ~400 ns (repr + parse); a hit is one dict lookup.
# Date-times are not remembered: inline, `fromisoformat` costs about what the memo would.
# Only floats and strings key it: no float equals a string, while an int equals its float
# (1 == 1.0, one key) yet reads as another Decimal (Decimal("1") vs Decimal("1.0")); ints read
# in one C call anyway. Bool (an int) is left out, and so are the zeros: 0.0 == -0.0 is one
# key for Decimal("0.0") and Decimal("-0.0"), so the compiled code reads them from constants.
MEMO: dict[float | str, Decimal] = {}
# Bounded so a long export never grows it: 4,096 entries is a few hundred KB, more than one page
# of distinct values; when full it is simply emptied (cheaper than LRU bookkeeping).
_MEMO_SIZE = 4096


def _remembering(hook: _Hook) -> _Hook:
    """The money hook behind the memo for what is not a float (read inline): a string is a
    hit, else the hook's result, remembered; anything else goes to the hook."""

    def structure_and_remember(value: Any, target: Any) -> Any:
        if type(value) is not str:  # an int equals its float as a key; bool is an int
            return hook(value, target)
        result = MEMO.get(value)
        if result is None:
            result = hook(value, target)
            if len(MEMO) >= _MEMO_SIZE:
                MEMO.clear()
            MEMO[value] = result
        return result

    return structure_and_remember


# -- the compiler -----------------------------------------------------------------------------


def _label(kind: str, cls: type) -> str:
    return f"{kind} {cls.__module__}.{cls.__qualname__}"


def plain_init(cls: type, fields: typing.Sequence[attrs.Attribute[Any]]) -> bool:
    """True when filling the slots of a `cls` directly is what its __init__ would do (no
    validators, converters, hooks or own __setattr__)."""
    setter: object = cls.__setattr__
    return setter is object.__setattr__ and not any(
        f.validator or f.converter or not f.init for f in fields
    )


def emit_build(
    source: _codegen.Source,
    cls: type,
    fields: typing.Sequence[attrs.Attribute[Any]],
    values: typing.Sequence[str],
    indent: int,
    *,
    checked: bool = False,
) -> str:
    """Code building a `cls` from one expression per field; the variable holding it.

    Its slots are filled directly where `plain_init` allows and it has no
    `__attrs_post_init__` (or ``checked``: the caller checked every value already), saving
    the cost of passing ~20 keyword arguments; else its __init__ is called.
    """
    result = source.var()
    if plain_init(cls, fields) and (checked or not hasattr(cls, "__attrs_post_init__")):
        source.emit(indent, f"{result} = new({source.ref(cls)})")
        for value, field in zip(values, fields, strict=True):
            source.emit(indent, f"{result}.{field.name} = {value}")
    else:
        arguments = ", ".join(f"{f.alias}={v}" for v, f in zip(values, fields, strict=True))
        source.emit(indent, f"{result} = {source.ref(cls)}({arguments})")
    return result


# Field types checked inline: the common case (the value already has the right JSON type)
# costs one type() comparison instead of a hook call.
_INLINE_TYPES = {str: "str", int: "int", bool: "bool"}


class _Compiler(_codegen.Source):
    """Writes the source of one structure function; helpers become its default arguments."""

    def __init__(self, conv: cattrs.Converter, scalar_hooks: Mapping[Any, _Hook]) -> None:
        super().__init__(
            {
                # Builtins as default arguments too: a local is read faster than a builtin.
                **{f.__name__: f for f in (type, str, int, bool, dict, list, len)},
                "expect_object": expect_object,
                "not_a_list": not_a_list,
                "new": object.__new__,
                "memo": MEMO,
                "memo_size": _MEMO_SIZE,
                "remembered": MEMO.get,
                "remember": _remembering(scalar_hooks[Decimal]),
                "zero": scalar_hooks[Decimal](0.0, Decimal),
                "negative_zero": scalar_hooks[Decimal](-0.0, Decimal),
                "copysign": math.copysign,
                "fromiso": dt.datetime.fromisoformat,
                "date_fromiso": dt.date.fromisoformat,
                "as_utc": as_utc,
            }
        )
        self.conv = conv
        self.scalar_hooks = scalar_hooks
        self.inlining: list[type] = []  # classes being inlined: a recursive one is called

    def hook(self, tp: Any) -> str:
        """The name of the converter's hook for `tp`, looked up when first called if `tp` is
        being compiled right now (a recursive model), else now."""
        if tp in self.scalar_hooks:
            # Not the converter's: its singledispatch table answers int() for int, str() for str.
            return self.ref(self.scalar_hooks[tp])
        if attrs.has(tp) and tp in self.inlining:
            conv = self.conv
            return self.ref(lambda value, target: conv.structure(value, target))
        return self.ref(self.conv.get_structure_hook(tp))

    def compile(self, cls: type) -> _Hook:
        result = self.obj(cls, "o", 1)
        self.emit(1, f"return {result}")
        function: _Hook = self.function("structure(o, _)", _label("structure", cls), bind=True)
        return function

    def obj(self, cls: type, src: str, indent: int) -> str:
        """Code building `cls` from the dict in `src`; returns the variable holding it."""
        attrs.resolve_types(cls)
        fields = attrs.fields(cls)
        self.inlining.append(cls)
        self.emit(indent, f"if type({src}) is not dict: expect_object({src})")
        names = [self.var() for _ in fields]
        wires = [f.metadata.get("wire", f.name) for f in fields]
        required = [f.default is attrs.NOTHING for f in fields]
        keys = [self.ref(_json_key(wire)) for wire in wires]
        reads = [f"{name} = {src}[{key}]" for name, key in zip(names, keys, strict=True)]
        if all(required):
            self.emit(indent, "; ".join(reads) or "pass")
        else:
            # An object omitting an optional key is read again, key by key.
            self.emit(indent, "try:")
            self.emit(indent + 1, "; ".join(reads))
            self.emit(indent, "except KeyError:")
            for name, key, needed in zip(names, keys, required, strict=True):
                read = f"{src}[{key}]" if needed else f"{src}.get({key})"
                self.emit(indent + 1, f"{name} = {read}")
        for name, field in zip(names, fields, strict=True):
            self.value(name, field.type, indent)
        result = emit_build(self, cls, fields, names, indent)
        self.inlining.pop()
        return result

    def value(self, name: str, annotation: Any, indent: int) -> None:
        """Code turning the JSON value in `name` into the field's type, in place."""
        inner = optional_inner(annotation)
        tp = annotation if inner is None else inner
        nullable = inner is not None
        if tp in _INLINE_TYPES:
            guard = f" and {name} is not None" if nullable else ""
            self.emit(indent, f"if type({name}) is not {_INLINE_TYPES[tp]}{guard}: ")
            self.lines[-1] += f"{name} = {self.hook(tp)}({name}, None)"
            return
        target = self.ref(tp)
        if tp is dt.datetime or tp is dt.date:
            if tp is dt.datetime:
                # Amili's own format (UTC, "Z") parses in C; anything else goes to the hook.
                self.emit(indent, f"if type({name}) is str:")
                self.emit(indent + 1, f"{name} = fromiso({name})")
                self.emit(indent + 1, f"if {name}.tzinfo is None: {name} = as_utc({name})")
            else:
                self.emit(indent, f"if type({name}) is str and len({name}) == 10:")
                self.emit(indent + 1, f"{name} = date_fromiso({name})")
            self.emit(indent, f"elif {name} is not None:" if nullable else "else:")
            self.emit(indent + 1, f"{name} = {self.hook(tp)}({name}, {target})")
            return
        if tp is Decimal:
            # The common case inline: a float (what `parse` reads a JSON number into) already
            # remembered. `is None`, not `or`: a remembered Decimal("0E-2") is falsy, yet a hit.
            self.emit(indent, f"if type({name}) is float:")
            self.emit(indent + 1, f"if not {name}:  # 0.0 or -0.0: one memo key, two Decimals")
            self.emit(indent + 2, f"{name} = negative_zero if copysign(1.0, {name}) < 0 else zero")
            self.emit(indent + 1, "else:")
            self.emit(indent + 2, f"hit = remembered({name})")
            self.emit(indent + 2, "if hit is None:")
            self.emit(indent + 3, f"hit = {self.hook(tp)}({name}, {target})")
            self.emit(indent + 3, "if len(memo) >= memo_size: memo.clear()")
            self.emit(indent + 3, f"memo[{name}] = hit")
            self.emit(indent + 2, f"{name} = hit")
            self.emit(indent, f"elif {name} is not None:" if nullable else "else:")
            self.emit(indent + 1, f"{name} = remember({name}, {target})")
            return
        if nullable:
            self.emit(indent, f"if {name} is not None:")
            indent += 1
        item = typing.get_args(tp)[0] if is_list(tp) and typing.get_args(tp) else Any
        if is_open_enum(tp):  # known values are one dict lookup
            members = self.ref(tp._value2member_map_)
            self.emit(
                indent, f"{name} = {members}.get({name}) or {self.hook(tp)}({name}, {target})"
            )
        elif attrs.has(tp) and tp not in self.inlining:
            self.emit(indent, f"{name} = {self.obj(tp, name, indent)}")
        elif item is not Any:
            self.emit(indent, f"if type({name}) is not list: not_a_list({name})")
            if attrs.has(item) and item not in self.inlining:
                element, items = self.var(), self.var()
                self.emit(indent, f"{items} = []")
                self.emit(indent, f"for {element} in {name}:")
                self.emit(indent + 1, f"{items}.append({self.obj(item, element, indent + 1)})")
                self.emit(indent, f"{name} = {items}")
            else:
                element, item_hook, item_type = self.var(), self.hook(item), self.ref(item)
                self.emit(indent, f"{name} = [{item_hook}({element}, {item_type}) ")
                self.lines[-1] += f"for {element} in {name}]"
        else:
            self.emit(indent, f"{name} = {self.hook(tp)}({name}, {target})")


def _json_key(wire: str) -> str:
    """`wire` as the very str object the JSON engine returns for that key (else an equal one).

    The engine hands out one cached object per key name, so a subscript with that object finds its
    entry by identity; with an equal literal every lookup would compare the text. A speed hint
    only: a dict built any other way is read the same, one string comparison per key slower.
    """
    key: str = next(iter(_json.loads(_json.dumps({wire: None}))))
    return key


def compile_structure_fn(
    cls: type, conv: cattrs.Converter, scalar_hooks: Mapping[Any, _Hook]
) -> _Hook:
    """The structure function of an attrs class, its nested classes inlined (see module doc).

    ``scalar_hooks`` read str, int, bool, float, Decimal, date and datetime values; anything
    else is read by the hook ``conv`` has for it.
    """
    return _Compiler(conv, scalar_hooks).compile(cls)


# -- typed decoding: msgspec mirrors of the models, copied into them --------------------------

# A page read straight into typed containers in C (numbers into Decimal from their text,
# date-times, enums, lists) costs about what a bare parse does (docs/DESIGN.md, "JSON engine");
# what is left in Python is copying each mirror's fields into its attrs model, with no type
# check. A mirror is a `msgspec.Struct` per model: the same field names, the wire names as its
# keys, the same types, models replaced by their mirrors. Anything a mirror refuses (a case
# number sent as a number, a naive date-time, a date sent as a date-time) is left to the
# dict path, which reads it or explains why not.

_AWARE = typing.Annotated[dt.datetime, msgspec.Meta(tz=True)]
"""A date-time with an offset: a naive one goes to the dict path (read as UTC there)."""
# What msgspec reads into exactly what the scalar hooks would make of the same JSON value.
_MIRRORED_SCALARS = frozenset({str, int, bool, float, Decimal, dt.date, type(None)})


class NotMirrored(Exception):
    """A type the typed decoder cannot read exactly as the dict path does (`date | datetime`,
    a recursive model): such a model is always read through the dict path."""


class Mismatch(Exception):
    """A value the mirror accepted that the model may not hold (a NaN or infinite amount from
    a string): the document goes to the dict path, which explains the failure."""


class _Mirrors:
    """One mirror per model, built on first use and kept (generic: from the annotations)."""

    def __init__(self) -> None:
        self.types: dict[type, Any] = {}
        self.building: set[type] = set()

    def of(self, cls: type) -> Any:
        found = self.types.get(cls)
        if found is not None:
            return found
        if cls in self.building:
            raise NotMirrored(f"{cls.__name__} is recursive")
        self.building.add(cls)
        try:
            attrs.resolve_types(cls)
            fields = []
            for field in attrs.fields(cls):
                wire = field.metadata.get("wire", field.name)
                tp = self.type(field.type)
                if field.default is attrs.NOTHING:
                    fields.append((field.name, tp, msgspec.field(name=wire)))
                elif field.default is None:
                    fields.append((field.name, tp, msgspec.field(name=wire, default=None)))
                else:
                    raise NotMirrored(f"{cls.__name__}.{field.name} has a default other than None")
            mirror = msgspec.defstruct(
                f"{cls.__name__}Mirror", fields, kw_only=True, gc=False, module=__name__
            )
        finally:
            self.building.discard(cls)
        self.types[cls] = mirror
        return mirror

    def type(self, tp: Any) -> Any:
        inner = optional_inner(tp)
        if inner is not None:
            return self.type(inner) | None
        if attrs.has(tp):
            return self.of(tp)
        if is_list(tp):
            args = typing.get_args(tp)
            return list[self.type(args[0])] if args else list[Any]  # type: ignore[misc]
        if tp is dt.datetime:
            return _AWARE
        if tp in _MIRRORED_SCALARS or is_open_enum(tp) or tp is Any:
            return tp
        origin = typing.get_origin(tp)
        if origin is dict:
            key, value = typing.get_args(tp)
            if key is str:
                return dict[str, self.type(value)]  # type: ignore[misc]
        if origin is typing.Union or origin is types.UnionType:
            args = typing.get_args(tp)
            if all(a in (str, int, float, bool, type(None)) for a in args):
                return tp  # a union of JSON scalars, passed through as the dict path does
        raise NotMirrored(f"no mirror for {tp!r}")


MIRRORS = _Mirrors()


def mirror_of(cls: type) -> Any | None:
    """The msgspec Struct mirroring `cls`, or None when it cannot be mirrored exactly."""
    try:
        return MIRRORS.of(cls)
    except NotMirrored:
        return None


class _Copier(_codegen.Source):
    """Writes one function copying a mirror (and its nested mirrors) into the attrs models."""

    def __init__(self) -> None:
        super().__init__({"new": object.__new__, "Mismatch": Mismatch})

    def compile(self, cls: type) -> Callable[[Any], Any]:
        result = self.obj(cls, "m", 1)
        self.emit(1, f"return {result}")
        function: Callable[[Any], Any] = self.function("copy(m)", _label("copy", cls), bind=True)
        return function

    def obj(self, cls: type, src: str, indent: int) -> str:
        fields = attrs.fields(cls)
        values = []
        for field in fields:
            kind, tp = node(field.type)
            money = kind == "scalar" and tp is Decimal
            models = kind == "list" and attrs.has(tp)
            if kind == "model" or models or money:
                name = self.var()
                self.emit(indent, f"{name} = {src}.{field.name}")
                self.emit(indent, f"if {name} is not None:")
                if money:
                    # From a string msgspec reads "NaN" and "Infinity" too; amounts are finite.
                    self.emit(indent + 1, f"if not {name}.is_finite(): raise Mismatch")
                elif kind == "model":
                    self.emit(indent + 1, f"{name} = {self.obj(tp, name, indent + 1)}")
                else:
                    element, items = self.var(), self.var()
                    self.emit(indent + 1, f"{items} = []")
                    self.emit(indent + 1, f"for {element} in {name}:")
                    built = self.obj(tp, element, indent + 2)
                    self.emit(indent + 2, f"{items}.append({built})")
                    self.emit(indent + 1, f"{name} = {items}")
                values.append(name)
            else:
                values.append(f"{src}.{field.name}")
        return emit_build(self, cls, fields, values, indent)


def compile_copy_fn(cls: type) -> Callable[[Any], Any]:
    """The function building `cls` from its mirror (`mirror_of`), nested models inlined.

    It checks no types (the mirror's decoder did); it raises Mismatch for an amount that is
    not finite.
    """
    return _Copier().compile(cls)
