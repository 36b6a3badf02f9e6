"""_pagination.py: TokenPager and MergedPager with fake fetch functions, plus listings through
the client (aioresponses) for what the resources bind: filters, page size, token spelling."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import re
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from aioresponses import CallbackResult

from amili_async import AmiliClient, APIConnectionError, InternalServerError, _gc, models
from amili_async._pagination import MERGED_READ_AHEAD, MergedPager, RawPage, TokenPager
from amili_async.export import plan_export

BASE = "https://api.test.invalid/collection/v1"
ORG = "o1"
T = TypeVar("T")
WAIT = 2.0
"""Deadlock guard for awaited events: a correct pager sets them within a few loop turns."""


# --- a fake listing ----------------------------------------------------------------------------


def boom(token: str | None) -> APIConnectionError:
    return APIConnectionError(f"page {token} failed", method="GET", url=f"{BASE}/x")


class Listing:
    """A fetch function over fixed pages. Tokens are "t1", "t2", ...; the first page is None.

    Records every call, lets a test hold a page's fetch at a gate, fail a page once, and see
    whether a fetch was cancelled.
    """

    def __init__(
        self,
        pages: Sequence[Sequence[Any]],
        *,
        last_token: str | None = None,
        fail: dict[str | None, BaseException] | None = None,
        gated: Sequence[str | None] = (),
    ) -> None:
        self.pages = [list(page) for page in pages]
        self.tokens: list[str | None] = [None] + [f"t{i}" for i in range(1, len(pages))]
        self.last_token = last_token
        self.fail = dict(fail or {})
        self.calls: list[str | None] = []
        self.returned: list[str | None] = []
        self.started = {token: asyncio.Event() for token in self.tokens}
        self.gates = {token: asyncio.Event() for token in gated}
        self.cancelled: list[str | None] = []
        self.cancelled_event = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def items(self) -> list[Any]:
        return [item for page in self.pages for item in page]

    async def fetch(self, token: str | None) -> RawPage:
        self.calls.append(token)
        self.started[token].set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if token in self.gates:
                await self.gates[token].wait()
            else:
                await asyncio.sleep(0)  # a fetch always suspends at least once
        except asyncio.CancelledError:
            self.cancelled.append(token)
            self.cancelled_event.set()
            raise
        finally:
            self.in_flight -= 1
        if token in self.fail:
            raise self.fail.pop(token)
        index = self.tokens.index(token)
        last = index + 1 == len(self.tokens)
        self.returned.append(token)
        next_token = self.last_token if last else self.tokens[index + 1]
        return RawPage(token, self.pages[index], next_token)

    def read(self, answer: RawPage) -> RawPage:
        return answer

    def build(self, page: RawPage) -> list[Any]:
        return list(page.document)


def numbered(pages: int, per_page: int) -> list[list[int]]:
    return [list(range(p * per_page, (p + 1) * per_page)) for p in range(pages)]


async def bounded(awaitable: Awaitable[T]) -> T:
    """Await with a deadlock guard: a pager that never finishes fails the test, not the run."""
    return await asyncio.wait_for(awaitable, WAIT)


async def settle(predicate: Callable[[], bool], turns: int = 200) -> None:
    """Let the loop run until `predicate` holds (bounded; no wall-clock sleeping)."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    assert predicate()


