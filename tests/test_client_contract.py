"""Contract: every request the client sends matches an operation of Codat's OpenAPI spec.

The client runs every method against the sandbox through a recording transport; each
recorded request must match a path template and method of the spec, use only the query
parameters that operation declares, and validate (types, formats, enums, auth header) with
openapi-core.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import httpx
import pytest
from oas import SPEC_PATH, requires_spec
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from auditor.codat import CodatClient, DatasetAlreadyInProgressError, RateLimitPolicy
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet

pytestmark = requires_spec

#: The operations the client is meant to cover (issue 4).
IN_SCOPE = {
    "list-companies",
    "get-company",
    "list-connections",
    "get-company-data-status",
    "list-pull-operations",
    "get-pull-operation",
    "refresh-company-data",
    "refresh-data-type",
    "get-profile-syncSettings",
    "get-company-syncSettings",
}


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the network and keeps a copy of each."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _operations(spec: dict[str, Any]) -> list[tuple[re.Pattern[str], str, str, set[str]]]:
    """``(path regex, METHOD, operationId, declared query parameters)`` for the spec."""
    out = []
    for template, item in spec["paths"].items():
        shared = item.get("parameters", [])
        pattern = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$")
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [_resolve(spec, p) for p in shared + op.get("parameters", [])]
            query = {p["name"] for p in params if p.get("in") == "query"}
            out.append((pattern, method.upper(), op["operationId"], query))
    return out


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())  # type: ignore[no-any-return]


async def exercise(client: CodatClient) -> None:
    """Call every method of the client, with every optional parameter."""
    companies = await client.list_companies(page_size=4, query="name!=x", order_by="-created")
    readable = [c for c in companies if c.data_connections]
    company = readable[0]
    await client.get_company(company.id)
    await client.list_connections(company.id, page_size=1, order_by="-created")
    statuses = await client.get_data_status(company.id)
    ops = await client.list_pull_operations(
        company.id, page_size=2, query="status=Complete", order_by="-requested"
    )
    if ops:
        await client.get_pull_operation(company.id, ops[0].id)
    await client.get_sync_settings()
    await client.get_company_sync_settings(company.id)
    data_type = next(t for t, s in statuses.items() if s.current_status != "NotSupported")
    connection_id = company.data_connections[0].id
    with contextlib.suppress(DatasetAlreadyInProgressError):
        await client.refresh_data_type(company.id, data_type, connection_id=connection_id)
    other = readable[1]
    await client.refresh_data_type(other.id, "invoices")
    await client.refresh_all(readable[2].id)


async def test_every_request_matches_a_spec_operation(spec: dict[str, Any]) -> None:
    fleet = generate_fleet(12, seed=5)
    recorder = Recorder()
    with SandboxServer(fleet, SandboxOptions(seed=5)) as server:
        async with CodatClient(
            server.api_key,
            base_url=server.base_url,
            transport=recorder,
            rate_limit=RateLimitPolicy(requests_per_minute=None),
        ) as client:
            await exercise(client)
            sent = client.stats.requests

    operations = _operations(spec)
    api = OpenAPI.from_dict(spec)
    covered: set[str] = set()
    for request in recorder.requests:
        path = request.url.path
        method = request.method
        matches = [o for o in operations if o[1] == method and o[0].match(path)]
        assert matches, f"{method} {path} is no operation of the spec"
        # The most specific template wins (fewest parameters), as in the spec's routing.
        _pattern, _, operation_id, declared = min(
            matches, key=lambda o: o[0].pattern.count("[^/]+")
        )
        query = dict(request.url.params.multi_items())
        undeclared = set(query) - declared
        assert not undeclared, f"{operation_id}: undeclared query parameters {undeclared}"
        mock = MockRequest(
            "https://api.codat.io",
            method.lower(),
            path,
            args=query,
            headers=dict(request.headers),
            data=request.content or None,
        )
        api.validate_request(mock)  # raises on any mismatch
        covered.add(operation_id)

    assert covered == IN_SCOPE, f"missing: {IN_SCOPE - covered}, extra: {covered - IN_SCOPE}"
    assert set(sent) == IN_SCOPE  # the client's own counters use the spec's operation ids
    assert sum(sent.values()) == len(recorder.requests)
