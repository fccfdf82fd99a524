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
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "DATA_STATUSES",
    "EARLIEST",
    "LATEST",
    "Company",
    "CompanySyncSettings",
    "Connection",
    "DataConnectionError",
    "DataStatus",
    "ErrorMessage",
    "Id",
    "Page",
    "PullOperation",
    "SyncSetting",
    "SyncSettings",
    "UtcDateTime",
    "parse_codat_datetime",
    "parse_error_message",
]

_NOTHING: Mapping[str, str] = MappingProxyType({})
_FRACTION = re.compile(r"(\.\d{6})\d+")
_ZERO = timedelta(0)
#: The instants a snapshot can hold: pandas' ``datetime64[ns]`` covers 1677-09-21 to
#: 2262-04-11. A time outside (``0001-01-01T00:00:00``, .NET's DateTime.MinValue, or
#: ``9999-12-31T23:59:59.9999999Z``, its MaxValue) is not a real sync time: unreadable.
EARLIEST: Final = datetime(1677, 9, 22, tzinfo=UTC)
LATEST: Final = datetime(2262, 4, 11, tzinfo=UTC)


def parse_codat_datetime(value: Any) -> datetime | None:
    """Parse one of Codat's DateTime forms into an aware UTC datetime.

    Accepted (``docs/client.md``, "Times"): ``Z`` or a ``±hh:mm`` offset (converted to UTC);
    no zone at all (taken as UTC, as Codat documents for its unqualified times); a date only
    (``2026-11-17`` is 00:00 UTC); 0 to 7 (or more) fractional digits, truncated to
    microseconds; surrounding spaces. ``None`` and an empty string are None.

    Anything else raises ``ValueError``: a string that is not a time (``"yesterday"``), a
    number, a boolean or a container (pydantic would read a number as Unix seconds), and a
    time outside :data:`EARLIEST`..:data:`LATEST` (.NET's MinValue and MaxValue included).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)  # fast path: 3.11 reads Z and 7 digits
        except ValueError:
            text = value.strip()
            if not text:
                return None
            text = _FRACTION.sub(r"\1", text)
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"not a time: {value[:40]!r}") from None
    else:
        raise ValueError(f"not a time: a {type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    elif dt.utcoffset() == _ZERO:
        if dt.tzinfo is not UTC:
            dt = dt.replace(tzinfo=UTC)
    else:
        try:
            dt = dt.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"time out of range: {value!r}") from None
    if not EARLIEST <= dt <= LATEST:
        raise ValueError(f"time out of range: {str(value)[:40]!r}")
    return dt


UtcDateTime = Annotated[datetime | None, BeforeValidator(parse_codat_datetime)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank id")
    return value


#: An identifier: a string that is not blank (a record without one cannot be identified:
#: ``" "`` would be audited under an id no request can address).
Id = Annotated[str, StringConstraints(min_length=1), AfterValidator(_not_blank)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    # Fields that could not be read (wire name -> raw text), set by the lenient parsers
    # (``_parse``); None when every field was read. Private: no payload can set it.
    _unreadable: dict[str, str] | None = PrivateAttr(default=None)

    @property
    def unreadable(self) -> Mapping[str, str]:
        """Fields of the payload that could not be read and were left missing: wire name
        (``lastSuccessfulSync``) -> the raw value as text (at most 200 characters)."""
        return self._unreadable or _NOTHING


def _text_or_none(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return value


#: A text field that also takes a number or a boolean (as its text): the spec's ``statusCode``
#: of a connection error is a string, platforms send numbers.
_Text = Annotated[str | None, BeforeValidator(_text_or_none)]


class DataConnectionError(_Model):
    """One entry of a connection's ``dataConnectionErrors`` (``dataConnectionError`` in the
    spec): what the source platform or Codat said when the connection failed."""

    status_code: _Text = Field(default=None, alias="statusCode")
    status_text: _Text = Field(default=None, alias="statusText")
    error_message: _Text = Field(default=None, alias="errorMessage")
    errored_on_utc: UtcDateTime | None = Field(default=None, alias="erroredOnUtc")
    status: _Text = None
    resolved_on_utc: UtcDateTime | None = Field(default=None, alias="resolvedOnUtc")

    @property
    def resolved(self) -> bool:
        """True when Codat says the error is over (``status`` Resolved or a resolution time)."""
        return self.status == "Resolved" or self.resolved_on_utc is not None

    @property
    def text(self) -> str | None:
        """``errorMessage``, else ``statusText``, else ``statusCode`` (None when all empty)."""
        for value in (self.error_message, self.status_text, self.status_code):
            if value is not None and value.strip():
                return value.strip()
        return None


class Connection(_Model):
    """A data connection (``Connection`` in the spec).

    ``data_connection_errors`` and ``connection_info`` are None when Codat sent none (or sent
    something unreadable: then counted, see ``_parse``)."""

    id: Id
    integration_id: str | None = Field(default=None, alias="integrationId")
    integration_key: str | None = Field(default=None, alias="integrationKey")
    source_id: str | None = Field(default=None, alias="sourceId")
    source_type: str | None = Field(default=None, alias="sourceType")
    platform_name: str | None = Field(default=None, alias="platformName")
    link_url: str | None = Field(default=None, alias="linkUrl")
    status: str | None = None
    last_sync: UtcDateTime | None = Field(default=None, alias="lastSync")
    created: UtcDateTime | None = None
    data_connection_errors: list[DataConnectionError] | None = Field(
        default=None, alias="dataConnectionErrors"
    )
    connection_info: dict[str, Any] | None = Field(default=None, alias="connectionInfo")

    def latest_error(self) -> DataConnectionError | None:
        """The newest unresolved error that has a text (by ``erroredOnUtc``; an error without
        a time counts as the oldest); None when there is none."""
        best: DataConnectionError | None = None
        for err in self.data_connection_errors or ():
            if err.resolved or err.text is None:
                continue
            if best is None or _when(err) >= _when(best):
                best = err
        return best


def _when(err: DataConnectionError) -> datetime:
    return err.errored_on_utc or EARLIEST


class Company(_Model):
    """A company (``Company`` in the spec), with its ``dataConnections``."""

    id: Id
    name: str | None = None
    description: str | None = None
    created: UtcDateTime | None = None
    last_sync: UtcDateTime | None = Field(default=None, alias="lastSync")
    tags: dict[str, _Text] | None = None
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

    id: Id
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


def _int_or_none(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return value


class ErrorMessage(_Model):
    """Codat's error body (``ErrorMessage`` in the spec). Read leniently: see
    :func:`parse_error_message`."""

    status_code: Annotated[int | None, BeforeValidator(_int_or_none)] = Field(
        default=None, alias="statusCode"
    )
    service: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    error: Annotated[str | None, BeforeValidator(_text_or_none)] = None
    correlation_id: Annotated[str | None, BeforeValidator(_text_or_none)] = Field(
        default=None, alias="correlationId"
    )
    can_be_retried: Annotated[str | None, BeforeValidator(_text_or_none)] = Field(
        default=None, alias="canBeRetried"
    )
    detailed_error_code: Annotated[int | None, BeforeValidator(_int_or_none)] = Field(
        default=None, alias="detailedErrorCode"
    )
    validation: dict[str, Any] | None = None


def parse_error_message(body: Any) -> ErrorMessage | None:
    """The ``ErrorMessage`` in an error body, field by field; None when it is not an object.

    Never raises: a field that cannot be read is left None, the others are kept.
    """
    if not isinstance(body, dict):
        return None
    try:
        return ErrorMessage.model_validate(body)
    except ValidationError:
        pass
    fields: dict[str, Any] = {}
    for name, info in ErrorMessage.model_fields.items():
        key = info.alias or name
        if key in body:
            try:
                ErrorMessage.model_validate({key: body[key]})
            except ValidationError:
                continue
            fields[key] = body[key]
    return ErrorMessage.model_validate(fields)


class Page(_Model):
    """The paging envelope (``PagingInfo``) around ``results``."""

    results: list[dict[str, Any]] = Field(default_factory=list)
    page_number: int = Field(default=1, alias="pageNumber")
    page_size: int = Field(default=0, alias="pageSize")
    total_results: int = Field(default=0, alias="totalResults")
    links: dict[str, Any] | None = Field(default=None, alias="_links")


DATA_STATUSES: TypeAdapter[dict[str, DataStatus | None]] = TypeAdapter(dict[str, DataStatus | None])
"""Validates a whole ``dataStatus`` body in one pass (the fast path; see the client)."""
