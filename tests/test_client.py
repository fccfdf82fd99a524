"""The Codat client's logic, with ``httpx.MockTransport`` as the server.

Wire behaviour (real sockets, timeouts, resets) is in ``test_client_wire.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

import auditor.codat as codat
from auditor.codat import (
    CodatAuthError,
    CodatClient,
    CodatConnectError,
    CodatError,
    CodatHTTPError,
    CodatNotFoundError,
    CodatQuotaExhaustedError,
    CodatRateLimitError,
    CodatResponseError,
    CodatServerError,
    CodatTimeoutError,
    CodatTransportError,
    DailyQuota,
    DatasetAlreadyInProgressError,
    DataStatusEntryError,
    RateLimitPolicy,
    RetryPolicy,
    parse_reset,
    parse_reset_at,
    parse_retry_after,
)

KEY = "sk-test-SECRET-0123456789"
TOKEN = base64.b64encode(KEY.encode()).decode()
FAST = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.02, jitter=0.005)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


def client(
    handler: Handler,
    *,
    retry: RetryPolicy = FAST,
    rate_limit: RateLimitPolicy = NO_LIMIT,
    base_url: str = "http://codat.test",
) -> CodatClient:
    return CodatClient(
        KEY,
        base_url=base_url,
        retry=retry,
        rate_limit=rate_limit,
        transport=httpx.MockTransport(handler),
    )


def error_body(status: int, error: str, **extra: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "service": "PublicApi",
        "error": error,
        "correlationId": "corr-123",
        "canBeRetried": "Unknown",
        "detailedErrorCode": 0,
        **extra,
    }


def pull_operation(dataset_id: str = "d1", status: str = "Queued") -> dict[str, Any]:
    return {
        "id": dataset_id,
        "companyId": "c1",
        "connectionId": "k1",
        "dataType": "invoices",
        "status": status,
        "requested": "2024-05-01T10:00:00.0000000Z",
        "progress": 0,
        "isCompleted": False,
        "isErrored": False,
    }


class Script:
    """A handler answering from a list, one item per request (the last one repeats)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


# ----------------------------------------------------------------------------- surface


def test_package_reexports_its_public_surface() -> None:
    for name in codat.__all__:
        assert hasattr(codat, name), name
    assert issubclass(DatasetAlreadyInProgressError, CodatHTTPError)
    for cls in (CodatAuthError, CodatNotFoundError, CodatRateLimitError, CodatServerError):
        assert issubclass(cls, CodatHTTPError)
    for cls in (CodatConnectError, CodatTimeoutError):
        assert issubclass(cls, CodatTransportError)
    assert issubclass(DataStatusEntryError, CodatResponseError)
    for cls in (CodatTransportError, CodatResponseError, CodatHTTPError):
        assert issubclass(cls, CodatError)


async def test_sends_basic_auth_and_accept_json() -> None:
    script = Script(httpx.Response(200, json={"settings": []}))
    async with client(script) as c:
        await c.get_sync_settings()
    (request,) = script.requests
    assert request.headers["authorization"] == f"Basic {TOKEN}"
    assert request.headers["accept"] == "application/json"
    assert request.url.path == "/profile/syncSettings"


# ------------------------------------------------------------------------------ paging


def page(
    items: list[dict[str, Any]], number: int, size: int, total: int, next_href: str | None
) -> dict[str, Any]:
    links: dict[str, Any] = {"self": {"href": "/companies"}, "current": {"href": "x"}}
    if next_href:
        links["next"] = {"href": next_href}
    return {
        "results": items,
        "pageNumber": number,
        "pageSize": size,
        "totalResults": total,
        "_links": links,
    }


