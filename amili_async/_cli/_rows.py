"""Rows in and out of files: JSON Lines and CSV, in the API's wire shape.

CSV columns are wire names; nested values use dotted paths (`organization.name`,
`debtors.0.firstname`): export writes them and submit reads them, so an exported file can be
submitted again. A list of objects gets the dotted columns of its first item
(`debtors.0.addresses.0.city`) plus one column holding the whole list as JSON (`debtors`),
filled instead when the list has more than one item, so no row ever loses an item; lists of
scalars are JSON in one cell. Reading lets the model's field types turn CSV text into booleans
and numbers.

Written CSV text that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR first) gets a
leading `'` (OWASP's advice against formula injection; numbers stay numbers), and reading drops
it again. Reading takes what Excel writes: a UTF-8 byte order mark, `,` `;` or tab separators
(sniffed from the header line), other encodings by name; a header that names a column twice
(or one field two ways) is refused, as is a value under no column name.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import difflib
import itertools
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import attrs

from .. import _codegen, _json, wire
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


def row_cells(cls: type[Any]) -> Callable[[Mapping[str, Any]], list[Any]]:
    """Wire JSON of a `cls` -> its CSV cells in `columns(cls)` order (None: empty), by one
    function compiled per model (walking each dict generically was the CSV export's largest
    cost per row): nested models dotted, a list of one object dotted as item 0, any other
    list as JSON in its own column; keys under no column are left out."""
    found = _ROW_CELLS.get(cls)
    if found is None:
        body: list[str] = []
        _cells_source(cls, "d", body, "    ", itertools.count())
        text = "def cells(d):\n    out = []\n" + "\n".join(body) + "\n    return out\n"
        names: dict[str, Any] = {"_json": _json_text, "_Mapping": Mapping}
        found = _ROW_CELLS[cls] = _codegen.define(text, names, f"CSV cells {cls.__qualname__}")[
            "cells"
        ]
    return found


_ROW_CELLS: dict[type[Any], Callable[[Mapping[str, Any]], list[Any]]] = {}


def _json_text(value: Any) -> str:
    return wire.to_json(value).decode()


def _cells_source(
    cls: type[Any], var: str, body: list[str], indent: str, names: Iterator[int]
) -> None:
    """Append to `body` the lines that append the cells of the model dict `var` to `out`."""
    for field in _fields(cls):
        wire_key = field.metadata.get("wire", field.name)
        kind, inner = node(field.type)
        value = f"v{next(names)}"
        body.append(f"{indent}{value} = {var}.get({wire_key!r})")
        if kind == "model":
            width = len(columns(inner))
            body.append(f"{indent}if isinstance({value}, _Mapping):")
            _cells_source(inner, value, body, indent + "    ", names)
            body.append(f"{indent}else:")
            body.append(f"{indent}    out += [None] * {width}")  # a scalar has no column here
        elif kind == "list" and node(inner)[0] == "model":
            item_cls = node(inner)[1]
            width = len(columns(item_cls))
            first = f"{value}[0]"
            body.append(
                f"{indent}if type({value}) is list and len({value}) == 1 "
                f"and isinstance({first}, _Mapping):"
            )
            body.append(f"{indent}    out.append(None)")
            item = f"v{next(names)}"
            body.append(f"{indent}    {item} = {first}")
            _cells_source(item_cls, item, body, indent + "    ", names)
            body.append(f"{indent}else:")
            body.append(
                f"{indent}    out.append(_json({value}) if type({value}) is list else {value})"
            )
            body.append(f"{indent}    out += [None] * {width}")
        else:
            body.append(f"{indent}out.append(_json({value}) if type({value}) is list else {value})")


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


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""
TEXT_MARK = "'"
"""Prefixed to such a text cell: spreadsheets show the text and evaluate nothing (OWASP's
advice). Also prefixed to text that begins with it, so reading strips exactly one."""


_MARKED = frozenset((*FORMULA_TRIGGERS, TEXT_MARK))
"""First characters of the text cells that get TEXT_MARK."""


def neutralise(value: Any) -> Any:
    """A CSV cell that no spreadsheet evaluates: text beginning with a formula trigger (or
    with TEXT_MARK) gets TEXT_MARK in front. Numbers are written as they are: `-100.50` is a
    number to a spreadsheet, never a formula, and `submit` reads it back as it was."""
    if isinstance(value, str) and value[:1] in _MARKED:
        return TEXT_MARK + value
    return value


def unquote_cell(text: str) -> str:
    """A CSV cell as `neutralise` found it: one leading TEXT_MARK before a trigger (or before
    another TEXT_MARK) dropped, as a spreadsheet does when it shows the cell."""
    if text[:1] == TEXT_MARK and text[1:2] in (*FORMULA_TRIGGERS, TEXT_MARK):
        return text[1:]
    return text


class RowWriter:
    """Writes models (or their wire JSON) as JSON Lines or CSV rows to an open text file.

    CSV text cells are neutralised against formula injection (`neutralise`) unless `raw`:
    an export is opened in spreadsheets, and a debtor's name or a description is not ours.
    """

    def __init__(
        self, stream: IO[str], fmt: str, cls: type[Any], *, header: bool, raw: bool = False
    ) -> None:
        self._stream = stream
        self._raw = raw
        self._csv: Any = None
        self._cells = row_cells(cls)
        if fmt == "csv":
            self._csv = csv.writer(stream)
            if header:
                self._csv.writerow(columns(cls))

    def write(self, model: Any) -> None:
        if self._csv is None:
            self._stream.write(wire.to_json(model).decode())
            self._stream.write("\n")
            return
        self.write_wire(wire.to_wire(model))

    def write_wire(self, data: Mapping[str, Any]) -> None:
        """One CSV row from wire JSON (`wire.to_wire` of a model, or a staged export line read
        with exact decimals): the export's join writes the staged rows without building
        models again. Cells under no column are left out; a missing one is empty."""
        cells = self._cells(data)
        if not self._raw:  # `neutralise`, inline: a call per cell is half of this row's cost
            marked = _MARKED
            cells = [TEXT_MARK + c if isinstance(c, str) and c[:1] in marked else c for c in cells]
        self._csv.writerow(cells)


# -- reading ----------------------------------------------------------------------------------

DEFAULT_ENCODING = "utf-8"
"""What files are read as unless `--encoding` says otherwise; a UTF-8 byte order mark (Excel's
"CSV UTF-8") is accepted and dropped."""

DELIMITERS = (",", ";", "\t")
"""The separators sniffed from a CSV header line: comma, semicolon (Excel's default where the
decimal separator is a comma, as in Norway) and tab; `--delimiter` names any other."""


@attrs.frozen
class Record:
    """One data row of a file: `data` (wire-shaped) or the `problem` that keeps it from being
    read. `number` counts data rows from 1 (the report's `row`); 0 is the header."""

    number: int
    data: dict[str, Any] | None = None
    problem: str | None = None


def read_records(
    path: Path, *, encoding: str = DEFAULT_ENCODING, delimiter: str | None = None
) -> Iterator[Record]:
    """Every row of a JSON Lines or CSV file, a row that cannot be read included (with why),
    so a check can list every problem at once; CSV header problems come first (number 0)."""
    fmt = file_format(path)
    with _text(path, encoding) as stream:
        if fmt == "jsonl":
            yield from _jsonl_records(path, stream)
        else:
            yield from _csv_records(path, stream, delimiter)


def read_rows(
    path: Path, *, encoding: str = DEFAULT_ENCODING, delimiter: str | None = None
) -> Iterator[dict[str, Any]]:
    """Wire-shaped dicts from a JSON Lines or CSV file, one per non-empty line/row; the first
    problem raises ValueError (`read_records` lists them all)."""
    for record in read_records(path, encoding=encoding, delimiter=delimiter):
        if record.problem is not None:
            raise ValueError(record.problem)
        assert record.data is not None
        yield record.data


def csv_header(
    path: Path, *, encoding: str = DEFAULT_ENCODING, delimiter: str | None = None
) -> list[str]:
    """The column names of a CSV file ([] for JSON Lines), unnamed columns left out."""
    if file_format(path) != "csv":
        return []
    with _text(path, encoding) as stream:
        first = stream.readline()
        header = next(csv.reader([first], delimiter=delimiter or sniff_delimiter(first)), [])
        return [name for name in header if name]


def sniff_delimiter(header_line: str) -> str:
    """The separator of a CSV file from its header line: the most frequent of DELIMITERS
    (a comma when none occurs: a one-column file)."""
    counts = {candidate: header_line.count(candidate) for candidate in DELIMITERS}
    best = max(DELIMITERS, key=counts.__getitem__)
    return best if counts[best] else ","


def _jsonl_records(path: Path, stream: IO[str]) -> Iterator[Record]:
    number = 0
    for line_number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        number += 1
        try:
            data = _json.loads(line)
        except _json.DecodeError:
            data = None
        if isinstance(data, dict):
            yield Record(number, data)
        else:
            yield Record(
                number, problem=f"{path.name} row {number} (line {line_number}): not a JSON object"
            )


def _csv_records(path: Path, stream: IO[str], delimiter: str | None) -> Iterator[Record]:
    first = stream.readline()
    reader = csv.reader(
        itertools.chain([first], stream), delimiter=delimiter or sniff_delimiter(first)
    )
    header = next(reader, [])
    for problem in header_problems(header):
        yield Record(0, problem=f"{path.name}: {problem}")
    number = 0
    for cells in reader:
        if not any(cells):
            continue  # a blank line (Excel writes ";;;" for an empty row): not a row
        number += 1
        yield _csv_record(path.name, number, header, cells)


def _csv_record(name: str, number: int, header: list[str], cells: list[str]) -> Record:
    row: dict[str, str] = {}
    for position, value in enumerate(cells):
        if not value:
            continue
        column = header[position] if position < len(header) else ""
        if not column:  # a value the header gives no name: it would be lost
            return Record(
                number,
                problem=f"{name} row {number}: a value in column {position + 1}, which the "
                "header does not name",
            )
        # `unquote_cell`, called only where it can change the text (a cell can begin with
        # TEXT_MARK): a call per cell was a fifth of reading a row.
        row[column] = unquote_cell(value) if value[0] == TEXT_MARK else value
    try:
        return Record(number, unflatten(row))
    except ValueError as error:
        return Record(number, problem=f"{name} row {number}: {error}")


def header_problems(header: list[str]) -> list[str]:
    """Why a CSV header cannot be read unambiguously: a column named twice, or two names for
    the same field (`amount` and `Amount`, the wire name `invoiceDate` and the attribute
    name `invoice_date`). Either way one value would silently win over the other."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for column in dict.fromkeys(header):
        if not column:
            continue
        if (times := header.count(column)) > 1:
            problems.append(f"column {column!r} appears {times} times")
        key = ".".join(part.replace("_", "").lower() for part in column.split("."))
        other = seen.setdefault(key, column)
        if other != column:
            problems.append(f"columns {other!r} and {column!r} name the same field")
    return problems


@contextlib.contextmanager
def _text(path: Path, encoding: str) -> Iterator[IO[str]]:
    """`path` open as text in `encoding` (UTF-8: with or without a byte order mark); bytes
    that do not decode end the read with one line naming the file, the offset and the fix."""
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        with path.open(newline="", encoding=codec) as stream:
            yield stream
    except UnicodeDecodeError:
        raise ValueError(_undecodable(path, codec)) from None


_DECODE_CHUNK = 1 << 16
"""Bytes decoded at a time while looking for the first undecodable byte (memory stays flat)."""


def _undecodable(path: Path, codec: str) -> str:
    """Where `path` stops being `codec` text, and what to do about it."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset = 0
    where: int | None = None
    with path.open("rb") as stream:
        while where is None and (chunk := stream.read(_DECODE_CHUNK)):
            pending = decoder.getstate()[0]  # a character begun in the previous chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                where = offset - len(pending) + error.start
                byte = (pending + chunk)[error.start]
            offset += len(chunk)
    if where is None:  # the file ends inside a character
        pending = decoder.getstate()[0]
        where, byte = offset - len(pending), pending[0]
    found = f"byte offset {where:,} (0x{byte:02x})"
    if codecs.lookup(codec).name.startswith("utf-8"):
        return (
            f"{path.name}: not UTF-8 text at {found}: pass --encoding cp1252 (Excel on "
            "Windows, also for Latin-1 files) or the file's encoding, or save it as CSV UTF-8"
        )
    return f"{path.name}: not {codec} text at {found}: pass --encoding with the file's encoding"


def unflatten(row: Mapping[str, str]) -> dict[str, Any]:
    """`{"debtors.0.name": "Kari"}` -> `{"debtors": [{"name": "Kari"}]}`.

    Rows of one file mostly fill the same columns: the nesting of each set of filled columns
    is worked out once (`_unflatten_slowly`) and compiled into one expression of literals.
    """
    columns = tuple(row)
    build = _BUILDERS.get(columns)
    if build is None:
        build = _builder(columns)  # raises what _unflatten_slowly raises for such a row
    result: dict[str, Any] = build(row)
    return result


_BUILDERS: dict[tuple[str, ...], Callable[[Mapping[str, str]], Any]] = {}
"""Compiled `unflatten` per set of filled columns (in order)."""
_BUILDERS_SIZE = 1024  # sets of columns remembered at most; emptied when full


def _builder(columns: tuple[str, ...]) -> Callable[[Mapping[str, str]], Any]:
    shape = _unflatten_slowly({column: column for column in columns})
    namespace: dict[str, Any] = {}

    def expr(value: Any) -> str:
        if type(value) is dict:
            return "{" + ", ".join(f"{k!r}: {expr(v)}" for k, v in value.items()) + "}"
        if type(value) is list:
            return "[" + ", ".join(expr(v) for v in value) + "]"
        return "None" if value is None else f"r[{value!r}]"

    code = compile(f"lambda r: {expr(shape)}", "<amili_async generated unflatten>", "eval")
    build: Callable[[Mapping[str, str]], Any] = eval(code, namespace)  # literals, by repr()
    if len(_BUILDERS) >= _BUILDERS_SIZE:
        _BUILDERS.clear()
    _BUILDERS[columns] = build
    return build


def _unflatten_slowly(row: Mapping[str, str]) -> dict[str, Any]:
    """`unflatten`, column by column: the nesting, and the errors of a row that has none."""
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
    if not isinstance(data, dict):
        return data
    plan = _PLANS.get(cls)  # a model's plan: found once (`attrs.has` asked once, not per row)
    if plan is None:
        if not attrs.has(cls):
            return data
        plan = _plan(cls)
    if not plan:
        return data  # only text fields: nothing to turn
    out = dict(data)
    for key, turn in plan:
        value = out.get(key)
        if value is not None:
            out[key] = turn(value)
    return out


_Turn = Callable[[Any], Any]
_PLANS: dict[type[Any], list[tuple[str, _Turn]]] = {}
"""Per model, found once from its annotations (every row asks): (wire name, how to turn
the value) of each field whose CSV text is turned into something else."""


def _plan(cls: type[Any]) -> list[tuple[str, _Turn]]:
    plan = _PLANS[cls] = []  # a recursive model finds its (partial) plan: no endless loop
    for field in _fields(cls):
        turn = _turn(field.type)
        if turn is not None:
            plan.append((field.metadata.get("wire", field.name), turn))
    return plan


def _turn(tp: Any) -> _Turn | None:
    """How CSV text becomes the JSON type `tp` wants (None: it stays as it is); text that
    does not convert is left for the model to refuse, with the field's path."""
    kind, tp = node(tp)
    if kind == "list":
        item = _turn(tp)

        def turn_list(value: Any) -> Any:
            if isinstance(value, str):
                try:
                    value = _json.loads(value)
                except _json.DecodeError:
                    return value
            if not isinstance(value, list) or item is None:
                return value
            return [v if v is None else item(v) for v in value]

        return turn_list
    if kind == "model":
        return lambda value: coerce(value, tp)
    scalar = _SCALARS.get(tp)
    if scalar is None:
        return None
    return lambda value: scalar(value) if isinstance(value, str) else value


def _number(kind: type[Any]) -> _Turn:
    def turn(value: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            return value

    return turn


# CSV spellings of a boolean.
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

_SCALARS: dict[Any, _Turn] = {
    bool: lambda value: _BOOLEANS.get(value.strip().lower(), value),
    int: _number(int),
    float: _number(float),
    # The converter reads numeric text exactly, no float on the way: only the blanks go.
    Decimal: str.strip,
    dt.datetime: str.strip,
    dt.date: str.strip,
}
