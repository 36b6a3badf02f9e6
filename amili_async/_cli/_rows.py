"""Rows in and out of files: JSON Lines and CSV, in the API's wire shape.

CSV columns are wire names; nested values use dotted paths (`organization.name`,
`debtors.0.firstname`): export writes them and submit reads them, so an exported file can be
submitted again. A list of objects gets the dotted columns of its first item
(`debtors.0.addresses.0.city`) plus one column holding the whole list as JSON (`debtors`),
filled instead when the list has more than one item, so no row ever loses an item; lists of
scalars are JSON in one cell. Reading lets the model's field types turn CSV text into booleans
and numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import itertools
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from .. import wire
from .._fields import model_fields as _fields
from .._fields import node


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
    """CSV header for a model: wire names, nested models and first list items dotted."""
    names: list[str] = []
    for field in _fields(cls):
        wire = prefix + field.metadata.get("wire", field.name)
        kind, inner = node(field.type)
        if kind == "model":
            names.extend(columns(inner, wire + "."))
        elif kind == "list" and node(inner)[0] == "model":
            names.append(wire)  # the whole list as JSON, when it has more than one item
            names.extend(columns(inner, wire + ".0."))
        else:
            names.append(wire)
    return names


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Wire JSON -> one CSV row (see the module docstring for the column layout)."""
    row: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            row.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
            row.update(flatten(value[0], f"{prefix}{key}.0."))
        elif isinstance(value, list):
            row[prefix + key] = wire.to_json(value).decode()
        else:
            row[prefix + key] = value
    return row


def unknown_column(column: str, cls: type[Any]) -> str | None:
    """None when `column` names a field of `cls` (dotted, list items by index); else a
    suggestion for what was probably meant (`invoiceNumber` for `invoiceNumbr`), or ""."""
    at: Any = cls
    parts = column.split(".")
    for depth, part in enumerate(parts):
        kind, inner = node(at)
        if kind == "list" and part.isdigit():
            at = inner
            continue
        if kind != "model":
            return ""
        fields = {f.metadata.get("wire", f.name): f for f in _fields(inner)}
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.6)
            return ".".join([*parts[:depth], close[0], *parts[depth + 1 :]]) if close else ""
        at = fields[part].type
    return None


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
            self._stream.write(wire.to_json(model).decode())
            self._stream.write("\n")
        else:
            self._csv.writerow(flatten(wire.to_wire(model)))


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
        for number, row in enumerate(csv.DictReader(stream), 1):
            try:
                yield unflatten({k: v for k, v in row.items() if k and v not in (None, "")})
            except ValueError as error:
                raise ValueError(f"{path.name} row {number}: {error}") from None


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file ([] for JSON Lines)."""
    if file_format(path) != "csv":
        return []
    with path.open(newline="", encoding="utf-8") as stream:
        return [name for name in next(csv.reader(stream), []) if name]


def unflatten(row: Mapping[str, str]) -> dict[str, Any]:
    """`{"debtors.0.name": "Kari"}` -> `{"debtors": [{"name": "Kari"}]}`."""
    result: dict[str, Any] = {}
    for key, value in row.items():
        parts = key.split(".")
        node: Any = result
        for depth, (part, following) in enumerate(itertools.pairwise(parts)):
            if not isinstance(node, list | dict):
                conflict = ".".join(parts[:depth])
                raise ValueError(f"column {key!r} and column {conflict!r} are both filled")
            container: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = _index(part, key)
                while len(node) <= index:
                    node.append(None)
                node[index] = node[index] if node[index] is not None else container
                node = node[index]
            else:
                node = node.setdefault(part, container)
        last = parts[-1]
        if not isinstance(node, list | dict):
            conflict = ".".join(parts[:-1])
            raise ValueError(f"column {key!r} and column {conflict!r} are both filled")
        if isinstance(node, list):
            index = _index(last, key)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return result


# The highest list index a column may name (debtors.999.name): the API takes no longer list.
MAX_LIST_INDEX = 999


def _index(part: str, column: str) -> int:
    if not part.isdigit() or int(part) > MAX_LIST_INDEX:
        raise ValueError(f"column {column!r}: {part!r} is not a list index (0 to {MAX_LIST_INDEX})")
    return int(part)


def coerce(data: Any, cls: type[Any]) -> Any:
    """Turn CSV text into the JSON types a model's fields expect (booleans, numbers)."""
    if not isinstance(data, dict) or not attrs.has(cls):
        return data
    fields = {f.metadata.get("wire", f.name): f for f in _fields(cls)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        out[key] = value if field is None else _coerce_value(value, field.type)
    return out


def _coerce_value(value: Any, tp: Any) -> Any:
    """CSV text -> the JSON type `tp` wants; text that does not convert is left for the model
    to refuse, with the field's path."""
    kind, tp = node(tp)
    if kind == "list":
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
        return [_coerce_value(v, tp) for v in value] if isinstance(value, list) else value
    if kind == "model":
        return coerce(value, tp)
    if not isinstance(value, str):
        return value
    if tp is bool:
        return _BOOLEANS.get(value.strip().lower(), value)
    if tp is int:
        try:
            return int(value)
        except ValueError:
            return value
    if tp is float:
        try:
            return float(value)
        except ValueError:
            return value
    if tp in (Decimal, dt.datetime, dt.date):
        return value.strip()  # the converter reads numeric text exactly, no float on the way
    return value


# CSV spellings of a boolean.
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