async def spin(turns: int = 50) -> None:
    """Give every runnable task plenty of turns (a slow consumer, without wall-clock time)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def drain_into(pager: AsyncIterable[Any], seen: list[Any], attr: str | None = None) -> None:
    """Append every item (or its `attr`) to `seen` until the listing ends or fails."""
    async for item in pager:
        seen.append(item if attr is None else getattr(item, attr))


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 1, 3])
async def test_items_stream_across_pages_in_order(prefetch: int) -> None:
    listing = Listing(numbered(4, 3))
    got = [item async for item in TokenPager(listing, prefetch=prefetch)]
    assert got == list(range(12))
    assert listing.calls == [None, "t1", "t2", "t3"]


@pytest.mark.parametrize("prefetch", [0, 2])
async def test_pages_carry_items_next_token_and_own_token(prefetch: int) -> None:
    listing = Listing([[1, 2], [3], [4, 5]])
    pages = [page async for page in TokenPager(listing, prefetch=prefetch).pages()]
    assert [list(page.items) for page in pages] == [[1, 2], [3], [4, 5]]
    assert [page.token for page in pages] == [None, "t1", "t2"]
    assert [page.next_page_token for page in pages] == ["t1", "t2", None]


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_empty_pages_do_not_end_the_listing(prefetch: int) -> None:
    listing = Listing([[], [1], [], [], [2, 3], []])
    assert [x async for x in TokenPager(listing, prefetch=prefetch)] == [1, 2, 3]
    assert len(listing.calls) == 6


@pytest.mark.parametrize("last_token", [None, ""])
@pytest.mark.parametrize("prefetch", [0, 1])
async def test_a_missing_or_empty_next_token_ends_the_listing(
    last_token: str | None, prefetch: int
) -> None:
    listing = Listing([[1], [2]], last_token=last_token)
    assert await TokenPager(listing, prefetch=prefetch).collect() == [1, 2]
    assert listing.calls == [None, "t1"]


@pytest.mark.parametrize("prefetch", [0, 1, 2])
async def test_collect_with_a_limit(prefetch: int) -> None:
    listing = Listing(numbered(5, 3))
    assert await bounded(TokenPager(listing, prefetch=prefetch).collect(limit=4)) == [0, 1, 2, 3]
    assert await TokenPager(listing, prefetch=prefetch).collect() == list(range(15))
    assert await TokenPager(listing, prefetch=prefetch).collect(limit=100) == list(range(15))


async def test_collect_limit_stops_fetching_without_prefetch() -> None:
    listing = Listing(numbered(5, 3))
    assert await bounded(TokenPager(listing, prefetch=0).collect(limit=5)) == [0, 1, 2, 3, 4]
    assert listing.calls == [None, "t1"]


async def test_collect_limit_zero_fetches_nothing() -> None:
    listing = Listing(numbered(2, 2))
    assert await TokenPager(listing, prefetch=1).collect(limit=0) == []
    assert listing.calls == []


async def test_negative_prefetch_is_refused() -> None:
    with pytest.raises(ValueError, match="prefetch"):
        TokenPager(Listing([[1]]), prefetch=-1)


async def test_a_pager_can_be_iterated_again() -> None:
    listing = Listing([[1], [2]])
    pager = TokenPager(listing, prefetch=1)
    assert await pager.collect() == [1, 2]
    assert await pager.collect() == [1, 2]


# --- resume ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_token", ["t2", "t4"])
async def test_page_token_starts_at_that_page(page_token: str) -> None:
    listing = Listing(numbered(5, 2))
    got = await TokenPager(listing, page_token=page_token, prefetch=1).collect()
    start = int(page_token[1:])
    assert got == list(range(start * 2, 10))
    assert listing.calls[0] == page_token


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize("failing_page", [1, 3])
async def test_error_carries_resume_token_and_resuming_loses_and_repeats_nothing(
    prefetch: int, failing_page: int
) -> None:
    failing_token = f"t{failing_page}"
    listing = Listing(numbered(5, 3), fail={failing_token: boom(failing_token)})
    seen: list[int] = []
    with pytest.raises(APIConnectionError) as caught:
        await drain_into(TokenPager(listing, prefetch=prefetch), seen)
    assert caught.value.resume_token == failing_token
    # Every item of the pages before the failed one was delivered, none after it.
    assert seen == list(range(failing_page * 3))

    resumed = TokenPager(listing, page_token=caught.value.resume_token, prefetch=prefetch)
    seen += await resumed.collect()
    assert seen == listing.items


async def test_error_on_the_first_page_resumes_from_the_start() -> None:
    listing = Listing([[1], [2]], fail={None: boom(None)})
    with pytest.raises(APIConnectionError) as caught:
        await TokenPager(listing, prefetch=1).collect()
    assert caught.value.resume_token is None
    assert await TokenPager(listing, page_token=caught.value.resume_token).collect() == [1, 2]


async def test_errors_that_are_not_sdk_errors_propagate_unchanged() -> None:
    listing = Listing([[1], [2]], fail={"t1": KeyError("bug")})
    with pytest.raises(KeyError, match="bug"):
        await TokenPager(listing, prefetch=1).collect()


# --- prefetch ----------------------------------------------------------------------------------


async def test_prefetch_fetches_the_next_page_while_the_caller_holds_this_one() -> None:
    listing = Listing(numbered(3, 2), gated=["t1"])
    async with contextlib.aclosing(TokenPager(listing, prefetch=1).pages()) as pages:
        first = await anext(pages)
        assert list(first.items) == [0, 1]
        # The caller has not asked for page 2 yet, but its fetch is under way.
        await asyncio.wait_for(listing.started["t1"].wait(), WAIT)
        listing.gates["t1"].set()
        second = await anext(pages)
        assert list(second.items) == [2, 3]


async def test_without_prefetch_nothing_runs_ahead() -> None:
    listing = Listing(numbered(3, 2))
    before = other_tasks()
    async with contextlib.aclosing(TokenPager(listing, prefetch=0).pages()) as pages:
        first = await anext(pages)
        assert list(first.items) == [0, 1]
        await spin()
        assert listing.calls == [None]
        assert other_tasks() == before  # no background task at all
        assert list((await anext(pages)).items) == [2, 3]
        assert listing.calls == [None, "t1"]


@pytest.mark.parametrize("prefetch", [1, 2, 3])
async def test_never_more_than_prefetch_pages_ahead_of_a_slow_consumer(prefetch: int) -> None:
    listing = Listing(numbered(10, 1))
    consumed = 0
    ahead: list[int] = []
    async with contextlib.aclosing(TokenPager(listing, prefetch=prefetch).pages()) as pages:
        async for _page in pages:
            consumed += 1
            await spin()  # the consumer is slow: the producer gets every chance to run ahead
            ahead.append(len(listing.calls) - consumed)
            # Fetched (returned) but not yet handed to the consumer.
            assert len(listing.returned) - consumed <= prefetch
    assert consumed == 10
    assert max(ahead) == prefetch
    assert all(n <= prefetch for n in ahead)


# --- cancellation ------------------------------------------------------------------------------


async def test_closing_the_iteration_cancels_the_prefetch() -> None:
    before = other_tasks()
    listing = Listing(numbered(3, 2), gated=["t1"])
    got: list[int] = []
    async with asyncio.timeout(WAIT):
        async with contextlib.aclosing(aiter(TokenPager(listing, prefetch=1))) as items:
            async for item in items:
                got.append(item)
                await asyncio.wait_for(listing.started["t1"].wait(), WAIT)
                break
    # aclose() has returned: the prefetch was cancelled and awaited, nothing is left running.
    assert listing.cancelled == ["t1"]
    assert other_tasks() == before
    assert got == [0]


async def test_plain_break_cancels_the_prefetch_once_the_iterator_is_collected() -> None:
    before = other_tasks()
    listing = Listing(numbered(3, 2), gated=["t1"])
    async for _item in TokenPager(listing, prefetch=1):
        await asyncio.wait_for(listing.started["t1"].wait(), WAIT)
        break
    gc.collect()
    await asyncio.wait_for(listing.cancelled_event.wait(), WAIT)
    assert listing.cancelled == ["t1"]
    await settle(lambda: other_tasks() == before)


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_cancelling_a_consumer_waiting_for_a_page_cancels_the_fetch(prefetch: int) -> None:
    before = other_tasks()
    listing = Listing(numbered(3, 2), gated=["t1"])
    got: asyncio.Queue[int] = asyncio.Queue()

    async def consume() -> None:
        async for item in TokenPager(listing, prefetch=prefetch):
            got.put_nowait(item)

    task = asyncio.create_task(consume())
    assert await got.get() == 0
    assert await got.get() == 1
    await asyncio.wait_for(listing.started["t1"].wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert listing.cancelled == ["t1"]
    await settle(lambda: other_tasks() == before)


async def test_cancelling_a_consumer_busy_with_an_item_cancels_the_prefetch() -> None:
    before = other_tasks()
    listing = Listing(numbered(3, 2), gated=["t1"])
    holding = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(aiter(TokenPager(listing, prefetch=1))) as items:
            async for _item in items:
                holding.set()
                await asyncio.Event().wait()  # busy with the item until cancelled

    task = asyncio.create_task(consume())
    await asyncio.wait_for(holding.wait(), WAIT)
    await asyncio.wait_for(listing.started["t1"].wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert listing.cancelled == ["t1"]
    assert other_tasks() == before


async def test_a_consumer_cancelled_while_the_prefetch_winds_down_stays_cancelled() -> None:
    """The pager waits for its cancelled prefetch on close; cancelling the consumer meanwhile
    (task.cancel(), an outer asyncio.timeout) must not be swallowed by that wait."""
    fetching = asyncio.Event()
    winding_down = asyncio.Event()
    after_loop: list[str] = []

    class Hanging(Listing):
        async def fetch(self, token: str | None) -> RawPage:
            if token is None:
                return RawPage(None, [1], "t1")
            return await hang()

    async def hang() -> RawPage:
        fetching.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            winding_down.set()
            await asyncio.Event().wait()  # slow cleanup, e.g. releasing a connection
        raise AssertionError("unreachable")

    async def consume() -> None:
        async with contextlib.aclosing(aiter(TokenPager(Hanging([]), prefetch=1))) as items:
            async for _item in items:
                await fetching.wait()
                break
        after_loop.append("the consumer carried on")

    task = asyncio.create_task(consume())
    await asyncio.wait_for(winding_down.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert after_loop == []


# --- MergedPager, directly ---------------------------------------------------------------------


async def test_merged_pager_yields_every_item_of_every_part_once() -> None:
    listings = [Listing([[f"{p}-{i}" for i in range(k, k + 2)] for k in (0, 2)]) for p in "abc"]
    merged = MergedPager([TokenPager(fetch, prefetch=1) for fetch in listings], concurrency=3)
    got = await bounded(merged.collect())
    assert sorted(got) == sorted(item for listing in listings for item in listing.items)
    assert len(got) == len(set(got)) == 12


async def test_merged_pager_bounds_concurrency() -> None:
    meter = {"active": 0, "peak": 0}

    class Counting(Listing):
        async def fetch(self, token: str | None) -> RawPage:
            meter["active"] += 1
            meter["peak"] = max(meter["peak"], meter["active"])
            try:
                await spin(5)
                return await super().fetch(token)
            finally:
                meter["active"] -= 1

    listings = [Counting([[p, p + 100], [p + 200]]) for p in range(6)]
    merged = MergedPager([TokenPager(x, prefetch=1) for x in listings], concurrency=2)
    got = await bounded(merged.collect())
    assert sorted(got) == sorted(item for listing in listings for item in listing.items)
    assert meter["peak"] == 2


async def test_merged_pager_refuses_zero_concurrency() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        MergedPager([], concurrency=0)


async def test_closing_a_merged_listing_cancels_every_part() -> None:
    before = other_tasks()
    listings = [Listing([[1], [2]], gated=["t1"]) for _ in range(3)]
    merged = MergedPager([TokenPager(x, prefetch=1) for x in listings], concurrency=3)
    async with asyncio.timeout(WAIT):
        async with contextlib.aclosing(aiter(merged)) as items:
            for _ in listings:  # each part's first page taken: each sends its second request
                await anext(items)
            for listing in listings:
                await asyncio.wait_for(listing.started["t1"].wait(), WAIT)
    assert [listing.cancelled for listing in listings] == [["t1"]] * 3
    assert other_tasks() == before


# --- through the client ------------------------------------------------------------------------


def route(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(BASE + path) + r"(\?.*)?$")


def invoice(invoice_id: str, created_at: str = "2024-01-01T12:00:00Z") -> dict[str, Any]:
    return {"id": invoice_id, "createdAt": created_at, "status": "OPEN"}


class Server:
    """An aioresponses callback serving `pages[token]`, recording each request's query."""

    def __init__(
        self, pages: dict[str | None, tuple[list[dict[str, Any]], dict[str, Any] | None]]
    ) -> None:
        self.pages = pages
        self.queries: list[dict[str, str]] = []
        self.token_param = "PageToken"

    def __call__(self, url: Any, **kwargs: Any) -> CallbackResult:
        query = dict(url.query)
        assert len(query) == len(url.query), "a query parameter was sent twice"
        self.queries.append(query)
        assert len(self.queries) <= 2 * len(self.pages), "the listing does not end"
        items, summary = self.pages[query.get(self.token_param)]
        body: dict[str, Any] = {"data": items}
        if summary is not None:
            body["summary"] = summary
        return CallbackResult(status=200, payload=body)


