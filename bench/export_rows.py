"""Export per row: client CPU of a JSON Lines, CSV and Parquet export vs the raw floors.

Every kind lists the same sandbox organisation (its own process; every invoice with its own
ids, dates, amounts and debtor) at page size 1000 into a fresh directory, in a fresh client
process, the kinds alternating; the figure is the client process's CPU time
(`time.process_time()`: user + system, so fsync's kernel time counts) over the rows written.

- ours-jsonl: `export.run_unit(format="jsonl")` (stage every page, fsync, checkpoint, publish).
- ours-csv: the CLI's `export invoices --out FILE.csv` (`_cli/_export.export`: the plan, then
  the staged rows joined into one CSV with `RowWriter`, cells neutralised).
- ours-parquet: `export.run_unit(format="parquet")`.
- raw-jsonl (floor): aiohttp + orjson.loads per page, following nextPageToken, each item
  written as `orjson.dumps(item) + b"\\n"`, one fsync at the end. No models, no checkpoint.
- raw-csv (floor): the same pages, each item flattened by a plain recursive walk into the
  same dotted columns (lists as JSON) and written by `csv.writer`; one fsync at the end.
- raw-parquet (floor): the raw-jsonl lines, then `pyarrow.json.read_json` with the export's
  schema (`arrow_schema`: decimal128(18, 4), UTC timestamps; pyarrow cannot take the floats
  orjson gives as exact decimals, so JSON text is the shortest way to the same table) and a
  `ParquetWriter`: the least any program does to turn the API's pages into that file.

Targets (issue 24.5 and 22.5): JSONL <= 1.5x raw-jsonl, CSV <= 1.3x raw-csv, Parquet <= 1.5x
raw-parquet, and Parquet <= 1.3x ours-jsonl. The encode step alone (staged JSON Lines ->
Parquet, no network) is measured too, the model path of before beside the Arrow path, in CPU
time and, with valgrind installed, in callgrind instructions (load-independent).
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, Row, child_main, ratio, run_child, sandbox, value

PAGE_SIZE = 1000
KINDS = ("raw-jsonl", "ours-jsonl", "raw-csv", "ours-csv", "raw-parquet", "ours-parquet")
ENCODE_ROWS = 2000
"""Rows of the encode-only measurement (two pages' worth)."""


async def _raw_pages(params: dict[str, Any]) -> Any:
    """The listing's items, page by page: aiohttp + orjson.loads, following nextPageToken."""
    import aiohttp
    import orjson

    url = f"{params['base_url']}/orgs/{params['org']}/invoices"
    headers = {"Authorization": f"Bearer {params['token']}", "Accept": "application/json"}
    page_token = None
    async with aiohttp.ClientSession() as session:
        while True:
            query = {"PageSize": str(PAGE_SIZE)}
            if page_token:
                query["PageToken"] = page_token
            async with session.get(url, params=query, headers=headers) as resp:
                resp.raise_for_status()
                page = orjson.loads(await resp.read())
            yield page["data"]
            page_token = (page.get("summary") or {}).get("nextPageToken")
            if not page_token:
                return


async def raw_jsonl(params: dict[str, Any], out: Path) -> int:
    import orjson

    rows = 0
    with out.open("wb") as stream:
        async for items in _raw_pages(params):
            stream.write(b"".join([orjson.dumps(item) + b"\n" for item in items]))
            rows += len(items)
        stream.flush()
        os.fsync(stream.fileno())
    return rows


def _flat(data: dict[str, Any], prefix: str, row: dict[str, Any]) -> None:
    """The plain flatten of the raw CSV floor: dotted keys, the first item of a one-item list
    of objects dotted, any other list as JSON."""
    import orjson

    for key, item in data.items():
        if isinstance(item, dict):
            _flat(item, f"{prefix}{key}.", row)
        elif isinstance(item, list):
            if len(item) == 1 and isinstance(item[0], dict):
                _flat(item[0], f"{prefix}{key}.0.", row)
            else:
                row[prefix + key] = orjson.dumps(item).decode()
        else:
            row[prefix + key] = item


async def raw_csv(params: dict[str, Any], out: Path) -> int:
    from amili_async import models
    from amili_async._cli._rows import columns

    names = columns(models.Invoice)
    rows = 0
    with out.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(names)
        async for items in _raw_pages(params):
            for item in items:
                row: dict[str, Any] = {}
                _flat(item, "", row)
                writer.writerow([row.get(name) for name in names])
            rows += len(items)
        stream.flush()
        os.fsync(stream.fileno())
    return rows


def _as_read(pa: Any, target: Any) -> Any:
    """The type the JSON reader can read a column as: dates as text (it takes dates only as
    day numbers), cast to date32 afterwards."""
    if pa.types.is_date(target):
        return pa.string()
    if pa.types.is_list(target):
        return pa.list_(_as_read(pa, target.value_type))
    if pa.types.is_struct(target):
        return pa.struct([pa.field(f.name, _as_read(pa, f.type)) for f in target])
    return target


async def raw_parquet(params: dict[str, Any], out: Path) -> int:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.json as pj  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    from amili_async import models
    from amili_async.export._parquet import arrow_schema

    staged = out.with_suffix(".jsonl")
    rows = await raw_jsonl(params, staged)
    schema = arrow_schema(models.Invoice)
    reading = pa.schema([pa.field(f.name, _as_read(pa, f.type)) for f in schema])
    options = pj.ParseOptions(explicit_schema=reading, unexpected_field_behavior="ignore")
    table = pj.read_json(staged, parse_options=options).cast(schema)
    with out.open("wb") as stream:
        pq.write_table(table, stream, row_group_size=10_000)
        stream.flush()
        os.fsync(stream.fileno())
    return rows


async def ours(params: dict[str, Any], out: Path, fmt: str) -> int:
    from amili_async import AmiliClient
    from amili_async.export import plan_export, run_unit

    (unit,) = plan_export([params["org"]])
    async with AmiliClient(token=params["token"], base_url=params["base_url"]) as client:
        result = await run_unit(unit, out_dir=out, client=client, format=fmt, page_size=PAGE_SIZE)
    return result.rows


async def ours_csv(params: dict[str, Any], out: Path) -> int:
    from amili_async import AmiliClient
    from amili_async._cli._export import ExportOptions, export

    opts = ExportOptions(
        what="invoices",
        organization_id=params["org"],
        out=out / "invoices.csv",
        page_size=PAGE_SIZE,
        progress=False,
    )
    async with AmiliClient(token=params["token"], base_url=params["base_url"]) as client:
        summary = await export(client, opts)
    return summary.count


def measure(params: dict[str, Any]) -> dict[str, Any]:
    kind = params["kind"]
    if kind.startswith("encode-"):
        return encode(params)
    with tempfile.TemporaryDirectory(prefix="amili-rows-") as tmp:
        out = Path(tmp)
        run: Any = {
            "raw-jsonl": lambda: raw_jsonl(params, out / "x.jsonl"),
            "raw-csv": lambda: raw_csv(params, out / "x.csv"),
            "raw-parquet": lambda: raw_parquet(params, out / "x.parquet"),
            "ours-jsonl": lambda: ours(params, out, "jsonl"),
            "ours-parquet": lambda: ours(params, out, "parquet"),
            "ours-csv": lambda: ours_csv(params, out),
        }[kind]
        cpu_start = time.process_time()
        rows = asyncio.run(run())
        cpu = time.process_time() - cpu_start
    return {"rows": rows, "cpu": cpu}


def _staged(params: dict[str, Any]) -> list[bytes]:
    return Path(params["staged"]).read_bytes().splitlines(keepends=True)[:ENCODE_ROWS]


def encode_once(lines: list[bytes], path: str, out: Path) -> None:
    """Staged lines -> a Parquet file, by the model path or the Arrow path."""
    from amili_async import models
    from amili_async.export import _parquet

    tables = (_parquet.arrow_tables_from_jsonl if path == "arrow"
              else _parquet.arrow_tables_via_models)(lines, models.Invoice)  # fmt: skip
    with out.open("wb") as stream:
        _parquet.write_tables(tables, _parquet.arrow_schema(models.Invoice), stream)


def encode(params: dict[str, Any]) -> dict[str, Any]:
    """Staged JSON Lines -> Parquet, the model path or the Arrow path; CPU per row."""
    lines = _staged(params)
    path = params["kind"].removeprefix("encode-")
    cpu = []
    with tempfile.TemporaryDirectory(prefix="amili-encode-") as tmp:
        out = Path(tmp) / "x.parquet"
        encode_once(lines, path, out)  # warm-up: imports, schema, compiled functions
        for _ in range(params["repeat"]):
            start = time.process_time()
            encode_once(lines, path, out)
            cpu.append((time.process_time() - start) / len(lines))
    return {"cpu": cpu}


_CALLGRIND = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from export_rows import encode_once
lines = Path(sys.argv[1]).read_bytes().splitlines(keepends=True)[:int(sys.argv[2])]
for _ in range(int(sys.argv[4])):
    encode_once(lines, sys.argv[3], Path(sys.argv[6]))
"""
CALLGRIND_ROWS = 1000
"""Rows encoded under callgrind (about 50x slower than native): one page."""


def instructions(staged: Path, path: str) -> float | None:
    """Callgrind instructions per row of one encode (None without valgrind): the run with two
    encodes minus the run with one, so start-up, imports and warm-up cancel out."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    totals = []
    with tempfile.TemporaryDirectory(prefix="amili-cg-") as tmp:
        for calls in (1, 2):
            out = Path(tmp) / f"callgrind.{calls}"
            cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                   "-c", _CALLGRIND, str(staged), str(CALLGRIND_ROWS), path, str(calls),
                   str(BENCH), str(Path(tmp) / "x.parquet")]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"callgrind failed:\n{proc.stderr[-2000:]}")
            summary = [x for x in out.read_text().splitlines() if x.startswith("summary:")]
            totals.append(int(summary[0].split()[1]))
    return (totals[1] - totals[0]) / CALLGRIND_ROWS


