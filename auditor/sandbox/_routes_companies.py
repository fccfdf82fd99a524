"""Endpoints ``GET /companies``, ``GET /companies/{companyId}`` and
``GET /companies/{companyId}/connections`` (list-companies, get-company, list-connections)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from auditor.sandbox._responses import envelope_bytes, json_response, page_of, paging
from auditor.sandbox._state import SandboxState
from auditor.sandbox._util import dumps

# Properties the query language resolves, per entity (the spec's schema properties).
_COMPANY_PROPS: Final = (
    "id", "name", "description", "redirect", "lastSync", "created", "createdByUserName",
    "products", "tags", "referenceParentCompany", "referenceSubsidiaryCompanies",
    "dataConnections", "platform",
)  # fmt: skip
_CONNECTION_PROPS: Final = (
    "id", "integrationId", "integrationKey", "sourceId", "sourceType", "platformName",
    "linkUrl", "status", "lastSync", "created", "dataConnectionErrors", "connectionInfo",
)  # fmt: skip


async def list_companies(state: SandboxState, request: web.Request) -> web.Response:
    parsed = paging(state.errors, request)
    if isinstance(parsed, web.Response):
        return parsed
    page, size, query, order = parsed
    now = state.now()
    fleet = state.fleet
    if query or order:
        items = [state.company_json(i, now) for i in range(len(fleet))]
        return page_of(state.errors, request, items, _COMPANY_PROPS, "Company")
    key = (page, size, state.state_key(now), state.refresh.version)
    cached = state.pages.get(key)
    if cached is None:
        total = len(fleet)
        lo, hi = (page - 1) * size, min(page * size, total)
        results = [dumps(state.company_json(i, now)) for i in range(lo, hi)]
        cached = envelope_bytes(request.path, results, page, size, total, None, None)
        state.pages.put(key, cached)
    return json_response(cached)


async def get_company(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    record = state.record(company_id)
    if record is None:
        return state.errors.not_found(company_id)
    return json_response(record.company)


async def list_connections(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    record = state.record(company_id)
    if record is None:
        return state.errors.not_found(company_id)
    return page_of(state.errors, request, record.connections, _CONNECTION_PROPS, "DataConnection")
