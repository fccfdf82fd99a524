"""``auditor.codat``: the async client for the Codat Platform API and its models."""

from __future__ import annotations

from auditor.codat._client import DEFAULT_BASE_URL, CodatClient
from auditor.codat._exceptions import CodatError, CodatHTTPError
from auditor.codat._models import (
    Company,
    CompanySyncSettings,
    Connection,
    DataStatus,
    ErrorMessage,
    Page,
    PullOperation,
    SyncSetting,
    SyncSettings,
    parse_codat_datetime,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "CodatClient",
    "CodatError",
    "CodatHTTPError",
    "Company",
    "CompanySyncSettings",
    "Connection",
    "DataStatus",
    "ErrorMessage",
    "Page",
    "PullOperation",
    "SyncSetting",
    "SyncSettings",
    "parse_codat_datetime",
]