async def test_companies_follow_links_next_across_pages() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        n = int(params["page"])
        nxt = f"/companies?page={n + 1}&pageSize=2&query=x" if n < 4 else None
        items = [{"id": f"c{n}-{i}", "name": f"n{n}"} for i in range(2 if n < 4 else 1)]
        return httpx.Response(200, json=page(items, n, 2, 7, nxt))

    async with client(handler) as c:
        companies = await c.list_companies(page_size=2, query="x", order_by="-created")
    assert [co.id for co in companies] == [
        "c1-0", "c1-1", "c2-0", "c2-1", "c3-0", "c3-1", "c4-0",
    ]  # fmt: skip
    assert [p["page"] for p in seen] == ["1", "2", "3", "4"]
    # The first request carries our query and order; followed links keep them.
    assert seen[0] == {"query": "x", "orderBy": "-created", "page": "1", "pageSize": "2"}
    assert all(p["orderBy"] == "-created" and p["query"] == "x" for p in seen)


async def test_paging_without_links_uses_page_number_and_total() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        items = [{"id": f"c{n}"}]
        return httpx.Response(
            200, json={"results": items, "pageNumber": n, "pageSize": 1, "totalResults": 3}
        )

    async with client(handler) as c:
        assert [co.id async for co in c.iter_companies(page_size=1)] == ["c1", "c2", "c3"]


async def test_paging_stops_on_an_empty_page_even_if_total_says_more() -> None:
    script = Script(
        httpx.Response(200, json=page([{"id": "a"}], 1, 1, 5, "/companies?page=2&pageSize=1")),
        httpx.Response(200, json=page([], 2, 1, 5, "/companies?page=3&pageSize=1")),
    )
    async with client(script) as c:
        assert [co.id for co in await c.list_companies(page_size=1)] == ["a"]
    assert len(script.requests) == 2


async def test_next_link_to_another_host_is_not_followed() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        n = int(request.url.params["page"])
        nxt = f"http://evil.example/companies?page={n + 1}&pageSize=1"
        return httpx.Response(200, json=page([{"id": f"c{n}"}], n, 1, 2, nxt))

    async with client(handler) as c:
        assert [co.id for co in await c.list_companies(page_size=1)] == ["c1", "c2"]
    assert set(hosts) == {"codat.test"}


async def test_pull_operations_are_paged_with_query_and_order() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/companies/c1/data/history"
        n = int(request.url.params["page"])
        assert request.url.params["query"] == "dataType=invoices"
        assert request.url.params["orderBy"] == "-requested"
        href = f"/companies/c1/data/history?page={n + 1}&pageSize=2" if n < 3 else None
        items = [pull_operation(f"d{n}{i}") for i in range(2)]
        return httpx.Response(200, json=page(items, n, 2, 6, href))

    async with client(handler) as c:
        ops = await c.list_pull_operations(
            "c1", page_size=2, query="dataType=invoices", order_by="-requested"
        )
        first = await c.list_pull_operations("c1", page_size=2, query="dataType=invoices",
                                             order_by="-requested", max_results=3)  # fmt: skip
    assert [o.id for o in ops] == ["d10", "d11", "d20", "d21", "d30", "d31"]
    assert [o.id for o in first] == ["d10", "d11", "d20"]
    assert ops[0].requested == datetime(2024, 5, 1, 10, tzinfo=UTC)


async def test_connections_are_paged() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        items = [{"id": f"k{n}", "platformName": "Xero", "status": "Linked"}]
        return httpx.Response(
            200, json={"results": items, "pageNumber": n, "pageSize": 1, "totalResults": 3}
        )

    async with client(handler) as c:
        conns = await c.list_connections("c1", page_size=1)
    assert [k.id for k in conns] == ["k1", "k2", "k3"]


async def test_page_size_is_bounded() -> None:
    async with client(Script(httpx.Response(200, json={}))) as c:
        with pytest.raises(ValueError, match="page_size"):
            await c.list_companies(page_size=5001)


async def test_a_page_that_is_not_a_page_is_a_response_error() -> None:
    async with client(Script(httpx.Response(200, json=[1, 2]))) as c:
        with pytest.raises(CodatResponseError, match="list-companies"):
            await c.list_companies()


# ----------------------------------------------------------------------- other endpoints


