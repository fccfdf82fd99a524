"""Contract: every sandbox response validates against Codat's published OpenAPI spec.

Each exchange is checked with openapi-core against ``shared/codat-oas/Codat-Platform.json``:
the request we send must match an operation of the spec (path, method, parameters, security),
and the response the sandbox sends must match that operation's response for its status code.

Known inconsistency in the spec, handled in the open: the ``pageSize`` *request* parameter
allows up to 5000, but the ``PagingInfo`` *response* schema says ``pageSize`` maximum 2000.
The sandbox echoes the page size it was asked for (as Codat does), so a page of 5000 fails the
real spec on exactly that one keyword; ``test_page_size_5000_breaks_only_the_spec_paging_max``
pins that down and validates the same page against a copy of the spec whose only change is
that maximum. All other paged checks use ``pageSize`` <= 2000 against the real spec.

Quirk responses (``--quirks``, or a fleet file that carries quirks) are deliberately outside
the spec and exempt; ``test_quirk_responses_are_outside_the_spec`` shows they really are.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from oas import SPEC_PATH, requires_spec
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData

from auditor.constants import ALL_STATUSES, IN_PROGRESS_STATUSES
from auditor.sandbox import (
    ALREADY_IN_PROGRESS_STATUS,
    OPERATION_IDS,
    Fleet,
    SandboxServer,
    generate_fleet,
)
from auditor.sandbox._generate import HISTORY_VARIANTS

pytestmark = requires_spec

SPEC_SERVER = "https://api.codat.io"
QUIRKY_SMALL_FLEET_COMPANY = "Quirky Coffee GmbH"


def _load(spec: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def spec_dict() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def openapi(spec_dict: dict[str, Any]) -> OpenAPI:
    return _load(spec_dict)


def _auth(key: str) -> str:
    return "Basic " + base64.b64encode(key.encode()).decode()


class Exchange:
    """Sends requests to a sandbox and validates request and response against a spec."""

    def __init__(self, server: SandboxServer, openapi: OpenAPI) -> None:
        self.server = server
        self.openapi = openapi
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        self.seen: set[tuple[str, int]] = set()

    def send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = "default",
    ) -> httpx.Response:
        headers = {}
        if key is not None:
            headers["Authorization"] = _auth(self.server.api_key if key == "default" else key)
        return self.http.request(method, path, params=params, headers=headers)

    def mock(self, response: httpx.Response) -> tuple[MockRequest, MockResponse]:
        request = response.request
        args = dict(request.url.params)
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        mock_request = MockRequest(
            SPEC_SERVER, request.method.lower(), request.url.path, args=args, headers=headers
        )
        content_type = response.headers.get("content-type", "application/json").split(";")[0]
        mock_response = MockResponse(
            response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=content_type,
        )
        return mock_request, mock_response

    def check(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = "default",
        status: int | None = None,
        openapi: OpenAPI | None = None,
    ) -> httpx.Response:
        """Send, assert the status, validate the request (when authorised) and the response."""
        response = self.send(method, path, params, key=key)
        if status is not None:
            assert response.status_code == status, response.text
        spec = openapi or self.openapi
        mock_request, mock_response = self.mock(response)
        if key is not None:
            spec.validate_request(mock_request)
        spec.validate_response(mock_request, mock_response)
        self.seen.add((method.upper(), response.status_code))
        return response


@pytest.fixture
def exchange(
    sandbox_server: Callable[..., SandboxServer], openapi: OpenAPI
) -> Iterator[Callable[..., Exchange]]:
    made: list[Exchange] = []

    def make(fleet: Fleet | None = None, **options: Any) -> Exchange:
        ex = Exchange(sandbox_server(fleet, **options), openapi)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.http.close()


def _status_of(ex: Exchange, company_id: str) -> dict[str, Any]:
    body: dict[str, Any] = ex.send("GET", f"/companies/{company_id}/dataStatus").json()
    return body


def test_validator_is_not_vacuous(exchange: Callable[..., Exchange], openapi: OpenAPI) -> None:
    """A response missing a required field fails: the checks below really check."""
    ex = exchange()
    company_id = ex.server.fleet.company_ids[0]
    response = ex.send("GET", f"/companies/{company_id}/dataStatus")
    mock_request, _ = ex.mock(response)
    body = response.json()
    entry = next(iter(body.values()))
    del entry["currentStatus"]
    bad = MockResponse(json.dumps(body).encode(), status_code=200)
    with pytest.raises(InvalidData):
        openapi.validate_response(mock_request, bad)


def test_every_endpoint_of_a_generated_fleet_validates(
    exchange: Callable[..., Exchange],
) -> None:
    ex = exchange()
    fleet = ex.server.fleet
    ex.check("GET", "/profile/syncSettings", status=200)
    total = len(fleet)
    pages = 0
    page = 1
    while True:
        body = ex.check("GET", "/companies", {"page": page, "pageSize": 20}, status=200).json()
        pages += 1
        if "next" not in body["_links"]:
            break
        page += 1
    assert pages == -(-total // 20) >= 3
    for company_id in fleet.company_ids:
        record = fleet.get(company_id)
        assert record is not None
        ex.check("GET", f"/companies/{company_id}", status=200)
        ex.check("GET", f"/companies/{company_id}/connections", {"page": 1, "pageSize": 100})
        expected = (
            200 if record.data_status_error is None else record.data_status_error["statusCode"]
        )
        ex.check("GET", f"/companies/{company_id}/dataStatus", status=expected)
        history = ex.check(
            "GET", f"/companies/{company_id}/data/history", {"pageSize": 2000}, status=200
        ).json()
        for op in history["results"][:3]:
            ex.check("GET", f"/companies/{company_id}/data/history/{op['id']}", status=200)
        ex.check("GET", f"/companies/{company_id}/syncSettings", status=200)


def test_paging_envelope_and_links(exchange: Callable[..., Exchange]) -> None:
    ex = exchange()
    company_id = next(
        c
        for c in ex.server.fleet.company_ids
        if len(ex.server.fleet.get(c).pull_operations) >= 7  # type: ignore[union-attr]
    )
    path = f"/companies/{company_id}/data/history"
    first = ex.check("GET", path, {"page": 1, "pageSize": 3}, status=200).json()
    assert first["pageNumber"] == 1
    assert first["pageSize"] == 3
    assert len(first["results"]) == 3
    assert set(first["_links"]) == {"self", "current", "next"}
    second = ex.check("GET", path, {"page": 2, "pageSize": 3}, status=200).json()
    assert set(second["_links"]) == {"self", "current", "next", "previous"}
    assert second["_links"]["previous"]["href"].endswith("page=1&pageSize=3")
    last_page = -(-first["totalResults"] // 3)
    last = ex.check("GET", path, {"page": last_page, "pageSize": 3}, status=200).json()
    assert "next" not in last["_links"]
    # newest first
    requested = [op["requested"] for op in first["results"] + second["results"]]
    assert requested == sorted(requested, reverse=True)
    # query and orderBy (minimal support)
    queried = ex.check(
        "GET", path, {"query": "status=Complete", "orderBy": "requested", "pageSize": 2000}
    ).json()
    assert queried["results"]
    assert all(op["status"] == "Complete" for op in queried["results"])
    asc = [op["requested"] for op in queried["results"]]
    assert asc == sorted(asc)


def test_error_responses_validate(exchange: Callable[..., Exchange]) -> None:
    ex = exchange(rate_limit_per_min=1000)
    company_id = ex.server.fleet.company_ids[0]
    unknown = str(uuid.uuid4())
    # 401: wrong key (request otherwise valid) and no key at all (response checked only)
    body = ex.check("GET", "/companies", {"page": 1, "pageSize": 10}, key="wrong", status=401)
    assert body.json()["statusCode"] == 401
    ex.check("GET", f"/companies/{company_id}/dataStatus", key=None, status=401)
    # 404: unknown company on every company endpoint, unknown dataset
    for method, template in OPERATION_IDS:
        if "{companyId}" not in template:
            continue
        path = template.replace("{companyId}", unknown).replace("{datasetId}", unknown)
        path = path.replace("{dataType}", "invoices")
        response = ex.check(method, path, status=404)
        assert response.json()["statusCode"] == 404
    ex.check("GET", f"/companies/{company_id}/data/history/{unknown}", status=404)
    # 400: page size beyond the parameter's maximum is refused by the sandbox too
    response = ex.send("GET", "/companies", {"pageSize": 5001})
    assert response.status_code == 400
    _, mock_response = ex.mock(response)
    assert json.loads(mock_response.data)["statusCode"] == 400


def test_refresh_endpoints_validate_including_already_in_progress(
    exchange: Callable[..., Exchange],
) -> None:
    ex = exchange(sync_phase_seconds=3600.0)
    fleet = ex.server.fleet
    company_id = next(
        c
        for c in fleet.company_ids
        if (r := fleet.get(c)) is not None
        and any(
            x.get("status") == "Linked" and x.get("sourceType") == "Accounting"
            for x in r.connections
        )
        and r.data_status.get("invoices", {}).get("currentStatus") == "Complete"
    )
    record = fleet.get(company_id)
    assert record is not None
    connection_id = next(c["id"] for c in record.connections if c["sourceType"] == "Accounting")
    op = ex.check(
        "POST",
        f"/companies/{company_id}/data/queue/invoices",
        {"connectionId": connection_id},
        status=200,
    ).json()
    assert op["status"] == "Queued"
    assert op["dataType"] == "invoices"
    again = ex.check(
        "POST", f"/companies/{company_id}/data/queue/invoices", status=ALREADY_IN_PROGRESS_STATUS
    ).json()
    assert again["error"] == (
        f"DatasetAlreadyInProgressException: Cannot queue invoices sync for {company_id} "
        f"as previous sync {op['id']} is still in progress"
    )
    ex.check("GET", f"/companies/{company_id}/data/history/{op['id']}", status=200)
    ex.check("GET", f"/companies/{company_id}/dataStatus", status=200)
    ex.check("POST", f"/companies/{company_id}/data/all", status=204)
    ex.check("GET", f"/companies/{company_id}/data/history", {"pageSize": 500}, status=200)
    statuses = _status_of(ex, company_id)
    assert statuses["invoices"]["latestSyncId"] == op["id"]  # data/all skipped the running one
    assert any(s["currentStatus"] in IN_PROGRESS_STATUSES for s in statuses.values())


def test_rate_limited_and_fault_responses_validate(exchange: Callable[..., Exchange]) -> None:
    ex = exchange(rate_limit_per_min=3, rate_limit_window_seconds=30.0)
    for _ in range(3):
        ex.check("GET", "/profile/syncSettings", status=200)
    limited = ex.check("GET", "/profile/syncSettings", status=429)
    assert limited.json()["statusCode"] == 429
    faulty = exchange(fault_rate=1.0, seed=3)
    codes = {faulty.check("GET", "/profile/syncSettings").status_code for _ in range(12)}
    assert codes == {500, 503}


def test_daily_quota_responses_validate(exchange: Callable[..., Exchange]) -> None:
    # The quota's headers on answers, then its 429 once spent: still the spec's answers.
    ex = exchange(daily_quota=2)
    company_id = ex.server.fleet.company_ids[0]
    ex.check("GET", "/profile/syncSettings", status=200)
    ex.check("GET", f"/companies/{company_id}/dataStatus", status=200)
    limited = ex.check("GET", f"/companies/{company_id}/dataStatus", status=429)
    assert limited.json()["statusCode"] == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"


def test_small_fleet_file_validates_except_its_quirky_company(
    exchange: Callable[..., Exchange], small_fleet: Fleet
) -> None:
    ex = exchange(small_fleet)
    for record in small_fleet:
        path = f"/companies/{record.id}"
        ex.check("GET", path, status=200)
        ex.check("GET", f"{path}/connections", status=200)
        ex.check("GET", f"{path}/syncSettings", status=200)
        if record.company["name"] == QUIRKY_SMALL_FLEET_COMPANY:
            continue  # served verbatim, deliberately outside the spec
        expected = (
            200 if record.data_status_error is None else record.data_status_error["statusCode"]
        )
        ex.check("GET", f"{path}/dataStatus", status=expected)
        ex.check("GET", f"{path}/data/history", status=200)


def test_page_size_5000_breaks_only_the_spec_paging_max(
    exchange: Callable[..., Exchange], openapi: OpenAPI, spec_dict: dict[str, Any]
) -> None:
    ex = exchange()
    response = ex.send("GET", "/companies", {"page": 1, "pageSize": 5000})
    assert response.status_code == 200
    assert response.json()["pageSize"] == 5000
    mock_request, mock_response = ex.mock(response)
    openapi.validate_request(mock_request)  # the request parameter allows 5000
    with pytest.raises(InvalidData) as caught:  # the response schema says maximum 2000
        openapi.validate_response(mock_request, mock_response)
    chain = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(str(error))
        chain.extend(str(e) for e in getattr(error, "schema_errors", ()))
        error = error.__cause__ or error.__context__
    assert any("2000" in text for text in chain), chain
    patched = copy.deepcopy(spec_dict)
    patched["components"]["schemas"]["PagingInfo"]["properties"]["pageSize"]["maximum"] = 5000
    _load(patched).validate_response(mock_request, mock_response)


def test_quirk_responses_are_outside_the_spec(
    exchange: Callable[..., Exchange], openapi: OpenAPI
) -> None:
    """Quirky bodies that break the spec fail validation; every other body still passes.

    (An unknown data *key* alone is allowed by ``DataStatuses``, which has no
    ``additionalProperties: false``; a missing ``currentStatus`` or an unknown status is not.)
    """
    ex = exchange(quirks=True, quirk_share=0.5)
    invalid = valid_quirky = plain = 0
    for company_id in ex.server.fleet.company_ids:
        response = ex.send("GET", f"/companies/{company_id}/dataStatus")
        if response.status_code != 200:
            continue
        mock_request, mock_response = ex.mock(response)
        entries = response.json().values()
        breaks_spec = any(
            "currentStatus" not in e or e["currentStatus"] not in ALL_STATUSES for e in entries
        )
        if breaks_spec:
            assert ex.server.is_quirky(company_id)
            with pytest.raises(InvalidData):
                openapi.validate_response(mock_request, mock_response)
            invalid += 1
        else:
            openapi.validate_response(mock_request, mock_response)
            if ex.server.is_quirky(company_id):
                valid_quirky += 1
            else:
                plain += 1
    assert invalid >= 5
    assert plain >= 5


def test_company_sync_settings_with_history_windows_validate(
    exchange: Callable[..., Exchange],
) -> None:
    """Each history variant of a company's own settings (monthsToSync 12 on statements,
    syncFromWindow or syncFromUtc on invoices) is a valid CompanySyncSettings."""
    fleet = generate_fleet(600, seed=5, now=datetime(2026, 11, 30, 6, tzinfo=UTC))
    ex = exchange(fleet)
    seen: dict[int, dict[str, Any]] = {}
    for i, company_id in enumerate(fleet.company_ids):
        record = fleet.get(company_id)
        assert record is not None
        if record.sync_settings is not None and i % HISTORY_VARIANTS not in seen:
            body = ex.check("GET", f"/companies/{company_id}/syncSettings", status=200).json()
            seen[i % HISTORY_VARIANTS] = {s["dataType"]: s for s in body["settings"]}
    assert set(seen) == set(range(HISTORY_VARIANTS))
    assert seen[1]["balanceSheet"]["monthsToSync"] == 12
    assert seen[2]["invoices"]["syncFromWindow"] == 12
    assert seen[3]["invoices"]["syncFromUtc"] == "2025-01-01T00:00:00.000Z"
    assert "syncFromWindow" not in seen[3]["invoices"]
