"""Client-side rate control and the retry budget, against a rate-limited or failing sandbox.

- goodput: 1,000 concurrent tasks x 5 GetInvoiceById against the sandbox limited to 200
  requests/s per client, `rate_limit=None` and `"adaptive"` side by side (each run a fresh
  client process). Goodput = successful answers per second; the 429 share is counted by the
  sandbox among every attempt it got. Goals for adaptive: goodput >= 0.9x the limit, 429s <= 5%.
- budget: a sandbox failing 50% of calls with 503 (Retry-After 0); 2,000 calls at concurrency
  32 with and without the retry budget: attempts per call, counted by the sandbox. Goal with
  the budget: <= 1.5.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, child_main, run_child, sandbox, value

LIMIT = 200.0
TASKS, PER_TASK = 1000, 5
BUDGET_CALLS, BUDGET_CONCURRENCY = 2000, 32


async def _calls(params: dict[str, Any]) -> dict[str, Any]:
    from amili_async import AmiliClient, AmiliError

    ids: list[str] = params["ids"]
    options: dict[str, Any] = params["options"]
    ok = failed = 0
    async with AmiliClient(token=params["token"], base_url=params["base_url"], **options) as c:
        gate = asyncio.Semaphore(params["concurrency"])

        async def task(k: int) -> None:
            nonlocal ok, failed
            async with gate:
                for j in range(params["per_task"]):
                    try:
                        await c.invoices.get(
                            params["org"], ids[(k * params["per_task"] + j) % len(ids)]
                        )
                        ok += 1
                    except AmiliError:
                        failed += 1

        start = time.perf_counter()
        await asyncio.gather(*(task(k) for k in range(params["tasks"])))
        seconds = time.perf_counter() - start
    return {"ok": ok, "failed": failed, "seconds": seconds}


def measure(params: dict[str, Any]) -> dict[str, Any]:
    ids = json.loads(Path(params["ids"]).read_text(encoding="utf-8"))
    return asyncio.run(_calls({**params, "ids": ids}))


def _run(sb: Any, ids_file: Path, **params: Any) -> tuple[dict[str, Any], dict[str, int]]:
    before = sb.stats()
    out = run_child(
        "ratelimit.py",
        base_url=sb.base_url,
        token=sb.token(),
        org=sb.org,
        ids=str(ids_file),
        **params,
    )
    after = sb.stats()
    return out, {k: after[k] - before[k] for k in ("api", "refused")}


def rows(quick: bool) -> list[Row]:
    runs = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.json"
        with sandbox(2000, rate_limit=LIMIT) as limited:
            # Same seed, same invoices: the failing sandbox below serves these ids too.
            ids = limited.invoice_ids(limited.token(), 2000)
            ids_file.write_text(json.dumps(ids), encoding="utf-8")
            result = _limit_rows(limited, ids_file, quick, runs)
        with sandbox(2000, faults="503=0.5,retry_after=0,seed=3") as failing:
            result += _budget_rows(failing, ids_file, quick, runs)
    return result


def _limit_rows(sb: Any, ids_file: Path, quick: bool, runs: int) -> list[Row]:
    tasks = 200 if quick else TASKS
    result: list[Row] = []
    for mode in (None, "adaptive"):
        goodput: list[float] = []
        share: list[float] = []
        for _ in range(runs):
            out, seen = _run(
                sb,
                ids_file,
                options={"rate_limit": mode, "max_retries": 3},
                tasks=tasks,
                per_task=PER_TASK,
                concurrency=tasks,
            )
            goodput.append(out["ok"] / out["seconds"] / LIMIT)
            share.append(seen["refused"] / max(1, seen["api"]))
        name = f"rate_limit={mode!r}, {tasks:,} tasks x {PER_TASK} calls at {LIMIT:g} req/s"
        op = ">=" if mode == "adaptive" else None
        result.append(value(f"{name}: goodput / limit", op, 0.9, goodput, "x"))
        op = "<=" if mode == "adaptive" else None
        result.append(value(f"{name}: 429s among attempts", op, 0.05, share, ""))
    return result


def _budget_rows(sb: Any, ids_file: Path, quick: bool, runs: int) -> list[Row]:
    calls = 400 if quick else BUDGET_CALLS
    result: list[Row] = []
    for budget in (False, True):
        attempts: list[float] = []
        for _ in range(runs):
            _, seen = _run(
                sb,
                ids_file,
                options={"retry_budget": budget},
                tasks=calls,
                per_task=1,
                concurrency=BUDGET_CONCURRENCY,
            )
            attempts.append(seen["api"] / calls)
        name = f"503 on 50% of attempts, {calls:,} calls: attempts per call"
        result.append(
            value(
                f"{name}, retry budget {'on' if budget else 'off'}",
                "<=" if budget else None,
                1.5,
                attempts,
                "",
                worst=max if budget else None,
            )
        )
    return result


if __name__ == "__main__":
    child_main(measure)