async def test_filters_and_page_size_are_sent_on_every_page(
    mocked: Any, client: AmiliClient
) -> None:
    server = Server(
        {
            None: ([invoice("a"), invoice("b")], {"status": "SUCCESS", "nextPageToken": "p2"}),
            "p2": ([invoice("c"), invoice("d")], {"status": "SUCCESS", "nextPageToken": "p3"}),
            "p3": ([invoice("e")], {"status": "SUCCESS", "nextPageToken": None}),
        }
    )
    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=server, repeat=True)
    pager = client.invoices.list(
        ORG,
        status="OPEN",
        type=models.InvoiceType.NOTICE,
        customer_number="C-1",
        from_=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        page_size=2,
    )
    got = [inv.id async for inv in pager]
    assert got == ["a", "b", "c", "d", "e"]
    filters = {
        "Status": "OPEN",
        "Type": "NOTICE",
        "CustomerNumber": "C-1",
        "From": "2024-01-01T00:00:00Z",
        "PageSize": "2",
    }
    assert server.queries == [
        filters,
        {**filters, "PageToken": "p2"},
        {**filters, "PageToken": "p3"},
    ]


async def test_settlements_spell_their_paging_parameters_in_camel_case(
    mocked: Any, client: AmiliClient
) -> None:
    server = Server(
        {
            None: ([{"settlementId": "s1"}], {"nextPageToken": "n2"}),
            "n2": ([{"settlementId": "s2"}], {"nextPageToken": ""}),
        }
    )
    server.token_param = "pageToken"
    mocked.get(route(f"/orgs/{ORG}/settlements"), callback=server, repeat=True)
    pager = client.settlements.list(
        ORG, from_date=dt.date(2024, 1, 1), to_date=dt.date(2024, 2, 1), page_size=1
    )
    assert [s.settlement_id async for s in pager] == ["s1", "s2"]
    filters = {"fromDate": "2024-01-01", "toDate": "2024-02-01", "pageSize": "1"}
    assert server.queries == [filters, {**filters, "pageToken": "n2"}]


