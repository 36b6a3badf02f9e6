"""Staged export rows written in C from the page's typed document (`export/_staging`): the same
bytes as the models' way (`_serde.dumps(item) + b"\\n"`), the same errors, the same tokens."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aioresponses import aioresponses
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from amili_async import AmiliClient, _json, _response, _serde, _telemetry, models
from amili_async._pagination import AsyncPager
from amili_async.errors import ResponseDecodeError
from amili_async.export import _staging
from amili_async.export._staging import _shape, _StagingSource, joined
from amili_async.resources._base import _ListingSource, options
from amili_async.resources.invoices import _created_before
from amili_async.sandbox._seed import seed_invoices

UTC = dt.UTC


def _answer(body: bytes) -> _response.Response:
    return _response.Response(200, {}, body, "GET", "http://sdk.test/orgs/o/invoices", None, 0.0, 1)


def _source(keep: Any = None) -> tuple[_ListingSource[Any], _StagingSource]:
    """The listing's own source (models) and the staging one around it."""
    inner: _ListingSource[Any] = _ListingSource(
        None,  # type: ignore[arg-type]  # no request is sent: pages are given
        "/orgs/o/invoices",
        {},
        "PageToken",
        options(),
        models.InvoiceListResponse,
        keep,
    )
    shape = _shape(models.InvoiceListResponse, models.Invoice)
    return inner, _StagingSource(inner, models.Invoice, shape)


def _page(items: list[str], summary: str = '{"nextPageToken":"next"}') -> bytes:
    return f'{{"data":[{",".join(items)}],"summary":{summary}}}'.encode()


def _seeded(count: int) -> list[str]:
    seeded = seed_invoices(count, seed=11)
    return [seeded.invoice_json(i) for i in range(count)]


def _edited(item: str, **changes: Any) -> str:
    data = _json.loads(item)
    data.update(changes)
    return _json.dumps(data).decode()


def _edge_items() -> list[str]:
    """What the C way must write as the models do: every kind of milliseconds and offset,
    exact amounts with trailing zeros and exponents, nulls, an unknown enum value, empty lists,
    a text that looks like a date-time (it stays as it is)."""
    (base,) = _seeded(1)
    stamps = [
        "2024-01-02T07:00:02.621Z",  # milliseconds: msgspec writes .621000
        "2024-01-02T07:00:02.000Z",  # none: both write no fraction
        "2024-01-02T07:00:02.100000Z",
        "2024-01-02T07:00:02.000001Z",  # microseconds: six digits both ways
        "2024-01-02T08:30:00.123+01:30",  # an offset, kept
        "2024-01-02T02:00:00.5-05:00",
        "2024-01-02T07:00:02+00:00",  # UTC as an offset: written Z
        "2024-02-29T23:59:59.999999Z",
    ]
    items = [_edited(base, createdAt=s, closedAt=s, dueDate=s) for s in stamps]
    items.append(
        _edited(
            base, status="SOMETHING_NEW", closedAt=None, organization=None, claims=[], debtors=[]
        )
    )
    raw = base.replace('"originalInvoiceAmount":5012.28', '"originalInvoiceAmount":4500.10')
    raw = raw.replace(
        '"remainingAmount":0.00,"paidAmount":5012.28,"creditedAmount":0.00}',
        '"remainingAmount":1e2,"paidAmount":5012.28,"creditedAmount":-0.0000001}',
    )
    raw = raw.replace('"paidAmount":5012.28,', '"paidAmount":null,', 1)
    items.append(raw)
    items.append(
        _edited(
            base,
            invoiceNumber="2024-01-02T07:00:02.621000Z",
            uniqueSourceInvoiceId='","createdAt":"2024-01-02T07:00:02.621000Z',
            ocrReferenceNumber='000Z"000',
        )
    )
    items.append(_edited(base, unknownField={"createdAt": "2024-01-02T07:00:02.621000Z"}))
    items.append(_edited(base, paidAmount=Decimal("-0")))  # read as the int 0 both ways
    return items


def _models_way(inner: _ListingSource[Any], body: bytes) -> bytes:
    built = inner.build(inner.read(_answer(body)))
    return b"".join(_serde.dumps(item) + b"\n" for item in built)


def _texts(item: str) -> str:
    """`item` with amounts the text way keeps (trailing zeros, integers, tiny, negative)."""
    return _edited(
        item,
        originalInvoiceAmount=Decimal("4500.10"),
        currentAmount=12,
        remainingAmount=Decimal("-0.000001"),
        paidAmount=Decimal("-0.0"),
        creditedAmount=Decimal("123456789012345678901234567890.000"),
    )


