"""Issue 12 at the client: hostile answers cost a field, a record or one request, bounded.

Items 2 and 13 (times), 3 (one malformed record), 4 (lone surrogates), 10 (pagination that
never ends), 11 (a body that drips, a gzip bomb) and 16 (path segments).
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from hostile_codat import API_KEY, FakeCodat, LoopbackServer, good_status

from auditor.codat import (
    CodatClient,
    CodatDeadlineError,
    CodatPaginationError,
    CodatResponseTooLargeError,
    CodatTimeoutError,
    ParseIssues,
    RateLimitPolicy,
    RetryPolicy,
    loads_json,
    parse_codat_datetime,
    parse_company,
)
from auditor.collector import collector_transport

ONE_TRY = RetryPolicy(max_attempts=1)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> CodatClient:
    return CodatClient(
        API_KEY,
        base_url=kwargs.pop("base_url", "http://codat.test"),
        retry=kwargs.pop("retry", ONE_TRY),
        rate_limit=NO_LIMIT,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def answer(body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, content=json.dumps(body).encode())


# --------------------------------------------------------------- times (items 2, 13)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-18T08:00:00Z", datetime(2026, 11, 18, 8, tzinfo=UTC)),
        ("2026-11-18T08:00:00z", datetime(2026, 11, 18, 8, tzinfo=UTC)),
        ("2026-11-18T03:00:00-05:00", datetime(2026, 11, 18, 8, tzinfo=UTC)),
        ("2026-11-18T09:30:00+01:30", datetime(2026, 11, 18, 8, tzinfo=UTC)),
        ("2026-11-18T05:00:00", datetime(2026, 11, 18, 5, tzinfo=UTC)),  # unqualified: UTC
        ("2026-11-17", datetime(2026, 11, 17, tzinfo=UTC)),  # date only: 00:00 UTC
        ("2026-11-18T05:00:00.1Z", datetime(2026, 11, 18, 5, 0, 0, 100000, tzinfo=UTC)),
        ("2026-11-18T05:00:00.12Z", datetime(2026, 11, 18, 5, 0, 0, 120000, tzinfo=UTC)),
        ("2026-11-18T05:00:00.123Z", datetime(2026, 11, 18, 5, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-18T05:00:00.1234Z", datetime(2026, 11, 18, 5, 0, 0, 123400, tzinfo=UTC)),
        ("2026-11-18T05:00:00.12345Z", datetime(2026, 11, 18, 5, 0, 0, 123450, tzinfo=UTC)),
        ("2026-11-18T05:00:00.123456Z", datetime(2026, 11, 18, 5, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-18T05:00:00.1234567Z", datetime(2026, 11, 18, 5, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-18T05:00:00.1234567", datetime(2026, 11, 18, 5, 0, 0, 123456, tzinfo=UTC)),
        (
            "2026-11-18T03:00:00.1234567-05:00",
            datetime(2026, 11, 18, 8, 0, 0, 123456, tzinfo=UTC),
        ),
        (" 2026-11-18T08:00:00Z ", datetime(2026, 11, 18, 8, tzinfo=UTC)),
        ("", None),
        (None, None),
    ],
)
def test_codat_datetime_forms(text: str | None, expected: datetime | None) -> None:
    got = parse_codat_datetime(text)
    assert got == expected
    assert got is None or got.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00",  # .NET DateTime.MinValue
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",  # .NET DateTime.MaxValue
        "9999-12-31T23:59:59.9999999",
        "1677-09-21T00:00:00Z",
        "2262-04-12T00:00:00Z",
        "yesterday",
        "soon",
        1700000000,  # a number is not a time (pydantic would read Unix seconds)
        True,
        ["2026-11-18"],
    ],
)
def test_unreadable_times_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match=r"not a time|out of range"):
        parse_codat_datetime(value)


async def test_out_of_range_and_unreadable_times_become_missing() -> None:
    body = {
        "invoices": good_status("invoices", lastSuccessfulSync="0001-01-01T00:00:00"),
        "bills": good_status("bills", lastSuccessfulSync="9999-12-31T23:59:59.9999999Z"),
        "customers": good_status("customers", lastSuccessfulSync="yesterday"),
        "suppliers": good_status("suppliers", lastSuccessfulSync="2026-11-18T03:00:00-05:00"),
        "payments": good_status("payments", lastSuccessfulSync="2026-11-17"),
    }
    async with mock_client(answer(body)) as client:
        statuses = await client.get_data_status("c1")
        issues = client.parse_issues
    assert set(statuses) == set(body)
    for key, raw in [
        ("invoices", "0001-01-01T00:00:00"),
        ("bills", "9999-12-31T23:59:59.9999999Z"),
        ("customers", "yesterday"),
    ]:
        assert statuses[key].last_successful_sync is None
        assert statuses[key].unreadable == {"lastSuccessfulSync": raw}
        assert statuses[key].current_status == "Complete"  # the rest of the entry is read
    assert statuses["suppliers"].last_successful_sync == datetime(2026, 11, 18, 8, tzinfo=UTC)
    assert statuses["payments"].last_successful_sync == datetime(2026, 11, 17, tzinfo=UTC)
    assert statuses["payments"].unreadable == {}
    assert issues.malformed_fields == {"data_status.lastSuccessfulSync": 3}
    assert not issues.skipped_records


# ------------------------------------------------------ one malformed record (item 3)

HOSTILE_COMPANIES: list[Any] = [
    {"id": "ok", "name": "Fine Ltd", "dataConnections": []},
    {"id": "name-null", "name": None},
    {"id": "name-int", "name": 42},
    {"id": "name-list", "name": ["a", "b"]},
    {"id": "created-soon", "name": "S", "created": "soon"},
    {"id": "created-empty", "name": "E", "created": ""},
    {"id": "created-min", "name": "M", "created": "0001-01-01T00:00:00"},
    {"id": "last-max", "name": "X", "lastSync": "9999-12-31T23:59:59.9999999Z"},
    {
        "id": "bad-connections",
        "name": "C",
        "dataConnections": [
            {"id": "conn-status-int", "status": 3, "platformName": "Xero"},
            {"id": "conn-platform-int", "status": "Linked", "platformName": 7},
            {"id": None, "status": "Linked"},
            {"id": "conn-times", "created": "0001-01-01T00:00:00", "lastSync": "nope"},
            "not a connection",
        ],
    },
    {"id": "connections-not-a-list", "name": "N", "dataConnections": {"id": "x"}},
    {"id": None, "name": "no id"},
    {"id": 17, "name": "int id"},
    {"id": "", "name": "empty id"},
    {"name": "missing id"},
    "not even an object",
    None,
]


async def test_one_malformed_company_costs_that_company_at_most() -> None:
    page = {"results": HOSTILE_COMPANIES, "totalResults": len(HOSTILE_COMPANIES)}
    async with mock_client(answer(page)) as client:
        companies = {c.id: c for c in await client.list_companies()}
        issues = client.parse_issues
    assert list(companies) == [
        "ok",
        "name-null",
        "name-int",
        "name-list",
        "created-soon",
        "created-empty",
        "created-min",
        "last-max",
        "bad-connections",
        "connections-not-a-list",
    ]
    assert companies["ok"].name == "Fine Ltd"
    for cid in ("name-null", "name-int", "name-list"):
        assert companies[cid].name is None
    assert companies["name-int"].unreadable == {"name": "42"}
    for cid in ("created-soon", "created-empty", "created-min"):
        assert companies[cid].created is None
    assert companies["last-max"].last_sync is None
    conns = {c.id: c for c in companies["bad-connections"].data_connections}
    assert list(conns) == ["conn-status-int", "conn-platform-int", "conn-times"]
    assert conns["conn-status-int"].status is None
    assert conns["conn-status-int"].platform_name == "Xero"
    assert conns["conn-platform-int"].platform_name is None
    assert conns["conn-platform-int"].status == "Linked"
    assert conns["conn-times"].created is None
    assert conns["conn-times"].last_sync is None
    assert companies["connections-not-a-list"].data_connections == []
    assert issues.malformed_fields == {
        "company.name": 2,
        "company.created": 2,
        "company.lastSync": 1,
        "company.dataConnections": 1,
        "connection.status": 1,
        "connection.platformName": 1,
        "connection.created": 1,
        "connection.lastSync": 1,
    }
    assert issues.skipped_records == {"company": 6, "connection": 2}


async def test_malformed_pull_operations_and_sync_settings_are_read_field_by_field() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/data/history"):
            body: Any = {
                "results": [
                    {"id": "op1", "status": 5, "requested": "0001-01-01T00:00:00"},
                    {"id": None, "status": "Complete"},
                    {"id": "op2", "progress": "lots", "isCompleted": "maybe"},
                ],
                "totalResults": 3,
            }
        else:
            body = {
                "clientId": 12,
                "settings": [
                    {"dataType": "invoices", "syncSchedule": "daily", "fetchOnFirstLink": True},
                    {"dataType": None, "syncSchedule": 24},
                    {"syncSchedule": 24},
                ],
            }
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        ops = await client.list_pull_operations("c1")
        settings = await client.get_sync_settings()
        issues = client.parse_issues
    assert [op.id for op in ops] == ["op1", "op2"]
    assert ops[0].status is None
    assert ops[0].requested is None
    assert ops[1].progress is None
    assert ops[1].is_completed is None
    assert [s.data_type for s in settings.settings] == ["invoices"]
    assert settings.settings[0].sync_schedule is None
    assert settings.settings[0].fetch_on_first_link is True
    assert settings.client_id is None
    assert issues.skipped_records == {"pull_operation": 1, "sync_setting": 2}
    assert issues.malformed_fields["pull_operation.status"] == 1
    assert issues.malformed_fields["sync_setting.syncSchedule"] == 1
    assert issues.malformed_fields["sync_settings.clientId"] == 1


# ---------------------------------------------------------- lone surrogates (item 4)


def test_lone_surrogates_become_the_replacement_character() -> None:
    raw = b'{"name": "Caf\\ud800 Ltd", "\\udfffkey": ["\\uDBFF", "ok \\ud83d\\ude00"]}'
    value = loads_json(raw)
    assert value == {"name": "Caf\ufffd Ltd", "\ufffdkey": ["\ufffd", "ok \U0001f600"]}
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # encodable: no surrogate left
    assert loads_json(b'{"name": "caf\xe9"}') == {"name": "caf\ufffd"}  # not UTF-8 either


async def test_lone_surrogates_in_answers_are_cleaned_once_at_the_boundary() -> None:
    companies = b'{"results": [{"id": "c1", "name": "A\\ud800B"}], "totalResults": 1}'
    status = b'{"invoices": {"dataType": "invoices", "currentStatus": "Compl\\udc00ete"}}'

    def handler(request: httpx.Request) -> httpx.Response:
        body = status if request.url.path.endswith("/dataStatus") else companies
        return httpx.Response(200, content=body)

    async with mock_client(handler) as client:
        [company] = await client.list_companies()
        statuses = await client.get_data_status("c1")
    assert company.name == "A\ufffdB"
    assert statuses["invoices"].current_status == "Compl\ufffdete"


# ------------------------------------------------- pagination that never ends (item 10)


async def test_next_links_that_change_every_page_end_in_a_pagination_error() -> None:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        body = {
            "results": [{"id": "a"}, {"id": "b"}],
            "_links": {"next": {"href": f"/companies?page=2&cursor={calls[0]}"}},
        }
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        with pytest.raises(CodatPaginationError, match="repeats items") as info:
            await asyncio.wait_for(client.list_companies(), 5)
    assert calls[0] == 2
    assert info.value.endpoint == "list-companies"


async def test_the_same_page_under_a_huge_total_ends_in_a_pagination_error() -> None:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        body = {"results": [{"id": "a"}, {"id": "b"}], "totalResults": 10**9}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        with pytest.raises(CodatPaginationError):
            await asyncio.wait_for(client.list_companies(page_size=2), 5)
    assert calls[0] == 2


async def test_new_items_forever_stop_at_the_page_cap() -> None:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        body = {"results": [{"id": f"c{calls[0]}"}], "totalResults": 10**9}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler, max_pages=20) as client:
        with pytest.raises(CodatPaginationError, match="cap of 20 pages"):
            await asyncio.wait_for(client.list_companies(page_size=1), 5)
    assert calls[0] == 20


async def test_a_page_that_mostly_repeats_ends_in_a_pagination_error() -> None:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        ids = ["a", "b", "c", f"new{calls[0]}"]  # one new item a page, under a huge total
        body = {"results": [{"id": i} for i in ids], "totalResults": 10**9}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        with pytest.raises(CodatPaginationError, match=r"repeats items already listed \(3 of 4"):
            await asyncio.wait_for(client.list_companies(page_size=4), 5)
    assert calls[0] == 2


async def test_pages_past_total_results_end_in_a_pagination_error() -> None:
    # totalResults says 50 and the first page holds 5: 10 pages. A server that then goes
    # on one item a page is stopped at 2 x 10 + 2 pages, not after 46.
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        n = calls[0]
        ids = [f"c{n}-{i}" for i in range(5 if n == 1 else 1)]
        body = {"results": [{"id": i} for i in ids], "totalResults": 50}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        with pytest.raises(CodatPaginationError, match="22 pages of at most 5"):
            await asyncio.wait_for(client.list_companies(page_size=5), 5)
    assert calls[0] == 22


async def test_a_few_repeats_from_companies_added_while_listing_are_fine() -> None:
    # Two companies inserted at the front between page 1 and page 2 shift the offsets:
    # page 2 starts with two companies of page 1. The collector drops the repeats.
    pages = {1: ["c0", "c1", "c2", "c3"], 2: ["c2", "c3", "c4", "c5"], 3: ["c6"]}

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        body = {"results": [{"id": i} for i in pages[page]], "totalResults": 9}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        companies = await client.list_companies(page_size=4)
    assert [c.id for c in companies] == ["c0", "c1", "c2", "c3", "c2", "c3", "c4", "c5", "c6"]


async def test_a_well_behaved_listing_is_unchanged() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        ids = [f"c{i}" for i in range((page - 1) * 3, min(page * 3, 7))]
        body = {"results": [{"id": i} for i in ids], "totalResults": 7, "pageNumber": page}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with mock_client(handler) as client:
        companies = await client.list_companies(page_size=3)
    assert [c.id for c in companies] == [f"c{i}" for i in range(7)]


# ------------------------------------------ deadlines and size caps (item 11, loopback)


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_body_that_drips_hits_the_request_deadline(transport: str) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 10_000
        await response.prepare(request)
        for _ in range(10_000):
            await response.write(b" ")
            await asyncio.sleep(0.3)  # each read well within the 1 s read timeout
        return response

    with LoopbackServer(drip) as server:
        client = CodatClient(
            API_KEY,
            base_url=server.base_url,
            timeout=1.0,
            deadline=2.0,
            retry=ONE_TRY,
            rate_limit=NO_LIMIT,
            transport=collector_transport(transport),  # type: ignore[arg-type]
        )
        async with client:
            start = time.monotonic()
            with pytest.raises(CodatDeadlineError) as info:
                await asyncio.wait_for(client.get_sync_settings(), 8)
            elapsed = time.monotonic() - start
    assert 1.9 <= elapsed < 4.0
    assert isinstance(info.value, CodatTimeoutError)  # retried like a read timeout
    assert info.value.request_sent is True
    assert "2 s request deadline" in str(info.value)


def test_the_default_deadline_follows_the_timeout() -> None:
    assert CodatClient(API_KEY, timeout=2.0).deadline == 10.0
    assert CodatClient(API_KEY, timeout=30.0).deadline == 90.0
    assert CodatClient(API_KEY, timeout=2.0, deadline=4.0).deadline == 4.0


def _gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    chunk = b" " * (1 << 20)
    parts = [packer.compress(b'{"results": [], "padding": "')]
    for _ in range(inflated >> 20):
        parts.append(packer.compress(chunk))
    parts.append(packer.compress(b'"}'))
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_gzip_bomb_stops_at_the_size_cap(transport: str) -> None:
    bomb = _gzip_bomb(256 << 20)  # 256 MB of JSON in ~250 kB
    assert len(bomb) < 1 << 20
    requests = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        requests[0] += 1
        return web.Response(
            body=bomb,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    with LoopbackServer(handler) as server:
        client = CodatClient(
            API_KEY,
            base_url=server.base_url,
            retry=RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.01, jitter=0.0),
            rate_limit=NO_LIMIT,
            max_response_bytes=8 << 20,
            transport=collector_transport(transport),  # type: ignore[arg-type]
        )
        async with client:
            start = time.monotonic()
            with pytest.raises(CodatResponseTooLargeError) as info:
                await asyncio.wait_for(client.get_company("c1"), 8)
            elapsed = time.monotonic() - start
    assert elapsed < 8
    assert info.value.limit == 8 << 20
    assert info.value.attempts == 1
    assert requests[0] == 1


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b" " * 5000 + b"]")

    async with mock_client(handler, max_response_bytes=1000) as client:
        with pytest.raises(CodatResponseTooLargeError, match="Content-Length 5,002"):
            await client.get_data_status("c1")


# ----------------------------------------------------------- path segments (item 16)


@pytest.mark.parametrize(
    ("company_id", "segment"),
    [
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("...", "%2E%2E%2E"),
        ("a.b", "a.b"),
        ("a/b", "a%2Fb"),
        ("../x", "..%2Fx"),
        ("x y", "x%20y"),
        ("q?x=1", "q%3Fx%3D1"),
        ("h#f", "h%23f"),
        ("50%", "50%25"),
        ("caf\u00e9", "caf%C3%A9"),
        ("8a210b68-6988-11ed-a1eb-0242ac120002", "8a210b68-6988-11ed-a1eb-0242ac120002"),
    ],
)
@pytest.mark.parametrize("base_url", ["http://codat.test", "http://codat.test/api/"])
async def test_path_segments_are_encoded_and_never_collapsed(
    company_id: str, segment: str, base_url: str
) -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200, content=b"{}")

    async with mock_client(handler, base_url=base_url) as client:
        await client.get_data_status(company_id)
        await client.get_company_sync_settings(company_id)
    prefix = "/api" if "/api" in base_url else ""
    assert seen == [
        f"{prefix}/companies/{segment}/dataStatus".encode(),
        f"{prefix}/companies/{segment}/syncSettings".encode(),
    ]


async def test_dot_company_ids_reach_their_own_paths_over_loopback() -> None:
    fake = FakeCodat(statuses={"..": {"invoices": good_status()}, ".": {}})
    with LoopbackServer(fake=fake) as server:
        client = CodatClient(API_KEY, base_url=server.base_url, retry=ONE_TRY, rate_limit=NO_LIMIT)
        async with client:
            dots = await client.get_data_status("..")
            dot = await client.get_data_status(".")
    assert set(dots) == {"invoices"}
    assert dot == {}
    assert fake.raw_paths == ["/companies/%2E%2E/dataStatus", "/companies/%2E/dataStatus"]


def test_parse_issues_since_counts_only_what_came_after() -> None:
    issues = ParseIssues()
    parse_company({"id": "a", "name": 1}, issues)
    before = issues.copy()
    parse_company({"id": None}, issues)
    parse_company({"id": "b", "created": "x"}, issues)
    assert issues.since(before).as_meta() == {
        "malformed_fields": {"company.created": 1},
        "skipped_records": {"company": 1},
    }
