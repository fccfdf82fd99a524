"""Endpoints ``GET /companies/{companyId}/dataStatus``, ``GET .../data/history`` and
``GET .../data/history/{datasetId}`` (get-company-data-status, list-pull-operations,
get-pull-operation): the fleet's syncs with the refresh overlay and doc quirks applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from aiohttp import web

from auditor.sandbox._fleet import CompanyRecord
from auditor.sandbox._generate import GeneratedFleet
from auditor.sandbox._responses import json_response, page_of
from auditor.sandbox._state import SandboxState
from auditor.sandbox._util import dumps

# Properties the query language resolves on a pull operation (the spec's Dataset schema).
_DATASET_PROPS: Final = (
    "id", "companyId", "connectionId", "dataType", "status", "statusDescription",
    "errorMessage", "requested", "completed", "progress", "isCompleted", "isErrored",
)  # fmt: skip


def current_data_status(
    state: SandboxState, record: CompanyRecord, now: datetime
) -> dict[str, Any]:
    """The dataStatus body of ``record`` at sandbox time ``now`` (refresh overlay applied)."""
    body = state.refresh.merged_status(record, now)
    if state.is_quirky(record.id):
        body = state.quirks.data_status(record.id, body, record.connections)
    return body


async def data_status(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    now = state.now()
    record = state.record(company_id, now)
    if record is None:
        return state.errors.not_found(company_id)
    if record.data_status_error is not None:
        status = int(record.data_status_error.get("statusCode", 500))
        return json_response(record.data_status_error, status=status)
    if state.refresh.has_live(company_id):
        return json_response(current_data_status(state, record, now))
    key = (company_id, state.state_key(now))
    cached = state.status_bytes.get(key)
    if cached is None:
        cached = dumps(current_data_status(state, record, now))
        state.status_bytes.put(key, cached)
    return json_response(cached)


def _operations(state: SandboxState, record: CompanyRecord, now: datetime) -> list[dict[str, Any]]:
    live = [op.to_json(now) for op in state.refresh.history(record.id)]
    ops = live + record.pull_operations
    if live and isinstance(state.fleet, GeneratedFleet):  # scheduled syncs may be newer
        ops.sort(key=lambda op: str(op.get("requested", "")), reverse=True)
    if state.is_quirky(record.id):
        ops = [state.quirks.pull_operation(record.id, op) for op in ops]
    return ops


async def list_pull_operations(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    now = state.now()
    record = state.record(company_id, now)
    if record is None:
        return state.errors.not_found(company_id)
    items = _operations(state, record, now)
    return page_of(state.errors, request, items, _DATASET_PROPS, "Dataset")


async def get_pull_operation(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    dataset_id = request.match_info["datasetId"]
    now = state.now()
    record = state.record(company_id, now)
    if record is None:
        return state.errors.not_found(company_id)
    for op in _operations(state, record, now):
        if op.get("id") == dataset_id:
            return json_response(op)
    return state.errors.error(404, f"No dataset was found with ID {dataset_id}", "PullApi")
