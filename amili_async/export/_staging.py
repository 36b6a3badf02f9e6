"""A unit's pages as staged JSON Lines, written in C from the page's typed document.

A staged row is `_serde.dumps(item) + b"\\n"`. Building a page's models only to write them
back as JSON was most of an export's CPU (issue 24.5), so for a listing whose items hold only
JSON scalars, dates, date-times, amounts, enums, nested models and lists of them (`_plain`),
the page is decoded here into the models' mirror Structs (`_structure_compiler.mirror_of`, the
same types the SDK decodes a page into) rebuilt to leave out fields at their default (None),
as the models' unstructuring does, and msgspec writes every item back in one call: the same
bytes, no model built. msgspec writes whole milliseconds as six digits (`.621000Z`, where
`_time.format_datetime` writes `.621Z`); one regular expression anchored on the date-time
fields' keys takes the three zeros out of the page's output (`_milliseconds`). A page the
mirror refuses (another shape, a naive date-time, a non-finite amount) goes through the
models (`_encode`), with their errors: `tests/unit/test_export_staging.py` holds both ways to
the same bytes.

Amounts cost most of what is left (a Decimal made from each number's text, then written
back): so a page is first read with its amounts kept as their JSON text (`msgspec.Raw`,
written back verbatim), and kept so only when every amount on it is absent or a number spelled
as `str(Decimal)` writes it (`_as_written`); a null, a string or another spelling, and the
page is read again with exact Decimals.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import typing
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, overload

import attrs
import msgspec

from .. import _codegen
from .._fields import model_fields, node, optional_inner, wire_name
from .._pagination import AsyncPager, RawPage
from .._structure_compiler import mirror_of
from ._encode import encode_lines

__all__ = ["Lines", "joined", "staged_pages"]

_SCALARS = (str, int, bool, float, Decimal, dt.date)
"""Field types msgspec writes exactly as the models' JSON (enums and date-times aside)."""


class Lines(Sequence[bytes]):
    """One page's staged rows: the JSON Lines `data` and how many rows it holds."""

    __slots__ = ("data", "rows")

    def __init__(self, data: bytes, rows: int) -> None:
        self.data = data
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        return self.data.splitlines(keepends=True)[index]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.data.splitlines(keepends=True))


def joined(items: Sequence[bytes]) -> bytes:
    """A page's staged rows as one block of JSON Lines."""
    return items.data if isinstance(items, Lines) else b"".join(items)


def staged_pages(pager: AsyncPager[Any], model: type[Any]) -> AsyncPager[bytes]:
    """`pager` (one window's listing of `model`) with each page's items as its `Lines`.

    The pager keeps fetching, prefetching, following tokens and pausing GC; only how a page
    is read and built changes (`_StagingSource`). A pager wrapping the listing (its span, while
    tracing is on) is kept, around the staged listing.
    """

    def stage(inner: Any) -> _StagingSource:
        return _StagingSource(inner, model, _shape(getattr(inner, "envelope", None), model))

    return pager.restaged(stage)


@attrs.frozen
class _Shape:
    """How the pages of one envelope are read and written in C."""

    envelopes: tuple[Any, ...]
    """The envelope's mirrors (amounts as text, amounts as Decimal), fields at their default
    left out when written."""
    decoder: msgspec.json.Decoder[Any]
    """Amounts as Decimal: exact whatever their spelling."""
    as_text: msgspec.json.Decoder[Any] | None
    """Amounts as their JSON text (None: the model has none, or not all optional fields)."""
    amounts: Callable[[Sequence[Any]], list[Any]]
    """The amounts (texts) of items read `as_text`."""
    encode: Callable[[Sequence[Any]], bytes]
    """Items (mirrors) -> their JSON Lines."""

    def read(self, content: bytes) -> Any:
        """The page's document; msgspec's DecodeError when the mirror refuses it."""
        if self.as_text is not None:
            document = self.as_text.decode(content)
            if _as_written(b",".join(self.amounts(document.data or ()))):
                return document
        return self.decoder.decode(content)


