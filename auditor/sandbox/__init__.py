"""A Codat-compatible sandbox: a real HTTP server on loopback serving a fleet of companies.

Public surface::

    from auditor.sandbox import (Fleet, SandboxOptions, SandboxServer, generate_fleet,
                                 load_fleet, SANDBOX_API_KEY)

See ``docs/sandbox.md`` for the fleet-file format, the endpoints and the knobs.
"""

from __future__ import annotations

from auditor.sandbox._app import OPERATION_IDS
from auditor.sandbox._fleet import (
    CompanyRecord,
    Fleet,
    FleetFileError,
    default_sync_settings,
    load_fleet,
)
from auditor.sandbox._generate import GeneratedFleet, generate_fleet
from auditor.sandbox._options import SANDBOX_API_KEY, SandboxOptions
from auditor.sandbox._refresh import LiveOperation
from auditor.sandbox._routes_refresh import ALREADY_IN_PROGRESS_STATUS
from auditor.sandbox._server import SandboxServer
from auditor.sandbox._stats import SandboxStats

__all__ = [
    "ALREADY_IN_PROGRESS_STATUS",
    "OPERATION_IDS",
    "SANDBOX_API_KEY",
    "CompanyRecord",
    "Fleet",
    "FleetFileError",
    "GeneratedFleet",
    "LiveOperation",
    "SandboxOptions",
    "SandboxServer",
    "SandboxStats",
    "default_sync_settings",
    "generate_fleet",
    "load_fleet",
]
