"""Parquet output (pyarrow, extra `amili-async[parquet]`): a schema derived from the models.

Columns are the wire names, as in the JSON Lines export. Money is an exact decimal, never a
float; date-times are UTC timestamps; nested models are structs and lists of models (claims,
debtors) are lists of structs. A value that the type cannot hold exactly is an error, never
rounded.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

import attrs

from .. import _serde
from .._durable import sync
from .._fields import model_fields, node, wire_name
from .._time import as_utc

try:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.json as pj  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the installed extras
    pa = None
    pj = None
    pq = None

__all__ = [
    "EXTRACTED_AT",
    "MONEY_PRECISION",
    "MONEY_SCALE",
    "ParquetValueError",
    "arrow_schema",
    "arrow_tables_from_jsonl",
    "arrow_tables_via_models",
    "parquet_rows",
    "write_parquet",
    "write_tables",
]

MONEY_PRECISION = 18
MONEY_SCALE = 4
"""Money is decimal128(18, 4). Scale 4: the most minor-unit digits of any ISO 4217 currency
(CLF and UYW have 4; NOK has 2), so every amount the API can send is held exactly (pyarrow
refuses, never rounds, a value with more). Precision 18: 14 integer digits (up to 10^14 - 1,
far above any invoice), and the largest precision Parquet can store as a plain INT64, which
every reader (Spark, DuckDB, pandas) handles natively."""
ROWS_PER_GROUP = 10_000
"""Rows per Parquet row group: enough for good compression and fast scans, while a writer
holds at most one group of invoices (~10 MB) in memory at a time."""
_BLOCK_SIZE = 1 << 20
"""Bytes Arrow's JSON reader parses at a time (its default): ~800 invoices, so the blocks of a
row group can be parsed on several threads."""
TIMESTAMP_UNIT = "us"
"""Date-times at microseconds (what a Python datetime carries; Amili sends milliseconds)."""


def require_pyarrow() -> None:
    if pa is None:
        raise ImportError("Parquet output needs pyarrow: pip install 'amili-async[parquet]'")


def _arrow_type(tp: Any) -> Any:
    """The Arrow type of a model field's (non-optional) Python type."""
    kind, tp = node(tp)
    if kind == "list":
        return pa.list_(_arrow_type(tp))
    if kind == "model":
        return pa.struct([_arrow_field(f) for f in model_fields(tp)])
    if tp is Decimal:
        return pa.decimal128(MONEY_PRECISION, MONEY_SCALE)
    if tp is dt.datetime:
        return pa.timestamp(TIMESTAMP_UNIT, tz="UTC")
    if tp is dt.date:
        return pa.date32()
    if tp is bool:
        return pa.bool_()
    if tp is int:
        return pa.int64()
    if tp is float:
        return pa.float64()
    # str and the string enums (OpenEnum keeps unknown values as strings); Any as JSON text.
    return pa.string()


def _arrow_field(field: attrs.Attribute[Any]) -> Any:
    return pa.field(wire_name(field), _arrow_type(field.type))


def arrow_schema(cls: type[Any]) -> Any:
    """The `pyarrow.Schema` of a model: one column per field, named as on the wire."""
    require_pyarrow()
    return pa.schema([_arrow_field(f) for f in model_fields(cls)])


Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _converter(tp: Any) -> Convert:
    """Model value -> the Python value pyarrow takes for the field's Arrow type."""
    kind, tp = node(tp)
    if kind == "list":
        inner = _converter(tp)
        return lambda v: None if v is None else [inner(x) for x in v]
    if kind == "model":
        parts = [(f.name, wire_name(f), _converter(f.type)) for f in model_fields(tp)]
        return lambda v: None if v is None else {w: c(getattr(v, n)) for n, w, c in parts}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return lambda v: None if v is None else str(v.value)
    if tp in (Decimal, dt.datetime, dt.date, bool, int, float, str):
        return _identity
    return lambda v: None if v is None else _serde.dumps(v).decode()


class ParquetValueError(ValueError):
    """A staged value that its Parquet column cannot hold exactly (an amount with more than
    MONEY_SCALE decimals or more than 14 integer digits, a malformed date): written rounded,
    it would be data loss, so the file is not written. The message names no value."""


EXTRACTED_AT = "_extracted_at"
"""The column saying when a row's unit began listing (UTC): of two copies of an invoice, the
later one is the newer (the Delta merge keeps it; a Parquet reader can too)."""


def write_parquet(
    lines: Iterable[bytes],
    cls: type[Any],
    stream: IO[bytes],
    *,
    extracted_at: dt.datetime | None = None,
) -> int:
    """Write JSON Lines rows (wire JSON of `cls`) as Parquet to an open file, synced; rows.
    With ``extracted_at`` every row also carries it in the `_extracted_at` column."""
    schema = arrow_schema(cls)
    tables = arrow_tables_from_jsonl(lines, cls)
    if extracted_at is None:
        return write_tables(tables, schema, stream)
    column = pa.field(EXTRACTED_AT, pa.timestamp(TIMESTAMP_UNIT, tz="UTC"))
    stamped = (
        table.append_column(column, _repeated(extracted_at, table.num_rows, column.type))
        for table in tables
    )
    return write_tables(stamped, schema.append(column), stream)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TICK = {"us": dt.timedelta(microseconds=1)}[TIMESTAMP_UNIT]
"""One TIMESTAMP_UNIT, the step of the `_extracted_at` column's int64 values."""