async def test_get_company_connections_and_sync_settings() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/companies/c1":
            return httpx.Response(200, json={"id": "c1", "name": "Acme", "dataConnections": []})
        if path == "/companies/c1/syncSettings":
            settings = [{"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": 24,
                         "syncOrder": 0}]  # fmt: skip
            return httpx.Response(200, json={"companyId": "c1", "settings": settings})
        return httpx.Response(404, json=error_body(404, "no"))

    async with client(handler) as c:
        company = await c.get_company("c1")
        settings = await c.get_company_sync_settings("c1")
    assert company.name == "Acme"
    assert settings.settings[0].sync_schedule == 24


async def test_refresh_all_expects_204_and_refresh_one_returns_a_pull_operation() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/data/all"):
            return httpx.Response(204)
        return httpx.Response(200, json=pull_operation("new"))

    async with client(handler) as c:
        assert await c.refresh_all("c1") is None
        op = await c.refresh_data_type("c1", "invoices", connection_id="k1")
        await c.refresh_data_type("c1", "bills")
    assert op.id == "new"
    assert op.status == "Queued"
    assert [(r.method, r.url.path, dict(r.url.params)) for r in requests] == [
        ("POST", "/companies/c1/data/all", {}),
        ("POST", "/companies/c1/data/queue/invoices", {"connectionId": "k1"}),
        ("POST", "/companies/c1/data/queue/bills", {}),
    ]


async def test_path_parameters_are_escaped() -> None:
    script = Script(httpx.Response(200, json={}))
    async with client(script) as c:
        await c.get_data_status("a/b?c")
    assert script.requests[0].url.raw_path == b"/companies/a%2Fb%3Fc/dataStatus"


# --------------------------------------------------------------------------- dataStatus


async def test_data_status_reads_nulls_as_never_synced_and_keeps_unknown_types() -> None:
    body = {
        "invoices": {
            "dataType": "invoices",
            "currentStatus": "Complete",
            "lastSuccessfulSync": "2019-06-11T13:26:54.6884704Z",
            "latestSyncId": "s1",
            "latestSuccessfulSyncId": "s1",
        },
        "suppliers": {"dataType": "suppliers"},
        "bills": None,
        "someNewType": {"dataType": "someNewType", "currentStatus": "Whatever"},
    }
    async with client(Script(httpx.Response(200, json=body))) as c:
        statuses = await c.get_data_status("c1")
    # A null entry is the never-synced form: the type is there with no status (a company whose
    # entries were all null used to vanish from the audit without an error).
    assert set(statuses) == {"invoices", "suppliers", "bills", "someNewType"}
    assert statuses["bills"].current_status is None
    assert statuses["invoices"].last_successful_sync == datetime(
        2019, 6, 11, 13, 26, 54, 688470, tzinfo=UTC
    )
    assert statuses["suppliers"].current_status is None
    assert statuses["someNewType"].current_status == "Whatever"


async def test_data_status_key_wins_over_the_entry_data_type() -> None:
    body = {"invoices": {"dataType": "bills", "currentStatus": "Complete"},
            "payments": {"currentStatus": "Queued"}}  # fmt: skip
    async with client(Script(httpx.Response(200, json=body))) as c:
        statuses = await c.get_data_status("c1")
    assert statuses["invoices"].data_type == "invoices"
    assert statuses["payments"].data_type == "payments"


async def test_unreadable_data_status_entries_keep_the_rest() -> None:
    body = {
        "invoices": {"dataType": "invoices", "currentStatus": "Complete"},
        "bills": {"dataType": "bills", "lastSuccessfulSync": "not a date"},
        "payments": "garbage",
        "customers": {"dataType": "customers", "currentStatus": 42},
    }
    async with client(Script(httpx.Response(200, json=body))) as c:
        with pytest.raises(DataStatusEntryError) as info:
            await c.get_data_status("c1")
    exc = info.value
    # A field that cannot be read costs that field; only an entry that is not an object
    # is unreadable as a whole (issue 12, item 3).
    assert set(exc.statuses) == {"invoices", "bills", "customers"}
    assert set(exc.invalid) == {"payments"}
    assert exc.statuses["bills"].last_successful_sync is None
    assert exc.statuses["bills"].unreadable == {"lastSuccessfulSync": "not a date"}
    assert exc.statuses["customers"].current_status is None
    assert exc.statuses["customers"].unreadable == {"currentStatus": "42"}
    assert exc.endpoint == "get-company-data-status"
    assert "1 unreadable dataStatus entry" in str(exc)
    assert exc.attempts == 1  # a shape problem is not retried