@pytest.mark.parametrize(
    ("list_call", "path", "token_param"),
    [
        (lambda c, **kw: c.batches.list(ORG, state="QUEUED", **kw), "batches", "PageToken"),
        (lambda c, **kw: c.collections.list_cases(ORG, status="OPEN", **kw), "cases", "PageToken"),
    ],
)
async def test_batches_and_cases_send_page_token(
    mocked: Any, client: AmiliClient, list_call: Any, path: str, token_param: str
) -> None:
    item = {"batchId": "b", "status": "QUEUED"} if path == "batches" else {"caseId": "c"}
    server = Server({None: ([item], {"nextPageToken": "x2"}), "x2": ([item], {})})
    mocked.get(route(f"/orgs/{ORG}/{path}"), callback=server, repeat=True)
    assert len(await list_call(client, page_size=1).collect()) == 2
    assert [q.get(token_param) for q in server.queries] == [None, "x2"]
    assert all(q["PageSize"] == "1" for q in server.queries)


@pytest.mark.parametrize(
    "last_summary",
    [None, {"status": "SUCCESS"}, {"nextPageToken": None}, {"nextPageToken": ""}],
    ids=["no-summary", "token-absent", "token-null", "token-empty"],
)
async def test_the_last_page_ends_the_listing_through_the_client(
    mocked: Any, client: AmiliClient, last_summary: dict[str, Any] | None
) -> None:
    server = Server(
        {None: ([invoice("a")], {"nextPageToken": "p2"}), "p2": ([invoice("b")], last_summary)}
    )
    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=server, repeat=True)
    pages = [page async for page in client.invoices.list(ORG).pages()]
    assert [[inv.id for inv in page.items] for page in pages] == [["a"], ["b"]]
    assert [(page.token, page.next_page_token) for page in pages] == [(None, "p2"), ("p2", None)]
    assert len(server.queries) == 2


