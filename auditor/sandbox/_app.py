"""The routing table of a sandbox: each endpoint, its operationId and the function serving it.

Which file serves which endpoint:

* ``_routes_companies.py``: ``GET /companies``, ``GET /companies/{companyId}``,
  ``GET /companies/{companyId}/connections``;
* ``_routes_data.py``: ``GET /companies/{companyId}/dataStatus``,
  ``GET /companies/{companyId}/data/history`` and ``.../data/history/{datasetId}``;
* ``_routes_refresh.py``: ``POST /companies/{companyId}/data/queue/{dataType}``,
  ``POST /companies/{companyId}/data/all``;
* ``_routes_settings.py``: ``GET /profile/syncSettings``,
  ``GET /companies/{companyId}/syncSettings``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from auditor.sandbox import _routes_companies, _routes_data, _routes_refresh, _routes_settings
from auditor.sandbox._middleware import SandboxMiddleware
from auditor.sandbox._state import SandboxState

__all__ = ["OPERATION_IDS", "build_app"]

#: Endpoint (route) -> the spec's operationId, used as the key of the request counters.
OPERATION_IDS: Final[dict[tuple[str, str], str]] = {
    ("GET", "/companies"): "list-companies",
    ("GET", "/companies/{companyId}"): "get-company",
    ("GET", "/companies/{companyId}/connections"): "list-connections",
    ("GET", "/companies/{companyId}/dataStatus"): "get-company-data-status",
    ("GET", "/companies/{companyId}/data/history"): "list-pull-operations",
    ("GET", "/companies/{companyId}/data/history/{datasetId}"): "get-pull-operation",
    ("POST", "/companies/{companyId}/data/all"): "refresh-company-data",
    ("POST", "/companies/{companyId}/data/queue/{dataType}"): "refresh-data-type",
    ("GET", "/profile/syncSettings"): "get-profile-syncSettings",
    ("GET", "/companies/{companyId}/syncSettings"): "get-company-syncSettings",
}

_Endpoint = Callable[[SandboxState, web.Request], Awaitable[web.StreamResponse]]

#: operationId -> the function serving it.
_ENDPOINTS: Final[dict[str, _Endpoint]] = {
    "list-companies": _routes_companies.list_companies,
    "get-company": _routes_companies.get_company,
    "list-connections": _routes_companies.list_connections,
    "get-company-data-status": _routes_data.data_status,
    "list-pull-operations": _routes_data.list_pull_operations,
    "get-pull-operation": _routes_data.get_pull_operation,
    "refresh-company-data": _routes_refresh.refresh_company_data,
    "refresh-data-type": _routes_refresh.refresh_data_type,
    "get-profile-syncSettings": _routes_settings.profile_settings,
    "get-company-syncSettings": _routes_settings.company_settings,
}


def build_app(state: SandboxState, middleware: SandboxMiddleware) -> web.Application:
    """The aiohttp application serving ``state``, every request going through ``middleware``."""
    app = web.Application(middlewares=[middleware.handle], client_max_size=1024**2)
    for (method, path), operation_id in OPERATION_IDS.items():
        handler = functools.partial(_ENDPOINTS[operation_id], state)
        if method == "GET":  # answers HEAD too, as aiohttp's GET routes do
            app.router.add_get(path, handler, name=operation_id)
        else:
            app.router.add_route(method, path, handler, name=operation_id)
    return app