async def test_data_status_body_that_is_not_an_object() -> None:
    async with client(Script(httpx.Response(200, json=["x"]))) as c:
        with pytest.raises(CodatResponseError, match="not an object"):
            await c.get_data_status("c1")


# ----------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, CodatHTTPError),
        (401, CodatAuthError),
        (402, CodatAuthError),
        (403, CodatAuthError),
        (404, CodatNotFoundError),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    status: int, cls: type[CodatHTTPError]
) -> None:
    script = Script(httpx.Response(status, json=error_body(status, "Nope.")))
    async with client(script) as c:
        with pytest.raises(cls) as info:
            await c.get_company("c1")
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.error == "Nope."
    assert exc.service == "PublicApi"
    assert exc.correlation_id == "corr-123"
    assert exc.can_be_retried == "Unknown"
    assert exc.detailed_error_code == 0
    assert (exc.method, exc.path, exc.endpoint) == ("GET", "/companies/c1", "get-company")
    assert exc.attempts == 1
    assert len(script.requests) == 1
    assert str(exc) == f"HTTP {status}: Nope. [GET /companies/c1, 1 attempt]"


async def test_validation_details_are_kept() -> None:
    validation = {"errors": [{"itemId": "x", "message": "bad", "validatorName": "v"}]}
    script = Script(httpx.Response(400, json=error_body(400, "Invalid", validation=validation)))
    async with client(script) as c:
        with pytest.raises(CodatHTTPError) as info:
            await c.get_company("c1")
    assert info.value.validation == validation


async def test_error_body_that_is_not_json_still_gives_a_typed_error() -> None:
    script = Script(httpx.Response(404, text="<html>gateway</html>"))
    async with client(script) as c:
        with pytest.raises(CodatNotFoundError) as info:
            await c.get_company("c1")
    assert info.value.error is None
    assert info.value.error_message is None


async def test_odd_error_fields_are_read_leniently() -> None:
    body = {"statusCode": "404", "error": "gone", "canBeRetried": False,
            "detailedErrorCode": "abc", "validation": "not-an-object"}  # fmt: skip
    async with client(Script(httpx.Response(404, json=body))) as c:
        with pytest.raises(CodatNotFoundError) as info:
            await c.get_company("c1")
    exc = info.value
    assert exc.error == "gone"
    assert exc.can_be_retried == "False"
    assert exc.detailed_error_code is None
    assert exc.validation is None


IN_PROGRESS = (
    "DatasetAlreadyInProgressException: Cannot queue invoices sync for c1 as previous sync "
    "d-running is still in progress"
)


@pytest.mark.parametrize("status", [400, 409, 500])
async def test_dataset_already_in_progress_whatever_the_status(status: int) -> None:
    script = Script(httpx.Response(status, json=error_body(status, IN_PROGRESS)))
    async with client(script) as c:
        with pytest.raises(DatasetAlreadyInProgressError) as info:
            await c.refresh_data_type("c1", "invoices")
    exc = info.value
    assert (exc.data_type, exc.company_id, exc.dataset_id) == ("invoices", "c1", "d-running")
    assert exc.status_code == status
    assert len(script.requests) == 1  # never retried, even on a 500


# ------------------------------------------------------------------------------ retries


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_reads_are_retried_on_transient_statuses(status: int) -> None:
    script = Script(
        httpx.Response(status, json=error_body(status, "later")),
        httpx.Response(200, json={"id": "c1"}),
    )
    async with client(script) as c:
        company = await c.get_company("c1")
        stats = c.stats.as_dict()
    assert company.id == "c1"
    assert len(script.requests) == 2
    assert stats["retries"] == {"get-company": 1, "total": 1}
    assert stats["requests"]["get-company"] == 2
    assert stats["rate_limited"]["total"] == (1 if status == 429 else 0)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