@pytest.mark.parametrize("prefetch", [0, 1, 3])
async def test_an_http_error_mid_listing_resumes_through_the_client(
    mocked: Any, client: AmiliClient, prefetch: int
) -> None:
    fail_once = {"armed": True}
    good = Server(
        {
            None: ([invoice("a"), invoice("b")], {"nextPageToken": "p2"}),
            "p2": ([invoice("c")], {"nextPageToken": "p3"}),
            "p3": ([invoice("d")], None),
        }
    )

    def serve(url: Any, **kwargs: Any) -> CallbackResult:
        if url.query.get("PageToken") == "p2" and fail_once["armed"]:
            fail_once["armed"] = False
            return CallbackResult(status=500, payload={"title": "oops"})
        return good(url, **kwargs)

    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=serve, repeat=True)
    seen: list[str] = []
    with pytest.raises(InternalServerError) as caught:
        await drain_into(client.invoices.list(ORG, status="OPEN", prefetch=prefetch), seen, "id")
    assert caught.value.resume_token == "p2"
    resumed = client.invoices.list(
        ORG, status="OPEN", page_token=caught.value.resume_token, prefetch=prefetch
    )
    seen += [inv.id async for inv in resumed]
    assert seen == ["a", "b", "c", "d"]
    assert all(q["Status"] == "OPEN" for q in good.queries)


# --- partitioned listings through the client ---------------------------------------------------

FROM = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TO = dt.datetime(2024, 1, 5, tzinfo=dt.UTC)


def stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


class WindowServer:
    """Serves each From/To window two pages of its own invoices; the first window also returns
    an invoice created exactly at its `To` (as a server treating To as inclusive would), which
    the second window returns too."""

    def __init__(self, windows: int) -> None:
        self.queries: list[dict[str, str]] = []
        self.first_page_arrivals = 0
        self.all_started = asyncio.Event()
        self.windows = windows
        self.active = 0
        self.peak = 0

    def items_for(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        day = start.day
        inside = [invoice(f"d{day}-{k}", stamp(start + dt.timedelta(hours=k))) for k in range(3)]
        edge = stamp(FROM + dt.timedelta(days=1))
        if stamp(end) == edge or stamp(start) == edge:
            inside.append(invoice("edge", edge))
        return inside

    async def serve(self, url: Any, **kwargs: Any) -> CallbackResult:
        query = dict(url.query)
        self.queries.append(query)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if "PageToken" not in query:
                self.first_page_arrivals += 1
                if self.first_page_arrivals == self.windows:
                    self.all_started.set()
                # Every window's first request is in flight before any is answered.
                await asyncio.wait_for(self.all_started.wait(), WAIT)
        finally:
            self.active -= 1
        items = self.items_for(parse(query["From"]), parse(query["To"]))
        if "PageToken" not in query:
            page, summary = items[:2], {"nextPageToken": "second:" + query["From"]}
        else:
            assert query["PageToken"] == "second:" + query["From"]
            page, summary = items[2:], {"nextPageToken": None}
        return CallbackResult(status=200, payload={"data": page, "summary": summary})


async def test_partitions_list_disjoint_windows_concurrently_and_yield_each_item_once(
    mocked: Any, client: AmiliClient
) -> None:
    server = WindowServer(windows=4)
    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=server.serve, repeat=True)
    pager = client.invoices.list(ORG, status="OPEN", from_=FROM, to=TO, partitions=4)
    got = [inv.id for inv in await bounded(pager.collect())]

    days = [stamp(FROM + dt.timedelta(days=d)) for d in range(5)]
    windows = {(q["From"], q["To"]) for q in server.queries}
    assert windows == {(days[i], days[i + 1]) for i in range(4)}
    assert all(q["Status"] == "OPEN" for q in server.queries)
    assert len(server.queries) == 8  # two pages per window
    expected = {f"d{d}-{k}" for d in range(1, 5) for k in range(3)} | {"edge"}
    assert sorted(got) == sorted(expected)  # every item exactly once, "edge" included
    assert server.peak == 4


async def test_partitions_split_uneven_windows_without_gaps(
    mocked: Any, client: AmiliClient
) -> None:
    queries: list[dict[str, str]] = []

    def serve(url: Any, **kwargs: Any) -> CallbackResult:
        queries.append(dict(url.query))
        return CallbackResult(status=200, payload={"data": []})

    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=serve, repeat=True)
    end = FROM + dt.timedelta(hours=10)
    pager = client.invoices.list(ORG, from_=FROM, to=end, partitions=3)
    assert await bounded(pager.collect()) == []
    bounds = sorted((parse(q["From"]), parse(q["To"])) for q in queries)
    assert bounds[0][0] == FROM
    assert bounds[-1][1] == end
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(2))


async def test_partitions_cut_the_windows_an_export_plan_cuts(
    mocked: Any, client: AmiliClient
) -> None:
    """One partitioner: `invoices.list(partitions=)` lists exactly the plan's unit windows."""
    queries: list[dict[str, str]] = []

    def serve(url: Any, **kwargs: Any) -> CallbackResult:
        queries.append(dict(url.query))
        return CallbackResult(status=200, payload={"data": []})

    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=serve, repeat=True)
    end = FROM + dt.timedelta(hours=10, seconds=1)  # does not divide evenly by 7
    assert (
        await bounded(client.invoices.list(ORG, from_=FROM, to=end, partitions=7).collect()) == []
    )
    plan = plan_export([ORG], from_=FROM, to=end, partitions_per_org=7)
    listed = sorted((parse(q["From"]), parse(q["To"])) for q in queries)
    assert listed == [(unit.from_, unit.to) for unit in plan]


async def test_the_window_guard_drops_an_invoice_created_at_to(
    mocked: Any, client: AmiliClient
) -> None:
    at_to = invoice("at-to", stamp(TO))
    server = Server({None: ([invoice("in"), at_to, {"id": "undated"}], None)})
    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=server, repeat=True)
    got = [inv.id async for inv in client.invoices.list(ORG, from_=FROM, to=TO)]
    assert got == ["in", "undated"]


