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
models (`_encode`), with their errors: `tests/unit/test_export_rows.py` holds both ways to
the same bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import typing
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, overload

import attrs
import msgspec

from .._fields import model_fields, node, optional_inner, wire_name
from .._pagination import AsyncPager, RawPage, TokenPager
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
    is read and built changes (`_StagingSource`).
    """
    if not isinstance(pager, TokenPager):
        raise TypeError("a unit lists one window: a TokenPager")
    # The pager's own source and settings (no public accessor: see the module docstring).
    inner = pager._source
    staging = _StagingSource(inner, model, _shape(getattr(inner, "envelope", None), model))
    return TokenPager(staging, page_token=pager._start, prefetch=pager._prefetch)


@attrs.frozen
class _Shape:
    """How the pages of one envelope are read and written in C."""

    envelope: Any
    """The envelope's mirror, fields at their default left out when written."""
    decoder: msgspec.json.Decoder[Any]
    encode: Callable[[Sequence[Any]], bytes]
    """Items (mirrors) -> their JSON Lines."""


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
                document = shape.decoder.decode(answer.content)
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
        if shape is not None and type(page.document) is shape.envelope:
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
    if not _plain(model, stamps, others) or stamps & others:
        return None  # a key both a date-time and something else: the fix could hit a text
    mirror = mirror_of(envelope)
    if mirror is None:
        return None
    omitting = _omitting(mirror, {})
    encoder = msgspec.json.Encoder(decimal_format="number")
    fix = _milliseconds(stamps)

    def encode(items: Sequence[Any]) -> bytes:
        lines = encoder.encode_lines(items)
        return lines if fix is None else fix.sub(b"", lines)

    # Numbers under `Any` exact, as the SDK's own read (none here: `_plain` has no `Any`).
    decoder = msgspec.json.Decoder(omitting, float_hook=Decimal)
    return _Shape(omitting, decoder, encode)


def _plain(cls: type[Any], stamps: set[str], others: set[str]) -> bool:
    """True when every field of `cls` (nested too) is written by msgspec as the models are;
    collects the wire names of date-time fields (`stamps`) and of all others."""
    for field in model_fields(cls):
        kind, tp = node(field.type)
        wire = wire_name(field)
        if kind == "scalar" and tp is dt.datetime:
            stamps.add(wire)  # directly under its key: what the fix is anchored on
            continue
        others.add(wire)
        while kind == "list":
            kind, tp = node(tp)
        if kind == "model":
            if not _plain(tp, stamps, others):
                return False
        elif not (tp in _SCALARS or (isinstance(tp, type) and issubclass(tp, Enum))):
            return False  # `Any`, dicts, unions, date-times in a list: the models' way
    return True


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


def _omitting(mirror: Any, done: dict[Any, Any]) -> Any:
    """`mirror` as a Struct that leaves out fields at their default when written (what the
    models' unstructuring does), its nested mirrors likewise; same fields, names, types."""
    found = done.get(mirror)
    if found is None:
        fields = []
        for info in msgspec.structs.fields(mirror):
            if info.default is msgspec.NODEFAULT:
                spec = msgspec.field(name=info.encode_name)
            else:
                spec = msgspec.field(name=info.encode_name, default=info.default)
            fields.append((info.name, _swap(info.type, done), spec))
        found = done[mirror] = msgspec.defstruct(
            mirror.__name__, fields, kw_only=True, gc=False, omit_defaults=True, module=__name__
        )
    return found


def _swap(tp: Any, done: dict[Any, Any]) -> Any:
    """`tp` with every mirror in it replaced by its `_omitting` twin."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _omitting(tp, done)
    inner = optional_inner(tp)
    if inner is not None:
        return _swap(inner, done) | None
    if typing.get_origin(tp) is list:
        return list[_swap(typing.get_args(tp)[0], done)]  # type: ignore[misc]
    return tp  # a scalar, an enum, a date-time (`_plain` lets no dict or union through)
