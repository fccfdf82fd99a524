"""Pydantic models of the Codat Platform API objects we read and write.

They follow ``shared/codat-oas/Codat-Platform.json`` (field names by alias, camelCase on the
wire) but accept what Codat's docs show and the spec does not:

* a data type never synced: ``{"dataType": "suppliers"}`` with no ``currentStatus``;
* timestamps with 7 fractional digits (``2019-06-11T13:26:54.6884704Z``) or no zone (UTC);
* status values and data types outside the spec's enums (kept as plain strings);
* extra fields anywhere (ignored), null where the spec says absent.

All timestamps become timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "Company",
    "CompanySyncSettings",
    "Connection",
    "DataStatus",
    "ErrorMessage",
    "Page",
    "PullOperation",
    "SyncSetting",
    "SyncSettings",
    "UtcDateTime",
    "parse_codat_datetime",
]

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_codat_datetime(value: Any) -> Any:
    """Parse Codat's ISO-8601 variants into an aware UTC datetime (other values pass through).

    More than 6 fractional digits are truncated to microseconds; a missing zone means UTC.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        text = _FRACTION.sub(r"\1", text)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    else:
        return value
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


UtcDateTime = Annotated[datetime, BeforeValidator(parse_codat_datetime)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class Connection(_Model):
    """A data connection (``Connection`` in the spec)."""

    id: str
    integration_id: str | None = Field(default=None, alias="integrationId")
    integration_key: str | None = Field(default=None, alias="integrationKey")
    source_id: str | None = Field(default=None, alias="sourceId")
    source_type: str | None = Field(default=None, alias="sourceType")
    platform_name: str | None = Field(default=None, alias="platformName")
    link_url: str | None = Field(default=None, alias="linkUrl")
    status: str | None = None
    last_sync: UtcDateTime | None = Field(default=None, alias="lastSync")
    created: UtcDateTime | None = None


class Company(_Model):
    """A company (``Company`` in the spec), with its ``dataConnections``."""

    id: str
    name: str = ""
    description: str | None = None
    created: UtcDateTime | None = None
    last_sync: UtcDateTime | None = Field(default=None, alias="lastSync")
    data_connections: list[Connection] = Field(default_factory=list, alias="dataConnections")


class DataStatus(_Model):
    """One data type's status. ``current_status`` is None for a type never synced."""

    data_type: str = Field(alias="dataType")
    current_status: str | None = Field(default=None, alias="currentStatus")
    last_successful_sync: UtcDateTime | None = Field(default=None, alias="lastSuccessfulSync")
    latest_sync_id: str | None = Field(default=None, alias="latestSyncId")
    latest_successful_sync_id: str | None = Field(default=None, alias="latestSuccessfulSyncId")


class PullOperation(_Model):
    """A pull operation (dataset): one sync of one data type."""

    id: str
    company_id: str | None = Field(default=None, alias="companyId")
    connection_id: str | None = Field(default=None, alias="connectionId")
    data_type: str | None = Field(default=None, alias="dataType")
    status: str | None = None
    status_description: str | None = Field(default=None, alias="statusDescription")
    error_message: str | None = Field(default=None, alias="errorMessage")
    requested: UtcDateTime | None = None
    completed: UtcDateTime | None = None
    progress: int | None = None
    is_completed: bool | None = Field(default=None, alias="isCompleted")
    is_errored: bool | None = Field(default=None, alias="isErrored")


class SyncSetting(_Model):
    """One data type's sync setting. ``sync_schedule`` is in hours."""

    data_type: str = Field(alias="dataType")
    fetch_on_first_link: bool = Field(default=False, alias="fetchOnFirstLink")
    sync_schedule: int | None = Field(default=None, alias="syncSchedule")
    sync_order: int | None = Field(default=None, alias="syncOrder")
    sync_from_utc: UtcDateTime | None = Field(default=None, alias="syncFromUtc")
    sync_from_window: int | None = Field(default=None, alias="syncFromWindow")
    months_to_sync: int | None = Field(default=None, alias="monthsToSync")
    is_locked: bool | None = Field(default=None, alias="isLocked")


class SyncSettings(_Model):
    """The client's sync settings (``GET /profile/syncSettings``)."""

    client_id: str | None = Field(default=None, alias="clientId")
    settings: list[SyncSetting] = Field(default_factory=list)
    overrides_defaults: bool | None = Field(default=None, alias="overridesDefaults")


class CompanySyncSettings(_Model):
    """A company's sync settings (``GET /companies/{id}/syncSettings``)."""

    company_id: str | None = Field(default=None, alias="companyId")
    settings: list[SyncSetting] = Field(default_factory=list)
    overrides_defaults: bool | None = Field(default=None, alias="overridesDefaults")


class ErrorMessage(_Model):
    """Codat's error body (``ErrorMessage`` in the spec)."""

    status_code: int | None = Field(default=None, alias="statusCode")
    service: str | None = None
    error: str | None = None
    correlation_id: str | None = Field(default=None, alias="correlationId")
    can_be_retried: str | None = Field(default=None, alias="canBeRetried")
    detailed_error_code: int | None = Field(default=None, alias="detailedErrorCode")
    validation: dict[str, Any] | None = None


class Page(_Model):
    """The paging envelope (``PagingInfo``) around ``results``."""

    results: list[dict[str, Any]] = Field(default_factory=list)
    page_number: int = Field(default=1, alias="pageNumber")
    page_size: int = Field(default=0, alias="pageSize")
    total_results: int = Field(default=0, alias="totalResults")
    links: dict[str, Any] | None = Field(default=None, alias="_links")
