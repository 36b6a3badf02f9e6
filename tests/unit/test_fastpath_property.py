"""Property: the compiled fast path reads every model exactly as cattrs' detailed converter does.

Wire dicts are generated from each model's own field types (all the generated models, the
response models among them): amounts as ints, floats and strings (zeros of both signs, 1 and
1.0), optional fields missing or null, unknown enum values, unknown extra keys, and, in the
second property, a value of the wrong JSON type somewhere. Both converters must give the same
result, compared exactly (the text of every Decimal, the tzinfo of every date-time), or both
fail.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amili_async import _serde, models
from amili_async._structure_compiler import optional_inner

MODELS = sorted(
    (model for name in dir(models) if attrs.has(model := getattr(models, name))),
    key=lambda model: model.__name__,
)
PROPERTY = settings(
    max_examples=8,  # per model and property: ~950 documents a run
    deadline=None,  # a loaded 2-core machine: no time limit per example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=3),
    st.just([]),
    st.just({}),
)
"""Any JSON value, of whatever type: the wrong one for most fields."""
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
AMOUNTS = st.one_of(
    st.sampled_from([0, 1, 0.0, -0.0, 1.0, "1", "1.0", "0.00", "4500.10", 4500.1, -12.5]),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
)


def datetimes() -> st.SearchStrategy[str]:
    moments = st.datetimes(
        min_value=dt.datetime(1900, 1, 1), timezones=st.sampled_from([None, dt.UTC])
    )
    texts = moments.map(lambda moment: moment.isoformat())
    amili = moments.map(lambda moment: moment.replace(tzinfo=None).isoformat() + "Z")
    return st.one_of(texts, amili)


def wire_value(tp: Any, junk: bool) -> st.SearchStrategy[Any]:
    """JSON values for a field of type `tp` (or, with `junk`, sometimes of any type)."""
    good = _wire(tp, junk)
    return st.one_of(good, JUNK) if junk else good


def _wire(tp: Any, junk: bool) -> st.SearchStrategy[Any]:
    inner = optional_inner(tp)
    if inner is not None:
        return st.one_of(st.none(), wire_value(inner, junk))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if attrs.has(tp):
        return st.deferred(lambda: objects(tp, junk))
    if origin is list:
        return st.lists(wire_value(args[0], junk), max_size=2)
    if origin is dict:
        return st.dictionaries(st.text(max_size=3), wire_value(args[1], junk), max_size=2)
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(args), st.text(max_size=3))
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*(wire_value(arg, junk) for arg in args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        known = [member.value for member in tp]
        return st.one_of(st.sampled_from(known), st.text(max_size=6))  # unknown values too
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=6),
        bool: st.booleans(),
        int: st.integers(min_value=-(2**40), max_value=2**40),
        float: st.floats(allow_nan=False, allow_infinity=False),
        Decimal: AMOUNTS,
        dt.datetime: datetimes(),
        dt.date: st.dates().map(dt.date.isoformat),
        Any: SCALARS,
        type(None): st.none(),
    }
    if tp in simple:
        return simple[tp]
    raise AssertionError(f"no wire strategy for {tp!r}: add one")


def objects(cls: type, junk: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Wire dicts for `cls`: required keys, optional keys present or missing, unknown keys."""
    attrs.resolve_types(cls)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        wire = field.metadata.get("wire", field.name)
        needed = field.default is attrs.NOTHING
        (required if needed else optional)[wire] = wire_value(field.type, junk)
    known = set(required) | set(optional)
    extra = st.dictionaries(
        st.text(max_size=6).filter(lambda k: k not in known), SCALARS, max_size=2
    )
    body = st.fixed_dictionaries(required, optional=optional)
    return st.tuples(body, extra).map(lambda parts: {**parts[1], **parts[0]})


def canonical(value: Any) -> Any:
    """`value` as plain data that tells apart what `==` does not: Decimal("1") vs "1.0",
    an aware date-time vs a naive one, an enum member vs its value, a type vs another."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return (type(value).__name__, [(f.name, canonical(getattr(value, f.name))) for f in fields])
    if isinstance(value, list):
        return ["list", [canonical(item) for item in value]]
    if isinstance(value, dict):
        return ["dict", sorted((k, repr(canonical(v))) for k, v in value.items())]
    if isinstance(value, dt.datetime):
        return ["datetime", value.isoformat(), repr(value.tzinfo)]
    return [type(value).__name__, repr(value)]


def outcome(converter: Any, data: Any, cls: type) -> Any:
    try:
        return canonical(converter.structure(data, cls))
    except Exception:  # any failure: the fast path raises whatever it meets
        return "failed"


def check(cls: type, data: Any) -> None:
    fast = outcome(_serde.converter, data, cls)
    detailed = outcome(_serde._explainer, data, cls)
    assert fast == detailed


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@PROPERTY
@given(data=st.data())
def test_the_fast_path_reads_wire_data_as_the_detailed_converter(cls: type, data: Any) -> None:
    check(cls, data.draw(objects(cls, junk=False)))


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@PROPERTY
@given(data=st.data())
def test_the_fast_path_fails_where_the_detailed_converter_fails(cls: type, data: Any) -> None:
    check(cls, data.draw(objects(cls, junk=True)))