async def test_reads_are_retried_on_transport_failures(failure: Exception) -> None:
    script = Script(failure, httpx.Response(200, json={"id": "c1"}))
    async with client(script) as c:
        assert (await c.get_company("c1")).id == "c1"
    assert len(script.requests) == 2


async def test_reads_are_retried_on_malformed_json() -> None:
    script = Script(
        httpx.Response(200, content=b'{"invoices": {"dataType": "inv'),
        httpx.Response(200, content=b"\xff\xfe not utf-8"),
        httpx.Response(200, json={"invoices": {"dataType": "invoices"}}),
    )
    async with client(script) as c:
        statuses = await c.get_data_status("c1")
    assert set(statuses) == {"invoices"}
    assert len(script.requests) == 3


async def test_giving_up_records_the_attempts_made() -> None:
    script = Script(httpx.Response(503, json=error_body(503, "down")))
    async with client(script) as c:
        with pytest.raises(CodatServerError) as info:
            await c.get_data_status("c1")
        stats = c.stats.as_dict()
    assert info.value.attempts == FAST.max_attempts == len(script.requests)
    assert str(info.value).endswith("[GET /companies/c1/dataStatus, 4 attempts]")
    assert stats["failures"] == {"get-company-data-status": 1, "total": 1}


async def test_malformed_json_gives_up_as_a_response_error_naming_the_endpoint() -> None:
    script = Script(httpx.Response(200, content=b"<html>"))
    async with client(script) as c:
        with pytest.raises(CodatResponseError) as info:
            await c.get_pull_operation("c1", "d1")
    assert "malformed JSON in the answer to get-pull-operation" in str(info.value)
    assert info.value.attempts == 4


async def test_transport_errors_are_typed() -> None:
    async with client(Script(httpx.ConnectError("refused"))) as c:
        with pytest.raises(CodatConnectError) as info:
            await c.get_company("c1")
    assert info.value.request_sent is False
    async with client(Script(httpx.ReadTimeout("slow"))) as c:
        with pytest.raises(CodatTimeoutError) as timeout:
            await c.get_company("c1")
    assert timeout.value.request_sent is True


async def test_total_time_bounds_the_retries() -> None:
    policy = RetryPolicy(max_attempts=100, max_total_seconds=0.3, initial_wait=0.1,
                         max_wait=0.1, jitter=0.0)  # fmt: skip
    script = Script(httpx.Response(500, json=error_body(500, "boom")))
    start = time.monotonic()
    async with client(script, retry=policy) as c:
        with pytest.raises(CodatServerError):
            await c.get_company("c1")
    elapsed = time.monotonic() - start
    assert elapsed < 0.5
    assert 2 <= len(script.requests) <= 4


# ------------------------------------------------------------- queue requests: no double-queue


@pytest.mark.parametrize(
    "first",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.Response(429, json=error_body(429, "slow down"), headers={"Retry-After": "0"}),
        httpx.Response(503, json=error_body(503, "maintenance")),
        httpx.Response(408, json=error_body(408, "request timeout")),
    ],
)
async def test_queue_requests_retry_only_when_nothing_was_queued(
    first: httpx.Response | Exception,
) -> None:
    script = Script(first, httpx.Response(200, json=pull_operation("d2")))
    async with client(script) as c:
        op = await c.refresh_data_type("c1", "invoices")
        await c.refresh_all("c1")  # answered 200-with-body by the script: fine, ignored
    assert op.id == "d2"


