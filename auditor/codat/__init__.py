"""``auditor.codat``: the async client for the Codat Platform API and its models.

See ``docs/client.md``. The public surface::

    async with CodatClient(api_key, base_url=url) as client:
        async for company in client.iter_companies():
            statuses = await client.get_data_status(company.id)
"""

from __future__ import annotations

from auditor.codat._client import (
    DEFAULT_BASE_URL,
    MAX_PAGE_SIZE,
    MAX_PAGES,
    MAX_RESPONSE_BYTES,
    ClientStats,
    CodatClient,
)
from auditor.codat._config import RateLimitPolicy, RetryPolicy
from auditor.codat._exceptions import (
    CodatAuthError,
    CodatBaseURLError,
    CodatConnectError,
    CodatDeadlineError,
    CodatError,
    CodatHTTPError,
    CodatNotFoundError,
    CodatPaginationError,
    CodatQuotaExhaustedError,
    CodatRateLimitError,
    CodatResponseError,
    CodatResponseTooLargeError,
    CodatServerError,
    CodatTimeoutError,
    CodatTransportError,
    DatasetAlreadyInProgressError,
    DataStatusEntryError,
)
from auditor.codat._limiter import (
    DailyQuota,
    RequestLimiter,
    parse_reset,
    parse_reset_at,
    parse_retry_after,
)
from auditor.codat._models import (
    EARLIEST,
    LATEST,
    Company,
    CompanySyncSettings,
    Connection,
    DataConnectionError,
    DataStatus,
    ErrorMessage,
    Page,
    PullOperation,
    SyncSetting,
    SyncSettings,
    parse_codat_datetime,
    parse_error_message,
)
from auditor.codat._parse import (
    ParseIssues,
    clean_text,
    loads_json,
    parse_company,
    parse_connection,
    parse_data_status_entry,
    parse_pull_operation,
    parse_sync_settings,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "EARLIEST",
    "LATEST",
    "MAX_PAGES",
    "MAX_PAGE_SIZE",
    "MAX_RESPONSE_BYTES",
    "ClientStats",
    "CodatAuthError",
    "CodatBaseURLError",
    "CodatClient",
    "CodatConnectError",
    "CodatDeadlineError",
    "CodatError",
    "CodatHTTPError",
    "CodatNotFoundError",
    "CodatPaginationError",
    "CodatQuotaExhaustedError",
    "CodatRateLimitError",
    "CodatResponseError",
    "CodatResponseTooLargeError",
    "CodatServerError",
    "CodatTimeoutError",
    "CodatTransportError",
    "Company",
    "CompanySyncSettings",
    "Connection",
    "DailyQuota",
    "DataConnectionError",
    "DataStatus",
    "DataStatusEntryError",
    "DatasetAlreadyInProgressError",
    "ErrorMessage",
    "Page",
    "ParseIssues",
    "PullOperation",
    "RateLimitPolicy",
    "RequestLimiter",
    "RetryPolicy",
    "SyncSetting",
    "SyncSettings",
    "clean_text",
    "loads_json",
    "parse_codat_datetime",
    "parse_company",
    "parse_connection",
    "parse_data_status_entry",
    "parse_error_message",
    "parse_pull_operation",
    "parse_reset",
    "parse_reset_at",
    "parse_retry_after",
    "parse_sync_settings",
]