def rows(quick: bool) -> list[Row]:
    size, repeat = (5_000, 2) if quick else (20_000, 3)
    out: dict[str, list[float]] = {}
    encode_cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="amili-rows-") as tmp, sandbox(size) as sb:
        params = {"base_url": sb.base_url, "org": sb.org, "token": sb.token()}
        for _ in range(repeat):
            for kind in KINDS:
                got = run_child("export_rows.py", kind=kind, **params)
                assert got["rows"] == size, f"{kind} wrote {got['rows']} rows of {size}"
                out.setdefault(kind, []).append(got["cpu"] / size)
        staged = Path(tmp) / "staged.jsonl"
        asyncio.run(raw_jsonl(params, staged))
        for path in ("models", "arrow"):
            got = run_child("export_rows.py", kind=f"encode-{path}", staged=str(staged),
                            repeat=repeat + 2)  # fmt: skip
            encode_cpu[path] = got["cpu"]
        counted = {path: instructions(staged, path) for path in ("models", "arrow")}
    result = [
        ratio("export JSONL client CPU/row: ours / raw floor", "<=", 1.5,
              out["ours-jsonl"], out["raw-jsonl"]),
        ratio("export CSV client CPU/row: ours / raw csv.writer floor", "<=", 1.3,
              out["ours-csv"], out["raw-csv"]),
        ratio("export Parquet client CPU/row: ours / raw pyarrow floor", "<=", 1.5,
              out["ours-parquet"], out["raw-parquet"]),
        ratio("export Parquet client CPU/row: ours Parquet / ours JSONL", "<=", 1.3,
              out["ours-parquet"], out["ours-jsonl"]),
    ]  # fmt: skip
    for kind in KINDS:
        result.append(value(f"export {size:,} rows: client CPU/row, {kind}", None, 0,
                            out[kind], "µs", scale=1e6))  # fmt: skip
    result += [
        ratio(f"encode {ENCODE_ROWS:,} staged rows -> Parquet: model path / Arrow path (CPU)",
              None, 0, encode_cpu["models"], encode_cpu["arrow"]),
        *(value(f"encode -> Parquet: CPU/row, {p} path", None, 0, encode_cpu[p], "µs",
                scale=1e6) for p in ("models", "arrow")),
    ]  # fmt: skip
    for path, count in counted.items():
        if count is not None:
            result.append(value(f"encode -> Parquet: callgrind instructions/row, {path} path",
                                None, 0, [count], ""))  # fmt: skip
    return result


if __name__ == "__main__":
    child_main(measure)