@pytest.mark.parametrize(
    ("first", "cls"),
    [
        (httpx.ReadTimeout("slow read"), CodatTimeoutError),
        (httpx.WriteTimeout("slow write"), CodatTimeoutError),
        (httpx.ReadError("connection reset by peer"), CodatTransportError),
        (httpx.RemoteProtocolError("Server disconnected"), CodatTransportError),
        (httpx.Response(500, json=error_body(500, "boom")), CodatServerError),
        (httpx.Response(502, json=error_body(502, "bad gateway")), CodatServerError),
        (httpx.Response(504, json=error_body(504, "gateway timeout")), CodatServerError),
        (httpx.Response(200, content=b"{not json"), CodatResponseError),
    ],
)
@pytest.mark.parametrize("call", ["one", "all"])
async def test_queue_requests_are_not_retried_when_codat_may_have_queued(
    first: httpx.Response | Exception, cls: type[CodatError], call: str
) -> None:
    script = Script(first, httpx.Response(200, json=pull_operation("d2")))
    async with client(script) as c:
        if call == "all" and isinstance(first, httpx.Response) and first.status_code == 200:
            await c.refresh_all("c1")  # data/all has no body to read: any 2xx is success
            assert len(script.requests) == 1
            return
        send = c.refresh_data_type("c1", "invoices") if call == "one" else c.refresh_all("c1")
        with pytest.raises(cls) as info:
            await send
    if isinstance(info.value, CodatTransportError):
        assert info.value.request_sent is True
    assert len(script.requests) == 1
    assert info.value.attempts == 1


# --------------------------------------------------------------------------- Retry-After


def test_parse_retry_after_seconds_and_dates() -> None:
    now = datetime(2024, 1, 1, 12, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now.timestamp()) == 0.0
    assert parse_retry_after("2024-01-01T12:00:10Z", now=now.timestamp()) == 10.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None


def test_parse_reset_delta_epoch_and_dates() -> None:
    now = 1_700_000_000.0
    assert parse_reset("12", now=now) == 12.0
    assert parse_reset(str(now + 5), now=now) == pytest.approx(5.0)
    assert parse_reset(str(int((now + 5) * 1000)), now=now) == pytest.approx(5.0)
    assert parse_reset("2023-11-14T22:13:25Z", now=now) == pytest.approx(5.0)
    assert parse_reset("whenever", now=now) is None


async def test_retry_after_seconds_is_honoured() -> None:
    script = Script(
        httpx.Response(429, json=error_body(429, "slow"), headers={"Retry-After": "0.4"}),
        httpx.Response(200, json={"id": "c1"}),
    )
    async with client(script) as c:
        start = time.monotonic()
        await c.get_company("c1")
        elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 1.0


async def test_retry_after_http_date_is_honoured() -> None:
    # HTTP dates have whole seconds: ask for "now + 2 s", expect a wait of 1-2 s.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    script = Script(
        httpx.Response(503, json=error_body(503, "maintenance"), headers={"Retry-After": when}),
        httpx.Response(200, json={"id": "c1"}),
    )
    async with client(script) as c:
        start = time.monotonic()
        await c.get_company("c1")
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.5


async def test_a_429_pauses_every_task_of_the_client() -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, json=error_body(429, "slow"), headers={"Retry-After": "0.3"})
        return httpx.Response(200, json={"id": "x"})

    async with client(handler) as c:
        await c.get_company("a")  # 429 then retried after 0.3 s
        start = time.monotonic()
        await c.get_company("b")  # a different task right after: not held any longer
        assert time.monotonic() - start < 0.2
        c.limiter.pause(0.3)
        start = time.monotonic()
        await asyncio.gather(c.get_company("c"), c.get_company("d"))
        assert time.monotonic() - start >= 0.3


async def test_a_retry_after_beyond_the_policy_is_not_waited_for() -> None:
    policy = RetryPolicy(max_attempts=5, max_retry_after=1.0, max_total_seconds=600)
    script = Script(
        httpx.Response(503, json=error_body(503, "maintenance"), headers={"Retry-After": "3600"}),
    )
    async with client(script, retry=policy) as c:
        start = time.monotonic()
        with pytest.raises(CodatServerError) as info:
            await c.get_company("c1")
    assert time.monotonic() - start < 0.5
    assert info.value.retry_after == 3600
    assert info.value.attempts == 1