def _repeated(stamp: dt.datetime, rows: int, arrow_type: Any) -> Any:
    """`rows` copies of `stamp` (naive: UTC) as an Arrow array, made from its bytes: pyarrow
    turning any Python value into Arrow (`pa.scalar`, `pa.array`) imports pandas when it is
    installed, ~0.3 s of CPU an export's other steps never need."""
    ticks = (as_utc(stamp) - _EPOCH) // _TICK
    data = pa.py_buffer(struct.pack("=q", ticks) * rows)  # int64 in the machine's order
    return pa.Array.from_buffers(arrow_type, rows, [None, data])


def write_tables(tables: Iterable[Any], schema: Any, stream: IO[bytes]) -> int:
    """Write Arrow tables of `schema` to an open file as Parquet, one row group per table
    (ROWS_PER_GROUP rows at most), synced; rows written. No rows: one empty row group."""
    rows = 0
    with pq.ParquetWriter(stream, schema) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=ROWS_PER_GROUP)
            rows += table.num_rows
        if not rows:
            writer.write_table(schema.empty_table())
        writer.close()
        sync(stream)
    return rows


def _batches(lines: Iterable[bytes]) -> Iterator[list[bytes]]:
    """`lines` in lists of at most ROWS_PER_GROUP."""
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= ROWS_PER_GROUP:
            yield batch
            batch = []
    if batch:
        yield batch


def arrow_tables_from_jsonl(lines: Iterable[bytes], cls: type[Any]) -> Iterator[Any]:
    """Staged JSON Lines (wire JSON of `cls`, one object a line) -> `pyarrow.Table`s of
    `arrow_schema(cls)`, ROWS_PER_GROUP rows at most each: the fast path of every Parquet
    (or other Arrow) output.

    The lines are read by Arrow's JSON reader in C, not decoded into models again: money is
    read from the JSON number's text (exact; more than MONEY_SCALE decimals or more than 14
    integer digits is a `ParquetValueError`, never rounded), date-times with any offset become
    UTC, enum values are kept as text (unknown ones too), fields not in the schema are
    ignored and missing ones are null. A model with a field the reader cannot take (a value
    of any JSON shape) goes through the models instead (`arrow_tables_via_models`).
    """
    require_pyarrow()
    if not _json_readable(cls):
        yield from arrow_tables_via_models(lines, cls)
        return
    schema = arrow_schema(cls)
    reading = pa.schema([pa.field(f.name, _reading_type(f.type)) for f in schema])
    parse = pj.ParseOptions(explicit_schema=reading, unexpected_field_behavior="ignore")
    first = 0
    for batch in _batches(lines):
        data = b"".join([line if line.endswith(b"\n") else line + b"\n" for line in batch])
        # Blocks of at least one whole line (a line may not straddle two blocks).
        read = pj.ReadOptions(block_size=max(_BLOCK_SIZE, max(map(len, batch)) + 1))
        try:
            table = pj.read_json(pa.BufferReader(data), read_options=read, parse_options=parse)
            table = table.cast(schema)
        except pa.ArrowInvalid:
            raise ParquetValueError(
                f"staged rows {first + 1:,} to {first + len(batch):,}: a value that its Parquet "
                f"column cannot hold exactly (an amount with more than {MONEY_SCALE} decimals "
                f"or more than {MONEY_PRECISION - MONEY_SCALE} integer digits, or a malformed "
                "date or date-time); refused as data loss"
            ) from None
        yield table
        first += len(batch)


def _reading_type(target: Any) -> Any:
    """The type Arrow's JSON reader reads a column as, before the cast to `target`: money at
    the widest precision (the cast then refuses what does not fit MONEY_PRECISION instead of
    keeping it), dates as text (the reader takes dates only as day numbers)."""
    if pa.types.is_decimal(target):
        return pa.decimal128(38, target.scale)
    if pa.types.is_date(target):
        return pa.string()
    if pa.types.is_list(target):
        return pa.list_(_reading_type(target.value_type))
    if pa.types.is_struct(target):
        return pa.struct([pa.field(f.name, _reading_type(f.type)) for f in target])
    return target


_READABLE = (Decimal, dt.datetime, dt.date, bool, int, float, str)
"""Scalar types Arrow's JSON reader reads exactly as their column type (with an enum's text)."""


def _json_readable(cls: type[Any]) -> bool:
    """True when Arrow's JSON reader can read every field of `cls` (nested included)."""
    for field in model_fields(cls):
        kind, tp = node(field.type)
        while kind == "list":
            kind, tp = node(tp)
        if kind == "model":
            if not _json_readable(tp):
                return False
        elif tp not in _READABLE and not (isinstance(tp, type) and issubclass(tp, Enum)):
            return False
    return True


def arrow_tables_via_models(lines: Iterable[bytes], cls: type[Any]) -> Iterator[Any]:
    """The model path: each line decoded by the SDK's decoder, then `Table.from_pylist`.
    Slower (every row decoded a second time); the reference the fast path is tested against,
    and the path of a model with a field the JSON reader cannot read."""
    require_pyarrow()
    schema = arrow_schema(cls)
    to_row = _converter(cls)
    for batch in _batches(lines):
        rows = [to_row(_serde.decode(line, cls)) for line in batch]
        yield pa.Table.from_pylist(rows, schema=schema)


def parquet_rows(path: Path) -> int:
    """Rows in a Parquet file, from its footer."""
    require_pyarrow()
    rows: int = pq.ParquetFile(path).metadata.num_rows
    return rows
