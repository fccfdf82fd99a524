"""Endpoints ``GET /profile/syncSettings`` and ``GET /companies/{companyId}/syncSettings``
(get-profile-syncSettings, get-company-syncSettings)."""

from __future__ import annotations

from aiohttp import web

from auditor.sandbox._responses import json_response
from auditor.sandbox._state import SandboxState


async def profile_settings(state: SandboxState, request: web.Request) -> web.Response:
    return json_response(state.fleet.sync_settings)


async def company_settings(state: SandboxState, request: web.Request) -> web.Response:
    company_id = request.match_info["companyId"]
    record = state.record(company_id)
    if record is None:
        return state.errors.not_found(company_id)
    if record.sync_settings is not None:
        return json_response(record.sync_settings)
    return json_response(
        {
            "companyId": company_id,
            "settings": state.fleet.sync_settings.get("settings", []),
            "overridesDefaults": False,
        }
    )