async def test_a_naive_to_is_refused_before_anything_is_sent(
    mocked: Any, client: AmiliClient
) -> None:
    # One rule for date-times sent (issue 25.4): a naive one is refused, never taken as UTC.
    naive_to = TO.replace(tzinfo=None)
    with pytest.raises(ValueError, match="query parameter To: a date-time without a timezone"):
        client.invoices.list(ORG, to=naive_to)
    assert mocked.requests == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"partitions": 4},
        {"partitions": 4, "from_": FROM},
        {"partitions": 4, "to": TO},
        {"partitions": 4, "from_": TO, "to": FROM},
        {"partitions": 0, "from_": FROM, "to": TO},
        {"partitions": 4, "from_": FROM, "to": TO, "page_token": "p2"},
    ],
    ids=["no-window", "no-to", "no-from", "reversed", "zero", "page-token"],
)
async def test_invalid_partitioned_listings_are_refused(
    mocked: Any, client: AmiliClient, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="partition"):
        client.invoices.list(ORG, **kwargs)
    assert mocked.requests == {}


async def test_an_error_in_one_partition_propagates_and_cancels_the_others(
    mocked: Any, client: AmiliClient
) -> None:
    before = other_tasks()
    waiting = asyncio.Queue[str]()
    cancelled: list[str] = []
    failing_from = stamp(FROM + dt.timedelta(days=2))

    async def serve(url: Any, **kwargs: Any) -> CallbackResult:
        start = url.query["From"]
        if start == failing_from:
            # Fail only once the three other windows are waiting on the server.
            for _ in range(3):
                await asyncio.wait_for(waiting.get(), WAIT)
            return CallbackResult(status=500, payload={"title": "partition failed"})
        waiting.put_nowait(start)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(start)
            raise
        raise AssertionError("unreachable")

    mocked.get(route(f"/orgs/{ORG}/invoices"), callback=serve, repeat=True)
    with pytest.raises(InternalServerError):
        await bounded(client.invoices.list(ORG, from_=FROM, to=TO, partitions=4).collect())
    others = {stamp(FROM + dt.timedelta(days=d)) for d in (0, 1, 3)}
    assert set(cancelled) == others
    assert len(cancelled) == 3
    await settle(lambda: other_tasks() == before)


# --- pages read in the producer, built when taken; the ledger frees them in GC pauses ----------


class Doc:
    """A page document that records the GC pause depth at which it is freed."""

    def __init__(self, index: int, freed: list[tuple[str, int]]) -> None:
        self.index = index
        self.freed = freed

    def __del__(self) -> None:
        self.freed.append((f"doc {self.index}", _gc.depth()))


class Item:
    """An item that records the GC pause depth at which it is freed."""

    def __init__(self, value: int, freed: list[tuple[str, int]]) -> None:
        self.value = value
        self.freed = freed

    def __del__(self) -> None:
        self.freed.append((f"item {self.value}", _gc.depth()))


class EventListing:
    """Three pages (tokens "1", "2"); records fetches, reads, builds (with the GC pause depth
    each ran at) and when documents and items are freed."""

    def __init__(self, fail_build: str | None = None, pages: int = 3) -> None:
        self.events: list[str] = []
        self.depths: list[int] = []
        self.freed: list[tuple[str, int]] = []
        self.fail_build = fail_build
        self.count = pages

    async def fetch(self, token: str | None) -> tuple[str | None, int]:
        index = 0 if token is None else int(token)
        self.events.append(f"fetch {index}")
        await asyncio.sleep(0)
        return token, index

    def read(self, answer: tuple[str | None, int]) -> RawPage:
        token, index = answer
        self.events.append(f"read {index}")
        self.depths.append(_gc.depth())
        next_token = str(index + 1) if index + 1 < self.count else None
        return RawPage(token, Doc(index, self.freed), next_token)

    def build(self, page: RawPage) -> list[Item]:
        index = page.document.index
        self.events.append(f"build {index}")
        self.depths.append(_gc.depth())
        if page.answer is not None and page.answer == self.fail_build:
            raise boom(page.answer)
        return [Item(index * 10, self.freed), Item(index * 10 + 1, self.freed)]


def values(items: Sequence[Item]) -> list[int]:
    return [item.value for item in items]


