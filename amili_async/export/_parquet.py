"""Parquet output (pyarrow, extra `amili-async[parquet]`): a schema derived from the models.

Columns are the wire names, as in the JSON Lines export. Money is an exact decimal, never a
float; date-times are UTC timestamps; nested models are structs and lists of models (claims,
debtors) are lists of structs. A value that the type cannot hold exactly is an error, never
rounded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

import attrs

from .. import _serde
from .._durable import sync
from .._fields import model_fields, node, wire_name

try:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the installed extras
    pa = None
    pq = None

__all__ = ["MONEY_PRECISION", "MONEY_SCALE", "arrow_schema", "parquet_rows", "write_parquet"]

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


def write_parquet(lines: Iterable[bytes], cls: type[Any], stream: IO[bytes]) -> int:
    """Write JSON Lines rows (wire JSON of `cls`) as Parquet to an open file, synced; rows.

    Each line is decoded by the SDK's own decoder (exact decimals, UTC date-times), so the file
    holds the same values as the JSON Lines export.
    """
    require_pyarrow()
    schema = arrow_schema(cls)
    to_row = _converter(cls)
    rows = 0
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(stream, schema) as writer:
        for line in lines:
            batch.append(to_row(_serde.decode(line, cls)))
            if len(batch) >= ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                rows += len(batch)
                batch.clear()
        if batch or not rows:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
        writer.close()
        sync(stream)
    return rows


def parquet_rows(path: Path) -> int:
    """Rows in a Parquet file, from its footer."""
    require_pyarrow()
    rows: int = pq.ParquetFile(path).metadata.num_rows
    return rows
