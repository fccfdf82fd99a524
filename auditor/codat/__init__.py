"""``auditor.codat``: the async client for the Codat Platform API and its models.

See ``docs/client.md``. The public surface::

    async with CodatClient(api_key, base_url=url) as client:
        async for company in client.iter_companies():
            statuses = await client.get_data_status(company.id)
"""

from __future__ import annotations

from auditor.codat._client import DEFAULT_BASE_URL, MAX_PAGE_SIZE, ClientStats, CodatClient
from auditor.codat._config import RateLimitPolicy, RetryPolicy
from auditor.codat._exceptions import (
    CodatAuthError,
    CodatConnectError,
    CodatError,
    CodatHTTPError,
    CodatNotFoundError,
    CodatRateLimitError,
    CodatResponseError,
    CodatServerError,
    CodatTimeoutError,
    CodatTransportError,
    DatasetAlreadyInProgressError,
    DataStatusEntryError,
)
from auditor.codat._limiter import RequestLimiter, parse_reset, parse_retry_after
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
    parse_data_status_entry,
    parse_error_message,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_PAGE_SIZE",
    "ClientStats",
    "CodatAuthError",
    "CodatClient",
    "CodatConnectError",
    "CodatError",
    "CodatHTTPError",
    "CodatNotFoundError",
    "CodatRateLimitError",
    "CodatResponseError",
    "CodatServerError",
    "CodatTimeoutError",
    "CodatTransportError",
    "Company",
    "CompanySyncSettings",
    "Connection",
    "DataStatus",
    "DataStatusEntryError",
    "DatasetAlreadyInProgressError",
    "ErrorMessage",
    "Page",
    "PullOperation",
    "RateLimitPolicy",
    "RequestLimiter",
    "RetryPolicy",
    "SyncSetting",
    "SyncSettings",
    "parse_codat_datetime",
    "parse_data_status_entry",
    "parse_error_message",
    "parse_reset",
    "parse_retry_after",
]