async def test_a_429_past_the_bound_is_the_daily_quota_and_stops_every_request() -> None:
    # docs.codat.io/using-the-api/rate-limits: the quota resets at 00:00 UTC, a 429 carries
    # Retry-After until then. Past quota_retry_after_bound it is not waited for, not retried,
    # and no later call sends anything.
    reset = "Wed, 02 Dec 2026 00:00:00 GMT"
    quota = {"X-Rate-Limit-Limit": "2000", "X-Rate-Limit-Remaining": "0",
             "X-Rate-Limit-Reset": reset}  # fmt: skip
    script = Script(
        httpx.Response(
            429, json=error_body(429, "slow"), headers={**quota, "Retry-After": "3600"}
        ),
    )
    limits = RateLimitPolicy(requests_per_minute=None, quota_retry_after_bound=300)
    async with client(script, rate_limit=limits) as c:
        start = time.monotonic()
        with pytest.raises(CodatQuotaExhaustedError) as info:
            await c.get_company("c1")
        with pytest.raises(CodatQuotaExhaustedError) as again:
            await c.get_data_status("c2")  # refused before sending: the script has no answer
        assert c.stats.requests.total() == 1
    assert time.monotonic() - start < 0.5
    exc = info.value
    assert exc.status_code == 429
    assert exc.retry_after == 3600
    assert exc.attempts == 1
    assert exc.resets_at == datetime(2026, 12, 2, tzinfo=UTC)
    assert "2026-12-02 00:00 UTC" in str(exc)
    assert "2026-12-02 00:00 UTC" in str(again.value)
    assert again.value.endpoint == "get-company-data-status"


async def test_a_429_within_the_bound_is_the_minute_ceiling_and_is_waited_for() -> None:
    # Retry-After 1.2 s is past max_retry_after and max_total_seconds, within the quota
    # bound: the per-minute ceiling, waited for, not a per-company failure.
    policy = RetryPolicy(max_retry_after=0.5, max_total_seconds=0.5)
    script = Script(
        httpx.Response(429, json=error_body(429, "slow"), headers={"Retry-After": "1.2"}),
        httpx.Response(200, json={"id": "c1"}),
    )
    async with client(script, retry=policy) as c:
        start = time.monotonic()
        await c.get_company("c1")
    assert 1.2 <= time.monotonic() - start < 2.0

# ---------------------------------------------------------------------------- limiter


def test_bucket_never_lets_a_window_exceed_the_limit() -> None:
    for rpm in (1, 7, 60, 100, 999, 1000, 1500, 10_000):
        policy = RateLimitPolicy(requests_per_minute=rpm)
        bucket = policy.bucket()
        assert bucket is not None
        capacity, period = bucket
        most_in_a_window = capacity + capacity / period * 60.0
        assert most_in_a_window <= rpm or (capacity == 1 and capacity / period * 60 < 1)
        if rpm >= 100:  # steady throughput within 5 % of the limit
            assert capacity / period * 60.0 >= 0.95 * rpm
    assert RateLimitPolicy(requests_per_minute=None).bucket() is None


def test_rate_limit_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimitPolicy(requests_per_minute=0)
    with pytest.raises(ValueError, match="max_concurrent_per_company"):
        RateLimitPolicy(max_concurrent_per_company=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_at_most_n_requests_in_flight_per_company() -> None:
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        company = request.url.path.split("/")[2]
        in_flight[company] = in_flight.get(company, 0) + 1
        peak[company] = max(peak.get(company, 0), in_flight[company])
        await asyncio.sleep(0.01)
        in_flight[company] -= 1
        return httpx.Response(200, json={})

    policy = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=3)
    async with client(handler, rate_limit=policy) as c:
        await asyncio.gather(*(c.get_data_status(co) for co in ["a", "b"] * 20))
        assert c.limiter.companies_in_flight == 0  # semaphores dropped when unused
    assert peak == {"a": 3, "b": 3}


async def test_requests_per_minute_spaces_requests() -> None:
    # 600/min in 1-s windows: 10 per second, burst 1, so 11 requests need about a second.
    policy = RateLimitPolicy(requests_per_minute=600, window_seconds=1.0)
    async with client(Script(httpx.Response(200, json={})), rate_limit=policy) as c:
        start = time.monotonic()
        await asyncio.gather(*(c.get_data_status(f"c{i}") for i in range(11)))
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 1.6


