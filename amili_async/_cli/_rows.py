"""Rows in and out of files: JSON Lines and CSV, in the API's wire shape.

CSV columns are wire names; nested values use dotted paths (`organization.name`,
`debtors.0.firstname`), lists of scalars and anything deeper stay JSON in one cell. Reading goes
the other way and lets the model's field types turn CSV text into booleans and numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import typing
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from .. import _serde
from .._fields import model_fields as _fields
from .._fields import unwrap_optional as _unwrap_optional


def file_format(path: Path) -> str:
    """ "jsonl" or "csv" from the file name; anything else is a usage error."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"{path.name}: use a .jsonl or .csv file")


# -- writing ----------------------------------------------------------------------------------


def columns(cls: type[Any], prefix: str = "") -> list[str]:
    """CSV header for a model: wire names, nested models flattened with dots."""
    names: list[str] = []
    for field in _fields(cls):
        wire = prefix + field.metadata.get("wire", field.name)
        inner = _unwrap_optional(field.type)
        if isinstance(inner, type) and attrs.has(inner):
            names.extend(columns(inner, wire + "."))
        else:
            names.append(wire)
    return names


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Wire JSON -> one CSV row; nested objects dotted, lists as JSON text."""
    row: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            row.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            row[prefix + key] = orjson.dumps(value, default=_serde._json_default).decode()
        else:
            row[prefix + key] = value
    return row


class RowWriter:
    """Writes models as JSON Lines or CSV rows to an open text file."""

    def __init__(self, stream: IO[str], fmt: str, cls: type[Any], *, header: bool) -> None:
        self._stream = stream
        self._fmt = fmt
        self._csv: csv.DictWriter[str] | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=columns(cls), extrasaction="ignore")
            if header:
                self._csv.writeheader()

    def write(self, model: Any) -> None:
        if self._csv is None:
            self._stream.write(_serde.dumps(model).decode())
            self._stream.write("\n")
        else:
            self._csv.writerow(flatten(_serde.unstructure(model)))


# -- reading ----------------------------------------------------------------------------------


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Wire-shaped dicts from a JSON Lines or CSV file, one per non-empty line/row."""
    fmt = file_format(path)
    with path.open(newline="" if fmt == "csv" else None, encoding="utf-8") as stream:
        if fmt == "jsonl":
            for number, line in enumerate(stream, 1):
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise ValueError(f"{path.name}:{number}: not a JSON object") from None
            return
        for row in csv.DictReader(stream):
            yield unflatten({k: v for k, v in row.items() if k and v not in (None, "")})


def unflatten(row: Mapping[str, str]) -> dict[str, Any]:
    """`{"debtors.0.name": "Kari"}` -> `{"debtors": [{"name": "Kari"}]}`."""
    result: dict[str, Any] = {}
    for key, value in row.items():
        parts = key.split(".")
        node: Any = result
        for part, following in itertools.pairwise(parts):
            container: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                node[index] = node[index] if node[index] is not None else container
                node = node[index]
            else:
                node = node.setdefault(part, container)
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return result


def coerce(data: Any, cls: type[Any]) -> Any:
    """Turn CSV text into the JSON types a model's fields expect (booleans, numbers)."""
    if not isinstance(data, dict) or not attrs.has(cls):
        return data
    fields = {f.metadata.get("wire", f.name): f for f in _fields(cls)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        out[key] = value if field is None else _coerce_value(value, _unwrap_optional(field.type))
    return out


def _coerce_value(value: Any, tp: Any) -> Any:
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = orjson.loads(value)
        return [_coerce_value(v, item) for v in value] if isinstance(value, list) else value
    if isinstance(tp, type) and attrs.has(tp):
        return coerce(value, tp)
    if not isinstance(value, str):
        return value
    if tp is bool:
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if tp is int:
        return int(value)
    if tp is float:
        return float(value)
    if tp is Decimal:
        return value.strip()  # the converter reads numeric text exactly, no float on the way
    if tp in (dt.datetime, dt.date):
        return value.strip()
    return value
