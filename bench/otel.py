"""Tracing cost: client CPU per GetInvoiceById with OpenTelemetry off, idle and on.

Three modes, each in its own fresh process against the sandbox in another, the same calls as
`calls.py` (concurrency 1):

- off: OpenTelemetry never imported (as when the `[otel]` extra is not installed);
- idle: `opentelemetry.trace` and `.metrics` imported, no provider set (the API's proxies);
- on: the SDK's TracerProvider (BatchSpanProcessor, an exporter that drops every batch) and
  MeterProvider (an in-memory reader): every span and measurement really made.

Targets: idle within noise of off (<= 1.05x); "on" reported (added µs per call and the ratio).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import calls
from _common import Row, child_main, ratio, run_child, sandbox, value

MODES = ("off", "idle", "on")
NAME = "GetInvoiceById client CPU/call c=1"


def instrument(mode: str) -> None:
    """Put this process in `mode` (see the module docstring)."""
    if mode == "off":
        return
    from opentelemetry import metrics, trace

    if mode == "idle":
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Dropped(SpanExporter):
        """Exports nothing: the cost measured is the SDK's and ours, not a collector's."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def measure(params: dict[str, Any]) -> dict[str, Any]:
    instrument(params["mode"])
    loaded = any(name.startswith("opentelemetry") for name in sys.modules)
    ids = json.loads(Path(params["ids"]).read_text(encoding="utf-8"))
    result = asyncio.run(calls.calls({**params, "kind": "ours", "ids": ids}))
    return {**result, "loaded": loaded}


def rows(quick: bool) -> list[Row]:
    rounds, repeat, count, warmup = (2, 2, 300, 100) if quick else (3, 3, 1500, 200)
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    needed = warmup + repeat * count
    with tempfile.TemporaryDirectory() as tmp, sandbox(needed) as sb:
        token = sb.token()
        ids = Path(tmp) / "ids.json"
        ids.write_text(json.dumps(sb.invoice_ids(token, needed)), encoding="utf-8")
        params = {"base_url": sb.base_url, "org": sb.org, "token": token, "ids": str(ids)}
        for _ in range(rounds):
            for mode in MODES:
                out = run_child(
                    "otel.py", mode=mode, concurrency=1, calls=count, warmup=warmup,
                    repeat=repeat, **params,
                )  # fmt: skip
                if out["loaded"] != (mode != "off"):
                    raise RuntimeError(f"mode {mode}: opentelemetry loaded = {out['loaded']}")
                cpu[mode].extend(out["cpu"])
    added = [on - off for on, off in zip(sorted(cpu["on"]), sorted(cpu["off"]), strict=True)]
    return [
        ratio(f"{NAME}: tracing idle / off", "<=", 1.05, cpu["idle"], cpu["off"]),
        ratio(f"{NAME}: tracing on / off", None, 0, cpu["on"], cpu["off"]),
        value(f"{NAME}: off", None, 0, cpu["off"], "µs", scale=1e6),
        value(f"{NAME}: on", None, 0, cpu["on"], "µs", scale=1e6),
        value(f"{NAME}: added by tracing on", None, 0, added, "µs", scale=1e6),
    ]


if __name__ == "__main__":
    child_main(measure)