@attrs.frozen
class _StagingSource:
    """A listing's source (`_pagination.Source`) whose pages are built as staged `Lines`:
    from the mirror in C where `shape` allows, else from the models `inner` builds."""

    inner: Any
    model: type[Any]
    shape: _Shape | None

    async def fetch(self, token: str | None) -> Any:
        return await self.inner.fetch(token)

    def read(self, answer: Any) -> RawPage:
        shape = self.shape
        if shape is not None:
            try:
                document = shape.read(answer.content)
            except (msgspec.DecodeError, RecursionError):  # incl. ValidationError
                pass  # another shape, or not JSON: the listing's own read says why
            else:
                summary = document.summary
                token = None if summary is None else summary.next_page_token
                return RawPage(answer, document, token or None)  # "" is the last page too
        raw: RawPage = self.inner.read(answer)
        return raw

    def build(self, page: RawPage) -> Lines:
        shape = self.shape
        if shape is not None and type(page.document) in shape.envelopes:
            items = page.document.data or []
            keep = getattr(self.inner, "keep", None)  # the window's bound, on mirrors alike
            if keep is not None:
                items = [item for item in items if keep(item)]
            try:
                return Lines(shape.encode(items), len(items))
            except ValueError:  # a non-finite amount: the models' read says why
                page = self.inner.read(page.answer)
        built = self.inner.build(page)
        return Lines(encode_lines(built, self.model), len(built))


_SHAPES: dict[tuple[Any, type[Any]], _Shape | None] = {}


def _shape(envelope: Any, model: type[Any]) -> _Shape | None:
    """The C reading and writing of `envelope`'s pages of `model` items, or None where the
    mirror would not write exactly the models' bytes."""
    key = (envelope, model)
    if key not in _SHAPES:
        _SHAPES[key] = _make_shape(envelope, model)
    return _SHAPES[key]


def _make_shape(envelope: Any, model: type[Any]) -> _Shape | None:
    if not (isinstance(envelope, type) and attrs.has(envelope)):
        return None
    data = {f.name: f for f in model_fields(envelope)}.get("data")
    if (
        data is None
        or node(data.type) != ("list", model)
        or "summary" not in {f.name for f in model_fields(envelope)}
    ):
        return None
    stamps: set[str] = set()
    others: set[str] = set()
    amounts: list[bool] = []
    if not _plain(model, stamps, others, amounts) or stamps & others:
        return None  # a key both a date-time and something else: the fix could hit a text
    mirror = mirror_of(envelope)
    if mirror is None:
        return None
    exact = _omitting(mirror, {}, as_text=False)
    encoder = msgspec.json.Encoder(decimal_format="number")
    fix = _milliseconds(stamps)

    def encode(items: Sequence[Any]) -> bytes:
        lines = encoder.encode_lines(items)
        return lines if fix is None else fix.sub(b"", lines)

    # Numbers under `Any` exact, as the SDK's own read (none here: `_plain` has no `Any`).
    decoder = msgspec.json.Decoder(exact, float_hook=Decimal)
    if not amounts or not all(amounts):  # no amount, or one the text way cannot take
        return _Shape((exact,), decoder, None, _no_amounts, encode)
    texts = _omitting(mirror, {}, as_text=True)
    as_text = msgspec.json.Decoder(texts, float_hook=Decimal)
    return _Shape((texts, exact), decoder, as_text, _amount_walker(model), encode)


def _no_amounts(items: Sequence[Any]) -> list[Any]:
    return []


def _plain(cls: type[Any], stamps: set[str], others: set[str], amounts: list[bool]) -> bool:
    """True when every field of `cls` (nested too) is written by msgspec as the models are;
    collects the wire names of date-time fields (`stamps`) and of all others, and for each
    amount whether it can be read as text (`_as_text`)."""
    for field in model_fields(cls):
        kind, tp = node(field.type)
        wire = wire_name(field)
        if kind == "scalar" and tp is dt.datetime:
            stamps.add(wire)  # directly under its key: what the fix is anchored on
            continue
        others.add(wire)
        if kind == "scalar" and tp is Decimal:
            amounts.append(_as_text(field))
        while kind == "list":
            kind, tp = node(tp)
            if tp is Decimal:
                amounts.append(False)  # in a list: not walked by `_amount_walker`
        if kind == "model":
            if not _plain(tp, stamps, others, amounts):
                return False
        elif not (tp in _SCALARS or (isinstance(tp, type) and issubclass(tp, Enum))):
            return False  # `Any`, dicts, unions, date-times in a list: the models' way
    return True


def _as_text(field: attrs.Attribute[Any]) -> bool:
    """True for an amount the text way reads: `Decimal | None`, None by default (absent when
    None, so a text of `null` is never written)."""
    return field.default is None and optional_inner(field.type) is Decimal


_NUMBER_BYTES = b"0123456789.-,"
"""All a page's amounts (texts, joined by commas) may hold to be read as text: a JSON value
of only these is a number without exponent (a string has quotes, a literal letters)."""