TEXT, EXACT = 0, 1
"""Which of the shape's envelopes reads a page: amounts as their text, or as Decimal."""


@pytest.mark.parametrize(
    ("items", "way"),
    [
        (_seeded(300), TEXT),
        ([_texts(item) for item in _seeded(3)], TEXT),
        (_edge_items(), EXACT),  # a null amount, 1e2, -1E-7, -0
        ([], TEXT),
    ],
    ids=["seeded", "texts", "edges", "empty"],
)
def test_the_c_way_writes_the_bytes_of_the_models(items: list[str], way: int) -> None:
    inner, staging = _source()
    body = _page(items)
    raw = staging.read(_answer(body))
    assert staging.shape is not None
    assert type(raw.document) is staging.shape.envelopes[way]
    lines = staging.build(raw)
    assert len(lines) == len(items)
    assert joined(lines) == _models_way(inner, body)
    assert list(lines) == joined(lines).splitlines(keepends=True)
    assert lines[0:1] == list(lines)[0:1]


def test_the_edges_are_what_the_models_write() -> None:
    _, staging = _source()
    lines = list(staging.build(staging.read(_answer(_page(_edge_items())))))
    assert b'"createdAt":"2024-01-02T07:00:02.621Z"' in lines[0]
    assert b'"createdAt":"2024-01-02T07:00:02Z"' in lines[1]
    assert b'"createdAt":"2024-01-02T07:00:02.100Z"' in lines[2]
    assert b'"createdAt":"2024-01-02T07:00:02.000001Z"' in lines[3]
    assert b'"createdAt":"2024-01-02T08:30:00.123+01:30"' in lines[4]
    assert b'"createdAt":"2024-01-02T07:00:02Z"' in lines[6]
    assert b'"originalInvoiceAmount":4500.10,' in lines[9]
    assert b'"remainingAmount":1E+2,' in lines[9]
    assert b'"creditedAmount":-1E-7}' in lines[9]
    assert b'"paidAmount"' not in lines[9].split(b'"claims"')[1].split(b"}")[0]  # null: left out
    assert b'"invoiceNumber":"2024-01-02T07:00:02.621000Z"' in lines[10]  # text, not a stamp
    assert (
        b'"uniqueSourceInvoiceId":"\\",\\"createdAt\\":\\"2024-01-02T07:00:02.621000Z"'
        in (lines[10])
    )


def test_the_next_token_is_read_as_the_listing_reads_it() -> None:
    _, staging = _source()
    items = _seeded(2)
    for summary, token in [
        ('{"nextPageToken":"abc"}', "abc"),
        ('{"nextPageToken":""}', None),
        ('{"nextPageToken":null}', None),
        ("{}", None),
        ("null", None),
    ]:
        assert staging.read(_answer(_page(items, summary))).next_page_token == token
    with pytest.raises(ResponseDecodeError, match="nextPageToken is not a string"):
        staging.read(_answer(_page(items, '{"nextPageToken":7}')))


def test_a_page_the_mirror_refuses_goes_through_the_models() -> None:
    """A naive date-time (read as UTC by the models) and a case number sent as a number."""
    inner, staging = _source()
    (base,) = _seeded(1)
    items = [_edited(base, createdAt="2024-01-02T07:00:02.621"), base]
    body = _page(items)
    raw = staging.read(_answer(body))
    assert staging.shape is not None
    assert type(raw.document) not in staging.shape.envelopes
    assert joined(staging.build(raw)) == _models_way(inner, body)
    assert b'"createdAt":"2024-01-02T07:00:02.621Z"' in joined(staging.build(raw))


def test_what_the_models_refuse_is_refused_alike() -> None:
    inner, staging = _source()
    (base,) = _seeded(1)
    for bad in [
        _page([_edited(base, paidAmount="NaN")]),  # the mirror reads it; not an amount
        _page([_edited(base, createdAt="not a date")]),
        b"<html>",
    ]:
        with pytest.raises(ResponseDecodeError) as ours:
            staging.build(staging.read(_answer(bad)))
        with pytest.raises(ResponseDecodeError) as theirs:
            inner.build(inner.read(_answer(bad)))
        assert str(ours.value) == str(theirs.value)


def test_the_window_bound_drops_the_same_items() -> None:
    bound = dt.datetime(2024, 1, 2, 7, 1, tzinfo=UTC)
    inner, staging = _source(keep=_created_before(bound))
    items = _seeded(5)
    body = _page(items)
    lines = staging.build(staging.read(_answer(body)))
    assert 0 < len(lines) < len(items)
    assert joined(lines) == _models_way(inner, body)