async def test_pages_are_built_after_the_next_fetch_started() -> None:
    listing = EventListing()
    items = values(await bounded(TokenPager(listing, prefetch=1).collect()))
    assert items == [0, 1, 10, 11, 20, 21]
    # With prefetch the request for page 1 goes out before page 0's items are built, so the
    # server's time and the client's decoding overlap.
    assert listing.events.index("fetch 1") < listing.events.index("build 0")
    assert listing.events.index("fetch 2") < listing.events.index("build 1")


async def test_pages_without_prefetch_are_read_and_built_in_order() -> None:
    listing = EventListing()
    got = values(await bounded(TokenPager(listing, prefetch=0).collect()))
    assert got == [0, 1, 10, 11, 20, 21]
    assert listing.events == [
        f"{step} {i}" for i in range(3) for step in ("fetch", "read", "build")
    ]


@pytest.mark.parametrize("prefetch", [0, 1, 3])
async def test_items_and_documents_are_freed_inside_the_pause_that_allocates_the_next(
    prefetch: int,
) -> None:
    listing = EventListing(pages=5)
    count = 0
    async for _item in TokenPager(listing, prefetch=prefetch):
        count += 1
    del _item
    assert count == 10
    assert listing.depths == [1] * 10, "every read and every build runs in one GC pause"
    inside = [name for name, depth in listing.freed if depth == 1]
    # Each page's items are freed by the next page's build (but its last one, which the
    # caller's loop variable holds until the next item), each document by a later read (or a
    # build, when reads ran ahead); only the last page's go when the iteration ends.
    assert {f"item {i * 10}" for i in range(4)} <= set(inside)
    assert {f"doc {i}" for i in range(3)} <= set(inside)
    assert _gc.depth() == 0


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_pages_documents_are_freed_inside_a_pause_too(prefetch: int) -> None:
    listing = EventListing(pages=5)
    tokens = []
    async with contextlib.aclosing(TokenPager(listing, prefetch=prefetch).pages()) as pages:
        async for page in pages:
            tokens.append(page.token)
    assert tokens == [None, "1", "2", "3", "4"]
    assert listing.depths == [1] * 10
    inside = {name for name, depth in listing.freed if depth == 1}
    assert {f"doc {i}" for i in range(3)} <= inside


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_a_failed_build_carries_its_page_token(prefetch: int) -> None:
    listing = EventListing(fail_build="1")
    seen: list[int] = []

    async def consume() -> None:
        async for item in TokenPager(listing, prefetch=prefetch):
            seen.append(item.value)

    with pytest.raises(APIConnectionError) as caught:
        await bounded(consume())
    assert seen == [0, 1]
    assert caught.value.resume_token == "1"
    assert _gc.depth() == 0, "the pause ended with the failure"
    resumed = values(await bounded(TokenPager(EventListing(), page_token="1").collect()))
    assert seen + resumed == [0, 1, 10, 11, 20, 21]


async def test_a_merged_listing_bounds_the_pages_read_and_waiting_across_its_parts() -> None:
    listings = [EventListing(pages=4) for _ in range(8)]
    merged = MergedPager([TokenPager(x, prefetch=1) for x in listings], concurrency=8)
    waiting = []

    def unbuilt() -> int:
        events = [event for listing in listings for event in listing.events]
        return sum(e.startswith("read") for e in events) - sum(
            e.startswith("build") for e in events
        )

    async with contextlib.aclosing(merged.pages()) as pages:
        async for page in pages:
            await spin()  # a slow consumer: every part's request has had time to be answered
            waiting.append(unbuilt())
            assert page.part is not None
    assert len(waiting) == 32
    # The page being consumed is built; at most MERGED_READ_AHEAD more are read and waiting.
    assert max(waiting) == MERGED_READ_AHEAD
    assert all(depth == 1 for listing in listings for depth in listing.depths)


async def test_a_merged_listing_frees_pages_inside_the_pauses() -> None:
    listings = [EventListing(pages=3) for _ in range(4)]
    merged = MergedPager([TokenPager(x, prefetch=1) for x in listings], concurrency=4)
    count = 0
    async for _item in merged:
        count += 1
    del _item
    assert count == 24
    freed = [entry for listing in listings for entry in listing.freed]
    # The first item of every page but the last one taken is freed by a later build.
    inside = [name for name, depth in freed if depth == 1]
    assert len([name for name in inside if name.startswith("item") and name.endswith("0")]) == 11
    # And every document but the last few, by a later read.
    assert len([name for name in inside if name.startswith("doc")]) >= 12 - 1 - MERGED_READ_AHEAD
