"""`make bench`: every benchmark family, one table of rows, bench/RESULTS.md on request.

    .venv/bin/python bench/run.py [--quick] [--only FAMILY ...] [--write-results]

Each row: name | target | min | median | ratio to target | PASS/MISS ("min": the figure from
each side's fastest repetition, "median": from each side's median one; judged on the median,
or on the worst repetition where every one must meet the target). Every client runs in a
fresh process, the sandbox in another one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import calls
import decode
import export_rows
import latency
import otel
import ratelimit
import stream
import tokens
import webhooks
import writes
from _common import BENCH, HEADER, ROOT, Row, machine, table

FAMILIES = {
    "decode": decode,
    "calls": calls,
    "stream": stream,
    "latency": latency,
    "tokens": tokens,
    "ratelimit": ratelimit,
    "export_rows": export_rows,
    "otel": otel,
    "writes": writes,
    "webhooks": webhooks,
}


def write_results(
    rows: list[Row], ran: list[str], command: str, wall: float, load: str, note: str | None
) -> Path:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    met = sum(r.verdict == "PASS" for r in rows)
    missed = sum(r.verdict == "MISS" for r in rows)
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py --write-results` from the run below; `make bench` prints the",
        "same table. Rows are ratios measured side by side in one run, every client in a fresh",
        "process and the sandbox in another one; min = the figure from each side's fastest",
        "repetition, median = from each side's median repetition. A row is judged on its median",
        "(on its worst repetition where every repetition must meet the target). For a missed",
        "target, bench/PROFILES.md (hand-written) gives the profile that stands in the way.",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}`",
        f"- commit: {commit or 'unknown'}",
        *(f"- {key}: {val}" for key, val in machine().items()),
        f"- load average (1, 5, 15 min) at start and end: {load}",
        *([f"- note: {note}"] if note else []),
        f"- wall time: {wall:.0f} s",
        f"- targets: {met} met, {missed} missed",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row.cells()) + " |" for row in rows),
        "",
        "## What each family measures",
    ]
    for name in ran:
        doc = FAMILIES[name].__doc__ or ""
        lines += ["", f"### {name} (`bench/{name}.py`)", "", doc.strip()]
    path = BENCH / "RESULTS.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--only", action="append", choices=list(FAMILIES), help="repeatable")
    parser.add_argument("--write-results", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--note", help="a remark on the run (e.g. other load) for RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    load_start = os.getloadavg()
    rows: list[Row] = []
    ran = [name for name in FAMILIES if not args.only or name in args.only]
    for name in ran:
        module = FAMILIES[name]
        assert module.__doc__ is not None
        print(f"\n=== {name}: {module.__doc__.splitlines()[0]}", flush=True)
        begun = time.perf_counter()
        family = module.rows(args.quick)
        print("\n".join(table(family)))
        print(f"({name}: {time.perf_counter() - begun:.0f} s)", flush=True)
        rows += family
    wall = time.perf_counter() - started
    load = " / ".join(" ".join(f"{x:.2f}" for x in la) for la in (load_start, os.getloadavg()))
    print("\n=== all rows")
    print("\n".join(table(rows)))
    met = sum(r.verdict == "PASS" for r in rows)
    missed = [r.name for r in rows if r.verdict == "MISS"]
    print(f"\ntargets: {met} met, {len(missed)} missed; wall time {wall:.0f} s; load {load}")
    if args.write_results:
        command = " ".join(["bench/run.py", *sys.argv[1:]])
        print(f"wrote {write_results(rows, ran, command, wall, load, args.note)}")


if __name__ == "__main__":
    main()