# Models of the shapes the C way leaves to the models (module level: their annotations resolve).


@attrs.frozen
class Stamped:
    at: dt.datetime | None = attrs.field(default=None, metadata={"wire": "at"})


@attrs.frozen
class Texted:
    at: str | None = attrs.field(default=None, metadata={"wire": "at"})


@attrs.frozen
class Both:
    stamped: Stamped | None = None
    texted: list[Texted] | None = None


@attrs.frozen
class Anything:
    extra: Any = None


@attrs.frozen
class BothPage:
    data: list[Both] | None = None
    summary: models.Summary | None = None


@attrs.frozen
class AnythingPage:
    data: list[Anything] | None = None
    summary: models.Summary | None = None


def test_a_model_msgspec_would_write_otherwise_keeps_the_models_way() -> None:
    assert _shape(BothPage, Both) is None  # "at" is a date-time and a text
    assert _shape(AnythingPage, Anything) is None  # a value of any shape
    assert _shape(models.InvoiceListResponse, models.Batch) is None  # not its items
    assert _shape(None, models.Invoice) is None  # a source that names no envelope
    assert _shape(models.InvoiceListResponse, models.Invoice) is not None


def test_staged_pages_takes_one_window() -> None:
    class NotOneSource(AsyncPager[Any]):
        pass

    with pytest.raises(TypeError, match="cannot change how its pages are built"):
        _staging.staged_pages(NotOneSource(), models.Invoice)


BASE = "https://api.test.invalid/collection/v1"
LISTING = re.compile(r"^https://api\.test\.invalid/collection/v1/orgs/o/invoices")


async def _stage_through_a_client(mocked: aioresponses, items: list[list[str]]) -> list[bytes]:
    """The pages staged through a real client's listing (each page answered in turn)."""
    for number, page_items in enumerate(items, 1):
        token = f'{{"nextPageToken":"t{number}"}}' if number < len(items) else "{}"
        mocked.get(LISTING, body=_page(page_items, token), content_type="application/json")
    staged = []
    async with AmiliClient(token="t", base_url=BASE, max_retries=0) as client:
        pager = _staging.staged_pages(client.invoices.list("o", page_size=2), models.Invoice)
        async for page in pager.pages():
            staged.append(joined(page.items))
    return staged


@pytest.mark.parametrize("traced", [False, True])
async def test_a_clients_listing_is_staged_in_its_span(mocked: aioresponses, traced: bool) -> None:
    items = _seeded(3)
    inner, _ = _source()
    want = [_models_way(inner, _page(items[:2])), _models_way(inner, _page(items[2:]))]
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    undo = _telemetry.use(provider if traced else None)
    try:
        assert await _stage_through_a_client(mocked, [items[:2], items[2:]]) == want
    finally:
        undo()
    spans = [s for s in exporter.get_finished_spans() if s.name == "GetInvoicesByOrganization"]
    assert [(s.attributes or {}).get("amili.items") for s in spans] == ([3] if traced else [])


@pytest.mark.parametrize(
    "amount", ["1e2", "1E+2", "-0", "0.0000001", "-0.0000000", "0.000000", "null", '"4500.10"']
)
def test_an_amount_its_text_would_not_give_back_is_read_exactly(amount: str) -> None:
    """Each spelling on its own: the page is read again with Decimal amounts, and written as
    the models write it (1E+2, 1E-7, 0, left out, a number)."""
    inner, staging = _source()
    (base,) = _seeded(1)
    item = base.replace('"originalInvoiceAmount":5012.28', f'"originalInvoiceAmount":{amount}')
    assert item != base
    body = _page([item, *_seeded(2)])
    raw = staging.read(_answer(body))
    assert staging.shape is not None
    assert type(raw.document) is staging.shape.envelopes[EXACT]
    assert joined(staging.build(raw)) == _models_way(inner, body)


@pytest.mark.parametrize(
    ("amounts", "as_text"),
    [
        (b"", True),
        (b"5012.28,0.00,12,-0.0,-12.5,0.000001,123456789012345678901234567890.000", True),
        (b"1e2", False),
        (b"12,-0", False),
        (b"-0,12", False),
        (b"0.0000001", False),
        (b"10.000000", False),  # refused, though it would do: read the exact way
        (b"null", False),
        (b'"1.5"', False),
        (b"true", False),
    ],
)
def test_amounts_read_as_text_only_when_decimal_gives_them_back(
    amounts: bytes, as_text: bool
) -> None:
    assert _staging._as_written(amounts) is as_text
    if as_text:
        for text in filter(None, amounts.split(b",")):
            assert str(_json.loads_exact(b"[" + text + b"]")[0]).encode() == text
