"""The sandbox over real HTTP on loopback: auth, paging, rate limit, refresh, faults, quirks."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from auditor.constants import ALL_STATUSES, IN_PROGRESS_STATUSES
from auditor.sandbox import (
    ALREADY_IN_PROGRESS_STATUS,
    SANDBOX_API_KEY,
    CompanyRecord,
    Fleet,
    SandboxOptions,
    SandboxServer,
    generate_fleet,
)
from auditor.sandbox._quirks import UNKNOWN_DATA_TYPE, UNKNOWN_STATUS

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
Start = Callable[..., SandboxServer]


class ManualClock:
    """Sandbox time that moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()}


@pytest.fixture
def client() -> Iterator[Callable[[SandboxServer], httpx.Client]]:
    made: list[httpx.Client] = []

    def make(server: SandboxServer, timeout: float = 10.0) -> httpx.Client:
        c = httpx.Client(base_url=server.base_url, headers=_auth(server.api_key), timeout=timeout)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _linked_company(fleet: Fleet, data_type: str, status: str = "Complete") -> CompanyRecord:
    for record in fleet:
        if record.data_status_error is None and any(
            c["status"] == "Linked" and c["sourceType"] == "Accounting" for c in record.connections
        ):
            entry = record.data_status.get(data_type)
            if entry is not None and entry.get("currentStatus") == status:
                return record
    raise AssertionError(f"no company with {data_type} {status}")


def test_authentication(sandbox_server: Start) -> None:
    server = sandbox_server(api_key="my-test-key")
    url = server.base_url + "/profile/syncSettings"
    assert httpx.get(url, headers=_auth("my-test-key")).status_code == 200
    assert (
        httpx.get(
            url, headers={"Authorization": "basic " + _auth("my-test-key")["Authorization"][6:]}
        ).status_code
        == 200
    )
    for headers in (
        {},
        _auth("wrong"),
        {"Authorization": "Basic my-test-key"},
        {"Authorization": "Bearer x"},
    ):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["statusCode"] == 401
        assert body["error"] == "Unauthorized"
        assert "my-test-key" not in response.text
    assert "my-test-key" not in repr(server) + repr(server.options)
    assert SANDBOX_API_KEY != "my-test-key"