def _quota_headers(remaining: int, limit: int = 1000) -> dict[str, str]:
    return {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": "2026-12-02T00:00:00Z"}  # fmt: skip


async def test_the_quota_headers_never_pause_a_request() -> None:
    # X-Rate-Limit-* describe the daily quota, not a window: a low Remaining above the
    # reserve is no reason to wait (it resets at midnight).
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return httpx.Response(200, json={}, headers=_quota_headers(500 - len(calls)))

    async with client(handler) as c:
        for company in "abc":
            await c.get_data_status(company)
        assert c.limiter.quota.remaining == 497
        assert c.limiter.quota.limit == 1000
    assert calls[-1] - calls[0] < 0.2


async def test_the_client_stops_before_the_quota_reserve() -> None:
    # 1,000 a day and a 10 % reserve: 100 requests are the customer's own application's.
    # After "a" 101 are left: "b" may take the quota to 100; "c" would cross the reserve.
    answers = iter([101, 100])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers=_quota_headers(next(answers)))

    async with client(handler) as c:
        await c.get_data_status("a")
        await c.get_data_status("b")
        with pytest.raises(CodatQuotaExhaustedError) as info:
            await c.get_data_status("c")
        assert c.stats.requests.total() == 2
    exc = info.value
    assert exc.status_code is None  # refused by us, not by Codat
    assert exc.remaining == 100
    assert exc.limit == 1000
    assert exc.resets_at == datetime(2026, 12, 2, tzinfo=UTC)
    assert "reserve" in str(exc)
    assert "2026-12-02 00:00 UTC" in str(exc)


async def test_out_of_order_answers_never_raise_the_remaining_quota() -> None:
    quota = DailyQuota(0.0)
    quota.observe(_quota_headers(50))
    quota.observe(_quota_headers(60))  # an earlier request's answer, arriving late
    assert quota.remaining == 50
    later = {**_quota_headers(990), "X-Rate-Limit-Reset": "2026-12-03T00:00:00Z"}
    quota.observe(later)  # a new quota period
    assert quota.remaining == 990
    assert quota.resets_at == datetime(2026, 12, 3, tzinfo=UTC)
    quota.pending = 990
    assert quota.refusal() is not None  # every request left is already in flight


def test_parse_reset_at_reads_dates_epochs_and_deltas() -> None:
    now = 1_700_000_000.0
    at = datetime.fromtimestamp(now, UTC)
    assert parse_reset_at("Wed, 02 Dec 2026 00:00:00 GMT") == datetime(2026, 12, 2, tzinfo=UTC)
    assert parse_reset_at("2026-12-02T00:00:00") == datetime(2026, 12, 2, tzinfo=UTC)
    assert parse_reset_at("2023-01-01T00:00:00Z", now=now) == datetime(2023, 1, 1, tzinfo=UTC)
    assert parse_reset_at("60", now=now) == at + timedelta(seconds=60)
    assert parse_reset_at(str(now + 5), now=now) == at + timedelta(seconds=5)
    for bad in (None, "", "soon", "nan", "-1"):
        assert parse_reset_at(bad, now=now) is None


# ------------------------------------------------------------------------------ secrets


async def test_the_key_is_in_no_repr_exception_or_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"bad key {KEY} / Basic {TOKEN}"
    script = Script(
        httpx.Response(500, json=error_body(500, echo)),
        httpx.ConnectError(f"refused while sending Authorization: Basic {TOKEN}"),
        httpx.Response(401, json=error_body(401, echo, validation={"errors": [{"message": KEY}]})),
    )
    async with client(script) as c:
        assert KEY not in repr(c)
        assert TOKEN not in repr(c)
        with pytest.raises(CodatAuthError) as info:
            await c.get_company("c1")
    exc = info.value
    texts = [str(exc), repr(exc), repr(exc.error_message), json.dumps(exc.validation),
             str(exc.error), caplog.text]  # fmt: skip
    assert caplog.records, "the retries should have been logged"
    for text in texts:
        assert KEY not in text
        assert TOKEN not in text
    assert "***" in str(exc)
