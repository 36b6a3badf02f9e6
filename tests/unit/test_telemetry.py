"""_telemetry.py: the spans and metrics the SDK records, read back with the OpenTelemetry SDK's
in-memory span exporter and metric reader; and that nothing of it costs an import when off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

from amili_async import AmiliClient, _telemetry
from amili_async.errors import APIConnectionError

from ._operations import INVOICE_JSON, NATIONAL_ID, ORG, ORIGIN
from .test_bulk import FakeBatches, FakeSubmit, chunker, lost, pending
from .test_resources import ANY_URL
from .test_webhook_handler import Mount, case_body, mount  # noqa: F401  (fixtures)

BASE = ORIGIN + "/collection/v1"
PING = ORIGIN + "/webapi/api/Ping"
TOKEN_URL = "https://auth.test.invalid/token"
SECRET = "client-secret-value-42"


class Recorded:
    """The spans and metric points recorded during one test."""

    def __init__(self, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.exporter = spans
        self.reader = reader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        ours = parent.context.span_id if parent.context else None
        return [s for s in self.spans() if s.parent is not None and s.parent.span_id == ours]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found += item.data.data_points
        return found


@pytest.fixture
def otel() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    undo = _telemetry.use(tracer_provider, meter_provider)
    yield Recorded(exporter, reader)
    undo()
    meter_provider.shutdown()
    tracer_provider.shutdown()


def page(token: str | None, invoice_id: str) -> dict[str, Any]:
    item = {**INVOICE_JSON, "id": invoice_id}
    return {"data": [item], "summary": {"status": "SUCCESS", "nextPageToken": token}}


async def test_a_call_retried_twice_is_one_operation_span_over_three_attempts(
    otel: Recorded, mocked: aioresponses
) -> None:
    mocked.get(PING, status=503, headers={"Retry-After": "0"})
    mocked.get(PING, status=503, headers={"Retry-After": "0"})
    mocked.get(PING, payload={"message": "pong"})
    async with AmiliClient(token="t", base_url=BASE) as client:
        await client.legacy.ping()
    (operation,) = otel.named("LegacyPing")
    attempts = sorted(otel.children(operation), key=lambda s: s.start_time or 0)
    assert [s.kind for s in attempts] == [SpanKind.CLIENT] * 3
    assert [s.name for s in attempts] == ["GET"] * 3
    assert [(s.attributes or {}).get("http.request.resend_count") for s in attempts] == [
        None,
        1,
        2,
    ]
    assert [(s.attributes or {})["http.response.status_code"] for s in attempts] == [503, 503, 200]
    assert [(s.attributes or {}).get("error.type") for s in attempts] == ["503", "503", None]
    first = attempts[0].attributes or {}
    assert first["server.address"] == "api.test.invalid"
    assert first["http.request.method"] == "GET"
    assert first["url.full"] == PING
    # The waits between attempts: events on the operation span, at the time they were taken.
    assert [e.name for e in operation.events] == ["retry_after", "retry_after"]
    assert "error.type" not in (operation.attributes or {})
    (durations,) = otel.points("http.client.request.duration")[:1]
    assert sum(p.count for p in otel.points("http.client.request.duration")) == 3
    assert list(durations.explicit_bounds) == list(_telemetry.DURATION_BUCKETS)
    retries = {
        p.attributes["amili.retry.reason"]: p.value for p in otel.points("amili.client.retries")
    }
    assert retries == {"503": 2}


async def test_a_failed_call_names_its_error_type(otel: Recorded, mocked: aioresponses) -> None:
    mocked.get(PING, status=404)
    async with AmiliClient(token="t", base_url=BASE, max_retries=0) as client:
        with pytest.raises(Exception, match="404"):
            await client.legacy.ping()
    (operation,) = otel.named("LegacyPing")
    assert (operation.attributes or {})["error.type"] == "NotFoundError"


async def test_a_listing_of_three_pages_is_one_span_with_a_child_per_page(
    otel: Recorded, mocked: aioresponses
) -> None:
    mocked.get(ANY_URL, payload=page("t2", "i1"))
    mocked.get(ANY_URL, payload=page("t3", "i2"))
    mocked.get(ANY_URL, payload=page(None, "i3"))
    async with AmiliClient(token="t", base_url=BASE, max_retries=0) as client:
        pager = client.invoices.list(ORG, page_size=1)
        assert [invoice.id async for invoice in pager] == ["i1", "i2", "i3"]
    (operation,) = otel.named("GetInvoicesByOrganization")
    attributes = operation.attributes or {}
    assert attributes["amili.organization_id"] == ORG
    assert attributes["amili.page_size"] == 1
    assert attributes["amili.items"] == 3
    pages = otel.children(operation)
    assert [s.name for s in pages] == ["page"] * 3
    for each in pages:
        assert [s.kind for s in otel.children(each)] == [SpanKind.CLIENT]


async def test_a_chunk_span_counts_an_unknown_outcome() -> None:
    # Its own fixture-free setup: the chunker of test_bulk, whose lookups all fail.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    undo = _telemetry.use(provider, meters)
    try:
        batches = FakeBatches({"key-0": "b-1"}, failing=100)
        results = await chunker(batches, FakeSubmit([lost()])).run(pending(0, [{"a": 1}, {"a": 2}]))
    finally:
        undo()
    assert [r.outcome for r in results] == ["unknown", "unknown"]
    recorded = Recorded(exporter, reader)
    (span,) = recorded.named("amili.bulk.chunk")
    attributes = span.attributes or {}
    assert attributes["amili.idempotency_key"] == "key-0"
    assert (attributes["amili.bulk.succeeded"], attributes["amili.bulk.failed"]) == (0, 0)
    assert attributes["amili.bulk.unknown"] == 2
    items = {p.attributes["amili.outcome"]: p.value for p in recorded.points("amili.bulk.items")}
    assert items == {"unknown": 2}
    assert isinstance(results[0].error, APIConnectionError)


async def test_a_webhook_duplicate_is_its_own_server_span(
    otel: Recorded,
    mount: Mount,  # noqa: F811
    case_body: bytes,  # noqa: F811
) -> None:
    harness = await mount(lambda event: None)
    assert await harness.post(case_body) == (200, "ok")
    assert await harness.post(case_body) == (200, "duplicate")
    assert (await harness.post(case_body, secret="wrong"))[0] == 401
    spans = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    outcomes = [(s.attributes or {})["amili.webhook.outcome"] for s in spans]
    assert outcomes == ["handled", "duplicate", "invalid_signature"]
    assert [(s.attributes or {})["amili.webhook.verified"] for s in spans] == [True, True, False]
    assert (spans[0].attributes or {})["amili.webhook.event"] == "CASE"
    counted = {
        p.attributes["amili.outcome"]: p.value for p in otel.points("amili.webhook.deliveries")
    }
    assert counted == {"handled": 1, "duplicate": 1, "invalid_signature": 1}


def _every_value(otel: Recorded) -> list[str]:
    values: list[str] = []
    for span in otel.spans():
        values += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            values += [f"{k}={v}" for k, v in (event.attributes or {}).items()]
        values.append(span.name)
    for metric in (
        "http.client.request.duration",
        "amili.client.retries",
        "amili.client.throttled",
    ):
        for point in otel.points(metric):
            values += [f"{k}={v}" for k, v in point.attributes.items()]
    return values


async def test_no_attribute_holds_a_national_id_the_secret_or_a_query(
    otel: Recorded, mocked: aioresponses
) -> None:
    mocked.post(TOKEN_URL, payload={"access_token": "tok-xyz-987", "expires_in": 3600})
    mocked.get(ANY_URL, status=429, headers={"Retry-After": "0"})
    mocked.get(ANY_URL, payload=page(None, "i1"))
    credentials = {"client_id": "client-id", "client_secret": SECRET, "token_url": TOKEN_URL}
    async with AmiliClient(**credentials, base_url=BASE) as client:
        found = await client.invoices.list(ORG, customer_number=NATIONAL_ID).collect()
    assert len(found) == 1
    values = _every_value(otel)
    assert any("url.full=" in value for value in values)  # the control: URLs are recorded
    for value in values:
        assert NATIONAL_ID not in value
        assert SECRET not in value
        assert "tok-xyz-987" not in value
        assert "?" not in value
        assert "CustomerNumber" not in value
    throttled = otel.points("amili.client.throttled")
    assert [p.value for p in throttled] == [1]


def test_importing_the_package_imports_no_opentelemetry() -> None:
    probe = (
        "import amili_async, sys; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert run.stdout.strip() == "False"


GLOBAL_PROVIDER = """
import asyncio
import aioresponses.core as mock_core
from aioresponses import aioresponses
from tests.conftest import _CompatClientResponse
mock_core.ClientResponse = _CompatClientResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from amili_async import AmiliClient

async def ping():
    with aioresponses() as mocked:
        mocked.get("https://api.test.invalid/webapi/api/Ping", payload={"message": "pong"})
        async with AmiliClient(token="t", base_url="https://api.test.invalid/collection/v1") as c:
            await c.legacy.ping()

asyncio.run(ping())  # before any provider: nothing recorded, nothing failed
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
asyncio.run(ping())
print(sorted(s.name for s in exporter.get_finished_spans()))
"""


def test_a_global_tracer_provider_switches_tracing_on() -> None:
    run = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert run.stdout.strip() == "['GET', 'LegacyPing']"