def _as_written(amounts: bytes) -> bool:
    """True when every amount in `amounts` (texts joined by commas) is a number that the
    exact read (msgspec's Decimal) and `str` give back as the same text: no exponent, not the
    integer -0 (read as the int 0), not six zeros after "0." (0.0000001 is written 1E-7; a
    text like 10.000000 is refused too, and merely read the exact way)."""
    return (
        not amounts.translate(None, _NUMBER_BYTES)
        and b"-0," not in amounts
        and not amounts.endswith(b"-0")
        and b"0.000000" not in amounts
    )


def _amount_walker(model: type[Any]) -> Callable[[Sequence[Any]], list[Any]]:
    """A compiled function listing the amounts (present ones) of items of `model`."""
    lines = ["def amounts(items):", "    out = []", "    put = out.append", "    for o in items:"]
    _walk(model, "o", 2, lines, itertools.count())
    lines.append("    return out")
    label = f"export amounts {model.__module__}.{model.__qualname__}"
    walker: Callable[[Sequence[Any]], list[Any]] = _codegen.define(
        "\n".join(lines) + "\n", {}, label
    )["amounts"]
    return walker


def _walk(cls: type[Any], var: str, indent: int, lines: list[str], names: Iterator[int]) -> None:
    pad = "    " * indent
    for field in model_fields(cls):
        kind, tp = node(field.type)
        if kind == "scalar" and tp is Decimal:
            value = f"v{next(names)}"
            lines.append(f"{pad}{value} = {var}.{field.name}")
            lines.append(f"{pad}if {value} is not None: put({value})")
        elif kind == "model" and _has_amounts(tp):
            item = f"v{next(names)}"
            lines.append(f"{pad}{item} = {var}.{field.name}")
            lines.append(f"{pad}if {item} is not None:")
            _walk(tp, item, indent + 1, lines, names)
        elif kind == "list" and node(tp)[0] == "model" and _has_amounts(tp):
            item = f"v{next(names)}"
            lines.append(f"{pad}for {item} in {var}.{field.name} or ():")
            _walk(node(tp)[1], item, indent + 1, lines, names)


def _has_amounts(tp: Any) -> bool:
    kind, tp = node(tp)
    if kind == "list":
        return _has_amounts(tp)
    if kind == "model":
        return any(_has_amounts(f.type) for f in model_fields(tp))
    return bool(tp is Decimal)


_DATETIME_TO_MILLIS = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\d"
"""How msgspec writes a date-time up to its milliseconds (then 3 more digits, the offset)."""


def _milliseconds(stamps: set[str]) -> re.Pattern[bytes] | None:
    """The three zeros msgspec writes after whole milliseconds, in a date-time under one of
    the `stamps` keys. A key of the page's own objects: inside a JSON text every `"` is
    escaped, so `"createdAt":"` is always a key (and, `_plain` checked, a date-time's)."""
    if not stamps:
        return None
    behind = b"|".join(
        b'(?<="' + re.escape(key.encode()) + b'":"' + _DATETIME_TO_MILLIS + b"000)"
        for key in sorted(stamps)
    )
    return re.compile(rb'000(?=Z"|[+-]\d\d:\d\d")(?:' + behind + b")")


def _omitting(mirror: Any, done: dict[Any, Any], *, as_text: bool) -> Any:
    """`mirror` as a Struct that leaves out fields at their default when written (what the
    models' unstructuring does), its nested mirrors likewise; same fields, names, types, but
    with `as_text` its optional amounts kept as their JSON text."""
    found = done.get(mirror)
    if found is None:
        fields = []
        for info in msgspec.structs.fields(mirror):
            if info.default is msgspec.NODEFAULT:
                spec = msgspec.field(name=info.encode_name)
            else:
                spec = msgspec.field(name=info.encode_name, default=info.default)
            text = as_text and info.default is None and optional_inner(info.type) is Decimal
            tp = msgspec.Raw if text else _swap(info.type, done, as_text)
            fields.append((info.name, tp, spec))
        found = done[mirror] = msgspec.defstruct(
            mirror.__name__, fields, kw_only=True, gc=False, omit_defaults=True, module=__name__
        )
    return found


def _swap(tp: Any, done: dict[Any, Any], as_text: bool) -> Any:
    """`tp` with every mirror in it replaced by its `_omitting` twin."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _omitting(tp, done, as_text=as_text)
    inner = optional_inner(tp)
    if inner is not None:
        return _swap(inner, done, as_text) | None
    if typing.get_origin(tp) is list:
        return list[_swap(typing.get_args(tp)[0], done, as_text)]  # type: ignore[misc]
    return tp  # a scalar, an enum, a date-time (`_plain` lets no dict or union through)
