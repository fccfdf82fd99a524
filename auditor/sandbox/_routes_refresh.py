"""Endpoints ``POST /companies/{companyId}/data/queue/{dataType}`` and
``POST /companies/{companyId}/data/all`` (refresh-data-type, refresh-company-data).

They queue pull operations on the refresh overlay (:mod:`auditor.sandbox._refresh`).
``data/all`` queues only the data types whose sync setting (the company's own when it
overrides the defaults, else the profile's) has ``fetchOnFirstLink: true`` and that a
``Linked`` connection of the company serves; of those it skips the types still running and
those the platform does not support (``NotSupported``). ``data/queue/{dataType}`` queues any
type, whatever its fetchOnFirstLink.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from auditor.constants import ALL_DATA_TYPES, IN_PROGRESS_STATUSES, source_type_of
from auditor.sandbox._fleet import CompanyRecord
from auditor.sandbox._refresh import connection_for, refresh_all_candidates
from auditor.sandbox._responses import Errors, json_response
from auditor.sandbox._state import SandboxState

__all__ = ["ALREADY_IN_PROGRESS_STATUS", "refresh_company_data", "refresh_data_type"]

#: HTTP status of the ``DatasetAlreadyInProgressException`` answer. Codat's spec lists no 409
#: for ``refresh-data-type``; 400 (its "Malformed-Query" ErrorMessage response) is.
ALREADY_IN_PROGRESS_STATUS: Final = 400


def _in_progress_error(
    errors: Errors, record: CompanyRecord, data_type: str, dataset_id: str | None
) -> web.Response:
    return errors.error(
        ALREADY_IN_PROGRESS_STATUS,
        f"DatasetAlreadyInProgressException: Cannot queue {data_type} sync for "
        f"{record.id} as previous sync {dataset_id} is still in progress",
        "PullApi",
    )


async def refresh_data_type(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    data_type = request.match_info["dataType"]
    now = state.now()
    record = state.record(company_id, now)
    if record is None:
        return state.errors.not_found(company_id)
    if data_type not in ALL_DATA_TYPES:
        return state.errors.error(400, f"Error processing request - unknown data type {data_type}.")
    connection_id = request.query.get("connectionId")
    if connection_id:
        connection = next((c for c in record.connections if c.get("id") == connection_id), None)
        if connection is None:
            return state.errors.error(404, f"Data connection {connection_id} not found")
        if connection.get("sourceType") != source_type_of(data_type):
            return state.errors.error(
                400,
                f"Error processing request - data connection {connection_id} does not "
                f"serve {data_type}.",
            )
    else:
        connection = connection_for(record, data_type)
        if connection is None:
            return state.errors.error(
                400,
                f"Error processing request - company {company_id} has no linked data "
                f"connection for {data_type}.",
            )
    if connection.get("status") not in ("Linked", "Deauthorized"):
        return state.errors.error(
            400,
            f"Error processing request - data connection {connection.get('id')} is "
            f"{connection.get('status')}.",
        )
    status, latest = state.refresh.effective(record, data_type, now)
    if status in IN_PROGRESS_STATUSES:
        return _in_progress_error(state.errors, record, data_type, latest)
    op = state.refresh.queue(record, data_type, connection, now)
    return json_response(op.to_json(now))


async def refresh_company_data(state: SandboxState, request: web.Request) -> web.StreamResponse:
    company_id = request.match_info["companyId"]
    now = state.now()
    record = state.record(company_id, now)
    if record is None:
        return state.errors.not_found(company_id)
    for data_type, connection in refresh_all_candidates(record, state.fleet.sync_settings):
        status, _ = state.refresh.effective(record, data_type, now)
        if status in IN_PROGRESS_STATUSES or status == "NotSupported":
            continue  # running: left to run; NotSupported: the platform has no such data
        state.refresh.queue(record, data_type, connection, now)
    return web.Response(status=204)
