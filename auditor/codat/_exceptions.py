"""The client's one exception tree.

Every error the client raises is a :class:`CodatError`; nothing from httpx, pydantic or
``json`` escapes it. Each carries the request method and path (never the query string, never
a header), the number of attempts made, and, when Codat answered, the HTTP status and the
fields of Codat's ``ErrorMessage`` body. None of them ever carries the API key::

    CodatError                          anything the client could not do
    ├── CodatQuotaExhaustedError        Codat's daily quota is spent (a 429 whose Retry-After
    │                                   is past the bound) or the next request would cross the
    │                                   reserve kept for the customer's own application:
    │                                   fatal, no request is sent until ``resets_at``
    ├── CodatTransportError             no HTTP response at all (``request_sent`` says whether
    │   │                               the request may have reached Codat)
    │   ├── CodatConnectError           could not connect: the request was never sent
    │   └── CodatTimeoutError           connect, write, read or pool timeout
    │       └── CodatDeadlineError      the whole exchange (headers and body) overran the
    │                                   per-request deadline: a body that drips
    ├── CodatResponseError              a 2xx answer we cannot read: not JSON, wrong shape
    │   ├── DataStatusEntryError        some dataStatus entries unreadable; carries the rest
    │   ├── CodatResponseTooLargeError  a body larger (once decompressed) than the size cap
    │   └── CodatPaginationError        a paged list that does not end (pages repeat, run
    │                                   past totalResults or past the page cap)
    └── CodatHTTPError                  Codat answered with an error status (>= 400)
        ├── CodatAuthError              401, 403 (and 402: the key cannot do this)
        ├── CodatNotFoundError          404: unknown company, connection or dataset
        ├── CodatRateLimitError         429 (``retry_after`` in seconds when given)
        ├── CodatServerError            5xx
        └── DatasetAlreadyInProgressError
                                        a queue request refused because a sync of that data
                                        type is still running (error text starting
                                        ``DatasetAlreadyInProgressException``), whatever the
                                        status code Codat used for it

Retry decisions (see ``_client``) are made on these types: transport errors (a deadline
overrun included, like a read timeout), 408, 429, 5xx and unreadable bodies are transient
for reads, except a body over the size cap (it would be as large again) and a pagination
error (raised after the pages were read, never retried); queue requests are retried only when the
request provably did not queue anything.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from auditor.codat._models import ErrorMessage

__all__ = [
    "CodatAuthError",
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
    "DataStatusEntryError",
    "DatasetAlreadyInProgressError",
    "error_for_status",
]

_IN_PROGRESS = re.compile(
    r"DatasetAlreadyInProgressException:\s*Cannot queue (?P<data_type>\S+) sync for "
    r"(?P<company_id>\S+) as previous sync (?P<dataset_id>\S+) is still in progress"
)


class CodatError(Exception):
    """Base of every error the client raises. Never carries the API key.

    ``endpoint`` is the spec's operation id (``get-company-data-status``), ``method`` and
    ``path`` the request line without query string, ``attempts`` how many times the request
    was sent (1 when it was not retried).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        method: str | None = None,
        endpoint: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.method = method
        self.endpoint = endpoint
        self.attempts = attempts

    def __str__(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        plural = "" if self.attempts == 1 else "s"
        suffix = f" [{where}, {self.attempts} attempt{plural}]" if where else ""
        return f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class CodatQuotaExhaustedError(CodatError):
    """The daily quota (``X-Rate-Limit-*``, see docs.codat.io/using-the-api/rate-limits) is
    spent, or what is left of it is the reserve kept for the customer's own application.

    Fatal for a run: every later request would be refused (or would eat the reserve) until
    the quota resets at 00:00 UTC. ``resets_at`` is that moment when known (tz-aware UTC),
    ``status_code`` 429 when Codat refused a request, None when the client stopped before the
    reserve; ``retry_after`` Codat's Retry-After in seconds; ``limit`` and ``remaining`` the
    last quota headers read (None when none were).
    """

    def __init__(
        self,
        message: str,
        *,
        resets_at: datetime | None,
        status_code: int | None = None,
        retry_after: float | None = None,
        limit: int | None = None,
        remaining: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.resets_at = resets_at
        self.status_code = status_code
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining

    @property
    def resets_text(self) -> str:
        """``2026-12-02 00:00 UTC``, or ``an unknown time`` when Codat did not say."""
        if self.resets_at is None:
            return "an unknown time"
        return f"{self.resets_at.astimezone(UTC):%Y-%m-%d %H:%M UTC}"


class CodatTransportError(CodatError):
    """No HTTP response: connection refused or reset, timeout, protocol error.

    ``request_sent`` is False only when the request provably never left the client
    (connect error or connect/pool timeout); otherwise Codat may have received it.
    """

    def __init__(self, message: str, *, request_sent: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.request_sent = request_sent


class CodatConnectError(CodatTransportError):
    """Could not open a connection: the request was never sent."""


class CodatBaseURLError(CodatConnectError):
    """The base URL cannot work as it is: its host does not resolve (DNS), or its scheme is
    not http(s). Never retried (no retry can fix it); the message says what to check."""


class CodatTimeoutError(CodatTransportError):
    """A connect, write, read or pool timeout."""


class CodatDeadlineError(CodatTimeoutError):
    """The request's total deadline passed before the whole answer arrived.

    Each read may have been quick (a body dripping a byte a second never trips the read
    timeout): the deadline bounds the whole exchange. ``deadline`` is in seconds.
    """

    def __init__(self, message: str, *, deadline: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.deadline = deadline


class CodatResponseError(CodatError):
    """A successful status whose body we cannot read (not JSON, or not the expected shape)."""


class CodatResponseTooLargeError(CodatResponseError):
    """The answer's body, decompressed, is larger than the client's ``max_response_bytes``
    (``limit``); reading stopped there. Not retried."""

    def __init__(self, message: str, *, limit: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit


class CodatPaginationError(CodatResponseError):
    """A paged list that does not end: a page repeats items already seen, pages go on past
    ``totalResults``, or the page cap is reached. The listing fails as a whole. ``pages``:
    pages read."""

    def __init__(self, message: str, *, pages: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.pages = pages


class DataStatusEntryError(CodatResponseError):
    """Some entries of a ``dataStatus`` body could not be read; the others could.

    ``statuses`` holds every readable entry (data type -> DataStatus), ``invalid`` maps each
    unreadable data type to the reason. Nothing is lost: record ``invalid`` as errors and
    keep ``statuses``.
    """

    def __init__(
        self,
        message: str,
        *,
        statuses: dict[str, Any],
        invalid: dict[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.statuses = statuses
        self.invalid = invalid


class CodatHTTPError(CodatError):
    """Codat answered with an error status.

    ``status_code`` is the HTTP status; the other attributes are the fields of Codat's
    ``ErrorMessage`` body when it had one (``error_message`` holds the whole parsed body).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_message: ErrorMessage | None = None,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.error_message = error_message
        self.retry_after = retry_after
        body = error_message or ErrorMessage()
        self.error: str | None = body.error
        self.service: str | None = body.service
        self.correlation_id: str | None = body.correlation_id
        self.can_be_retried: str | None = body.can_be_retried
        self.detailed_error_code: int | None = body.detailed_error_code
        self.validation: dict[str, Any] | None = body.validation


class CodatAuthError(CodatHTTPError):
    """401 or 403 (or 402): the API key is missing, wrong, or not allowed to do this."""


class CodatNotFoundError(CodatHTTPError):
    """404: unknown company, connection or dataset."""


class CodatRateLimitError(CodatHTTPError):
    """429: too many requests. ``retry_after`` is Codat's Retry-After in seconds, if given."""


class CodatServerError(CodatHTTPError):
    """A 5xx answer."""


class DatasetAlreadyInProgressError(CodatHTTPError):
    """A sync of this data type is still running, so Codat refused to queue another.

    ``data_type``, ``company_id`` and ``dataset_id`` (the running sync) are read from
    Codat's message when it has the documented form, else None.
    """

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        match = _IN_PROGRESS.search(self.error or "")
        self.data_type: str | None = match["data_type"] if match else None
        self.company_id: str | None = match["company_id"] if match else None
        self.dataset_id: str | None = match["dataset_id"] if match else None


def error_for_status(
    status_code: int,
    error_message: ErrorMessage | None,
    *,
    method: str,
    path: str,
    endpoint: str,
    retry_after: float | None = None,
) -> CodatHTTPError:
    """The exception for an error answer (``status_code`` >= 400) and its parsed body."""
    text = (error_message.error if error_message else None) or ""
    cls: type[CodatHTTPError]
    if text.lstrip().startswith("DatasetAlreadyInProgressException"):
        cls = DatasetAlreadyInProgressError
    elif status_code in (401, 402, 403):
        cls = CodatAuthError
    elif status_code == 404:
        cls = CodatNotFoundError
    elif status_code == 429:
        cls = CodatRateLimitError
    elif status_code >= 500:
        cls = CodatServerError
    else:
        cls = CodatHTTPError
    message = f"HTTP {status_code}"
    if text:
        message += f": {text}"
    return cls(
        message,
        status_code=status_code,
        error_message=error_message,
        retry_after=retry_after,
        method=method,
        path=path,
        endpoint=endpoint,
    )