def test_unknown_company_dataset_and_route(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    server = sandbox_server()
    c = client(server)
    missing = "00000000-0000-4000-8000-000000000000"
    response = c.get(f"/companies/{missing}/dataStatus")
    assert response.status_code == 404
    assert response.json()["error"] == f"No company was found with ID {missing}"
    company_id = server.fleet.company_ids[0]
    assert c.get(f"/companies/{company_id}/data/history/{missing}").status_code == 404
    assert c.get("/no/such/route").json()["statusCode"] == 404
    assert c.post(f"/companies/{company_id}/data/queue/notAType").status_code == 400


def test_paging_through_companies(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    server = sandbox_server(generate_fleet(23, seed=2, now=NOW))
    c = client(server)
    ids: list[str] = []
    page = 1
    while True:
        body = c.get("/companies", params={"page": page, "pageSize": 5}).json()
        assert body["totalResults"] == 23
        ids += [r["id"] for r in body["results"]]
        if "next" not in body["_links"]:
            break
        assert body["_links"]["next"]["href"] == f"/companies?page={page + 1}&pageSize=5"
        page += 1
    assert page == 5
    assert ids == server.fleet.company_ids
    beyond = c.get("/companies", params={"page": 9, "pageSize": 5}).json()
    assert beyond["results"] == []
    assert beyond["pageNumber"] == 9
    default = c.get("/companies").json()
    assert default["pageSize"] == 100
    assert len(default["results"]) == 23
    for params in ({"page": 0}, {"pageSize": 0}, {"pageSize": 5001}, {"page": "x"}):
        assert c.get("/companies", params=params).status_code == 400
    assert len(c.get("/companies", params={"pageSize": 5000}).json()["results"]) == 23


def test_query_and_order_by(sandbox_server: Start, client: Callable[..., httpx.Client]) -> None:
    server = sandbox_server(generate_fleet(40, seed=2, now=NOW))
    c = client(server)
    body = c.get(
        "/companies", params={"query": "dataConnections.platformName=Xero", "pageSize": 100}
    ).json()
    assert body["results"]
    assert all(
        any(x["platformName"] == "Xero" for x in r["dataConnections"]) for r in body["results"]
    )
    named = c.get("/companies", params={"orderBy": "-name", "pageSize": 100}).json()["results"]
    assert [r["name"].lower() for r in named] == sorted(
        (r["name"].lower() for r in named), reverse=True
    )
    bad = c.get("/companies", params={"query": "colour=red"})
    assert bad.status_code == 400
    assert (
        bad.json()["error"] == "Error parsing query - Could not resolve property colour on Company"
    )
    company_id = _linked_company(server.fleet, "invoices").id
    history = c.get(
        f"/companies/{company_id}/data/history",
        params={"query": "dataType=invoices&&status=Complete"},
    ).json()["results"]
    assert history
    assert {(h["dataType"], h["status"]) for h in history} == {("invoices", "Complete")}


def test_rate_limit_429_and_headers(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    # The per-IP ceiling: 429 with Retry-After, and no quota headers (Codat documents none).
    server = sandbox_server(rate_limit_per_min=4, rate_limit_window_seconds=1.5)
    c = client(server)
    for _ in range(4):
        response = c.get("/profile/syncSettings")
        assert response.status_code == 200
        assert "X-Rate-Limit-Limit" not in response.headers
    limited = c.get("/profile/syncSettings")
    assert limited.status_code == 429
    assert limited.json()["statusCode"] == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert "X-Rate-Limit-Remaining" not in limited.headers
    unauthorised = httpx.get(server.base_url + "/companies")  # the ceiling is per IP
    assert unauthorised.status_code == 429
    time.sleep(float(limited.headers["Retry-After"]))
    assert c.get("/profile/syncSettings").status_code == 200
    assert server.stats.by_status[429] == 2
    assert server.stats.limited == {"per-minute": 2}


def test_daily_quota_headers_and_429_until_midnight(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    # docs.codat.io/using-the-api/rate-limits: Limit is the quota of the period, Remaining
    # what is left, Reset the date the quota resets (00:00 UTC); 429 + Retry-After once spent.
    clock = [datetime(2026, 6, 1, 23, 0, tzinfo=UTC)]
    server = sandbox_server(daily_quota=3, clock=lambda: clock[0])
    c = client(server)
    remaining = []
    for _ in range(3):
        response = c.get("/profile/syncSettings")
        assert response.status_code == 200
        assert response.headers["X-Rate-Limit-Limit"] == "3"
        assert response.headers["X-Rate-Limit-Reset"] == "Tue, 02 Jun 2026 00:00:00 GMT"
        remaining.append(int(response.headers["X-Rate-Limit-Remaining"]))
    assert remaining == [2, 1, 0]
    limited = c.get("/companies/x/dataStatus")
    assert limited.status_code == 429
    assert limited.json()["statusCode"] == 429
    assert int(limited.headers["Retry-After"]) == 3600
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    assert "X-Rate-Limit-Limit" not in httpx.get(server.base_url + "/companies").headers  # 401
    clock[0] = datetime(2026, 6, 2, 0, 0, 1, tzinfo=UTC)  # the sandbox's midnight passed
    again = c.get("/profile/syncSettings")
    assert again.status_code == 200
    assert again.headers["X-Rate-Limit-Remaining"] == "2"
    assert again.headers["X-Rate-Limit-Reset"] == "Wed, 03 Jun 2026 00:00:00 GMT"
    assert server.stats.limited == {"daily-quota": 1}
    plain = sandbox_server()
    assert "X-Rate-Limit-Limit" not in client(plain).get("/profile/syncSettings").headers


def test_refresh_moves_through_the_stages_over_sandbox_time(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    clock = ManualClock(NOW)
    server = sandbox_server(generate_fleet(60, seed=1, now=NOW), clock=clock, sync_phase_seconds=60)
    c = client(server)
    record = _linked_company(server.fleet, "invoices")
    before = record.data_status["invoices"]
    op = c.post(f"/companies/{record.id}/data/queue/invoices").json()
    assert op["status"] == "Queued"
    assert op["progress"] == 0
    assert not op["isCompleted"]
    assert op["requested"] == "2024-05-01T06:00:00.000Z"
    seen = []
    for _ in range(6):
        status = c.get(f"/companies/{record.id}/dataStatus").json()["invoices"]
        single = c.get(f"/companies/{record.id}/data/history/{op['id']}").json()
        assert status["currentStatus"] == single["status"]
        assert status["latestSyncId"] == op["id"]
        seen.append(single["status"])
        if single["status"] != "Complete":
            assert status["lastSuccessfulSync"] == before["lastSuccessfulSync"]
            again = c.post(f"/companies/{record.id}/data/queue/invoices")
            assert again.status_code == ALREADY_IN_PROGRESS_STATUS
            assert again.json()["error"] == (
                f"DatasetAlreadyInProgressException: Cannot queue invoices sync for {record.id}"
                f" as previous sync {op['id']} is still in progress"
            )
        clock.advance(60)
    assert seen == ["Queued", "Fetching", "Mapping", "Validating", "Processing", "Complete"]
    status = c.get(f"/companies/{record.id}/dataStatus").json()["invoices"]
    assert status["lastSuccessfulSync"] == "2024-05-01T06:05:00.000Z"
    assert status["latestSuccessfulSyncId"] == op["id"]
    done = c.get(f"/companies/{record.id}/data/history/{op['id']}").json()
    assert done["isCompleted"]
    assert done["progress"] == 100
    assert done["completed"] == "2024-05-01T06:05:00.000Z"
    history = c.get(f"/companies/{record.id}/data/history").json()["results"]
    assert history[0]["id"] == op["id"]  # newest first
    second = c.post(f"/companies/{record.id}/data/queue/invoices")  # complete: may queue again
    assert second.status_code == 200
    assert second.json()["id"] != op["id"]


def test_refresh_outcomes(sandbox_server: Start, client: Callable[..., httpx.Client]) -> None:
    clock = ManualClock(NOW)
    fleet = generate_fleet(300, seed=1, now=NOW)
    server = sandbox_server(fleet, clock=clock, sync_phase_seconds=10)
    c = client(server)
    deauth = next(
        r for r in fleet
        if r.data_status_error is None
        and any(
            x["status"] == "Deauthorized" and x["sourceType"] == "Accounting"
            for x in r.connections
        )
    )  # fmt: skip
    not_supported = next(
        (r, t) for r in fleet for t, e in r.data_status.items()
        if e["currentStatus"] == "NotSupported" and r.data_status_error is None
        and any(x["status"] == "Linked" and x["sourceType"] == "Accounting" for x in r.connections)
        and not t.startswith(("banking-", "commerce-"))
    )  # fmt: skip
    op = c.post(f"/companies/{deauth.id}/data/queue/invoices").json()
    ns = c.post(f"/companies/{not_supported[0].id}/data/queue/{not_supported[1]}").json()
    assert ns["status"] == "NotSupported"
    clock.advance(100)
    assert c.get(f"/companies/{deauth.id}/data/history/{op['id']}").json()["status"] == "AuthError"
    status = c.get(f"/companies/{deauth.id}/dataStatus").json()["invoices"]
    assert status["currentStatus"] == "AuthError"
    assert status.get("lastSuccessfulSync") == deauth.data_status["invoices"].get(
        "lastSuccessfulSync"
    )
    after = c.get(f"/companies/{not_supported[0].id}/dataStatus").json()[not_supported[1]]
    assert after["currentStatus"] == "NotSupported"
    failing = sandbox_server(fleet, clock=clock, sync_phase_seconds=10, refresh_error_rate=1.0)
    record = _linked_company(fleet, "bills")
    op = client(failing).post(f"/companies/{record.id}/data/queue/bills").json()
    clock.advance(100)
    status = client(failing).get(f"/companies/{record.id}/dataStatus").json()["bills"]
    assert status["currentStatus"] == "FetchError"
    assert status["lastSuccessfulSync"] == record.data_status["bills"]["lastSuccessfulSync"]
    assert status["latestSyncId"] == op["id"] != status["latestSuccessfulSyncId"]


def test_refresh_all_queues_every_linked_type_but_running_ones(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    clock = ManualClock(NOW)
    fleet = generate_fleet(300, seed=1, now=NOW)
    server = sandbox_server(fleet, clock=clock, sync_phase_seconds=10)
    c = client(server)
    record = next(
        r for r in fleet
        if r.data_status_error is None
        and any(e["currentStatus"] in IN_PROGRESS_STATUSES for e in r.data_status.values())
        and all(x["status"] == "Linked" for x in r.connections)
    )  # fmt: skip
    running = {
        t for t, e in record.data_status.items() if e["currentStatus"] in IN_PROGRESS_STATUSES
    }
    fetched = {
        s["dataType"] for s in fleet.sync_settings["settings"] if s["fetchOnFirstLink"]
    }
    response = c.post(f"/companies/{record.id}/data/all")
    assert response.status_code == 204
    assert response.content == b""
    status = c.get(f"/companies/{record.id}/dataStatus").json()
    for data_type, entry in status.items():
        if data_type in running or data_type not in fetched:
            # a stuck sync stays stuck; a type without fetchOnFirstLink is not queued
            assert entry == record.data_status[data_type], data_type
        else:
            assert entry["currentStatus"] in ("Queued", "NotSupported"), data_type
    assert any(t not in fetched for t in status)  # the fetchOnFirstLink branch was exercised
    # never-synced types of a linked connection are queued too
    sources = {x["sourceType"] for x in record.connections}
    assert len(status) >= len(record.data_status)
    assert sources
    clock.advance(60)
    status = c.get(f"/companies/{record.id}/dataStatus").json()
    done = {e["currentStatus"] for t, e in status.items() if t not in running and t in fetched}
    assert done <= {"Complete", "NotSupported"}
    # A type still running 60 s later (a sync that was about to finish may have finished);
    # sorted: a set's order depends on PYTHONHASHSEED.
    still = sorted(t for t in running if status[t]["currentStatus"] in IN_PROGRESS_STATUSES)
    assert still
    blocked = still[0]
    refused = c.post(f"/companies/{record.id}/data/queue/{blocked}").json()
    assert refused["error"].startswith("DatasetAlreadyInProgressException")
    assert record.data_status[blocked]["latestSyncId"] in refused["error"]


def test_time_scale_speeds_up_refreshes(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    server = sandbox_server(generate_fleet(60, seed=1, now=NOW), time_scale=3600.0)
    assert abs((server.now() - NOW).total_seconds()) < 3600  # the clock starts at fleet.now
    c = client(server)
    record = _linked_company(server.fleet, "invoices")
    op = c.post(f"/companies/{record.id}/data/queue/invoices").json()
    deadline = time.monotonic() + 5
    while c.get(f"/companies/{record.id}/data/history/{op['id']}").json()["status"] != "Complete":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _outcomes(server: SandboxServer, paths: list[str]) -> list[str]:
    out = []
    with httpx.Client(base_url=server.base_url, headers=_auth(server.api_key), timeout=2.0) as c:
        for path in paths:
            try:
                response = c.get(path)
            except httpx.HTTPError as exc:
                out.append(type(exc).__name__)
                continue
            try:
                response.json()
                out.append(str(response.status_code))
            except json.JSONDecodeError:
                out.append(f"{response.status_code}-malformed")
    return out


def test_faults_are_reproducible_by_seed(sandbox_server: Start) -> None:
    fleet = generate_fleet(30, seed=1, now=NOW)
    knobs: dict[str, Any] = {
        "fault_rate": 0.2, "reset_rate": 0.15, "malformed_rate": 0.15,
        "timeout_rate": 0.05, "timeout_hang_seconds": 0.05,
    }  # fmt: skip
    paths = [f"/companies/{cid}/dataStatus" for cid in fleet.company_ids] * 2
    a = _outcomes(sandbox_server(fleet, seed=11, **knobs), paths)
    b_server = sandbox_server(fleet, seed=11, **knobs)
    b = _outcomes(b_server, paths)
    c = _outcomes(sandbox_server(fleet, seed=12, **knobs), paths)
    assert a == b
    assert a != c
    kinds = set(a)
    assert {"200", "200-malformed", "RemoteProtocolError"} <= kinds
    assert kinds & {"500", "503"}
    faults = b_server.stats.faults
    baseline = _outcomes(sandbox_server(fleet), paths)  # one company's dataStatus is a 404/500
    assert sum(faults.values()) == sum(1 for x, y in zip(b, baseline, strict=True) if x != y)
    assert faults["malformed"] == b.count("200-malformed")
    # a retry of the same URL draws anew: the same request does not fail forever
    repeated = _outcomes(
        sandbox_server(fleet, seed=3, fault_rate=0.5), ["/profile/syncSettings"] * 20
    )
    assert "200" in repeated
    assert {"500", "503"} & set(repeated)


def test_timeout_hangs_past_the_client_timeout(sandbox_server: Start) -> None:
    server = sandbox_server(timeout_rate=1.0, timeout_hang_seconds=30)
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            server.base_url + "/profile/syncSettings", headers=_auth(server.api_key), timeout=0.3
        )
    assert time.monotonic() - start < 5
    assert server.stats.faults == {"timeout": 1}
    start = time.monotonic()
    server.close()  # a hanging request does not hold up shutdown
    assert time.monotonic() - start < 5


def test_latency(sandbox_server: Start, client: Callable[..., httpx.Client]) -> None:
    c = client(sandbox_server(latency_ms=150))
    start = time.perf_counter()
    assert c.get("/profile/syncSettings").status_code == 200
    assert time.perf_counter() - start >= 0.15


def test_stats_count_per_endpoint_and_status(
    sandbox_server: Start, client: Callable[..., httpx.Client]
) -> None:
    server = sandbox_server()
    c = client(server)
    company_id = server.fleet.company_ids[0]
    c.get("/companies")
    c.get(f"/companies/{company_id}/dataStatus")
    c.get(f"/companies/{company_id}/dataStatus")
    httpx.get(server.base_url + "/companies")
    assert server.stats.by_endpoint == {"list-companies": 2, "get-company-data-status": 2}
    assert server.stats.by_status == {200: 3, 401: 1}
    assert server.stats.by_endpoint_status[("list-companies", 401)] == 1
    assert server.stats.total == 4
    assert server.stats.snapshot()["by_status"] == {"200": 3, "401": 1}
    server.stats.reset()
    assert server.stats.total == 0
    assert server.stats.by_endpoint == {}


def test_data_status_error_and_company_sync_settings(
    sandbox_server: Start, client: Callable[..., httpx.Client], small_fleet: Fleet
) -> None:
    server = sandbox_server(small_fleet)
    c = client(server)
    broken = next(r for r in small_fleet if r.data_status_error is not None)
    response = c.get(f"/companies/{broken.id}/dataStatus")
    assert response.status_code == broken.data_status_error["statusCode"]  # type: ignore[index]
    assert response.json() == broken.data_status_error
    quirky = next(r for r in small_fleet if r.company["name"] == "Quirky Coffee GmbH")
    assert c.get(f"/companies/{quirky.id}/dataStatus").json() == quirky.data_status  # verbatim
    default = c.get(f"/companies/{quirky.id}/syncSettings").json()
    assert default["companyId"] == quirky.id
    assert default["overridesDefaults"] is False
    assert default["settings"] == small_fleet.sync_settings["settings"]
    fleet = generate_fleet(300, seed=1, now=NOW)
    own = next(r for r in fleet if r.sync_settings is not None)
    got = client(sandbox_server(fleet)).get(f"/companies/{own.id}/syncSettings").json()
    assert got == own.sync_settings
    assert got["overridesDefaults"] is True


def test_quirks(sandbox_server: Start, client: Callable[..., httpx.Client]) -> None:
    fleet = generate_fleet(200, seed=1, now=NOW)
    server = sandbox_server(fleet, quirks=True, quirk_share=0.2)
    c = client(server)
    quirky = [cid for cid in fleet.company_ids if server.is_quirky(cid)]
    assert 20 <= len(quirky) <= 60
    found: set[str] = set()
    seven = re.compile(r"\.\d{7}Z$")
    for company_id in quirky:
        body = c.get(f"/companies/{company_id}/dataStatus").json()
        if not isinstance(body, dict) or "statusCode" in body:
            continue
        for key, entry in body.items():
            if "currentStatus" not in entry:
                found.add("no-currentStatus")
            elif entry["currentStatus"] not in ALL_STATUSES:
                assert entry["currentStatus"] == UNKNOWN_STATUS
                found.add("unknown-status")
            if key == UNKNOWN_DATA_TYPE:
                found.add("unknown-data-type")
            if seven.search(entry.get("lastSuccessfulSync", "")):
                found.add("7-digits")
        ops = c.get(f"/companies/{company_id}/data/history").json()["results"]
        if ops and seven.search(ops[0]["requested"]):
            found.add("7-digit-pull-operations")
    assert found == {"no-currentStatus", "unknown-status", "unknown-data-type", "7-digits",
                     "7-digit-pull-operations"}  # fmt: skip
    plain = next(r for r in fleet if not server.is_quirky(r.id) and r.data_status_error is None)
    assert c.get(f"/companies/{plain.id}/dataStatus").json() == plain.data_status


async def test_concurrent_async_clients(sandbox_server: Start) -> None:
    server = sandbox_server(generate_fleet(200, seed=4, now=NOW))
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=_auth(server.api_key), limits=limits
    ) as c:
        responses = await asyncio.gather(
            *(c.get(f"/companies/{cid}/dataStatus") for cid in server.fleet.company_ids)
        )
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == sum(1 for r in server.fleet if r.data_status_error is None)
    assert server.stats.by_endpoint["get-company-data-status"] == 200


async def test_async_context_manager() -> None:
    server = SandboxServer(generate_fleet(5, seed=1, now=NOW), SandboxOptions())
    async with server, httpx.AsyncClient(base_url="http://127.0.0.1") as c:
        response = await c.get(server.base_url + "/companies", headers=_auth(server.api_key))
        assert response.json()["totalResults"] == 5
    assert "stopped" in repr(server)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="sum to"):
        SandboxOptions(fault_rate=0.6, reset_rate=0.6)
    with pytest.raises(ValueError, match="fault_rate"):
        SandboxOptions(fault_rate=1.5)
    with pytest.raises(ValueError, match="rate_limit_per_min"):
        SandboxOptions(rate_limit_per_min=0)
