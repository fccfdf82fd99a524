"""The async Codat Platform API client: the only door to Codat.

One :class:`CodatClient` holds one ``httpx.AsyncClient`` (a keep-alive connection pool) and
one :class:`~auditor.codat._limiter.RequestLimiter`, shared by every task that uses it.

Each call goes: limiter (per-company slot, pause gate, requests-per-minute bucket) → one
HTTP request with a timeout → status mapped to the exception tree (``_exceptions``) → JSON
decoded → models built. Transient failures are retried by tenacity under a
:class:`~auditor.codat._config.RetryPolicy`; every attempt goes through the limiter again.

Retry decision
--------------
Reads (every GET) are retried on connection errors, timeouts, connection resets, 408, 429,
5xx (unless Codat's body says ``canBeRetried: "False"``) and bodies that are not JSON.

Errors no retry can fix fail at once, reads and queues alike, with a
:class:`CodatBaseURLError` whose message says to check the base URL: a host that does not
resolve (a ``socket.gaierror`` behind the transport error: httpx's ``ConnectError``, or
the ``ConnectTimeout`` httpx-aiohttp raises for aiohttp's DNS error; a *temporary* failure,
``EAI_AGAIN``, counts only until the client has had its first answer, after which it is
retried as a resolver hiccup), a host under ``.invalid`` (RFC 6761 6.4: never resolves, so
no lookup is made; tests rely on it where no DNS server answers) and a scheme httpx does not
speak (``httpx.UnsupportedProtocol``). A refused connection is still retried (a server may
be restarting).

A 429 is one of two limits (docs.codat.io/using-the-api/rate-limits). One whose Retry-After
is at most ``RateLimitPolicy.quota_retry_after_bound`` is the per-minute ceiling: every task
pauses until then and the request is retried. A longer one means the daily quota is spent:
:class:`CodatQuotaExhaustedError`, never retried, and the limiter sends nothing more (the
same error for every later call); so is a request that would take the quota below
``quota_reserve`` (it is not sent).

Queue requests (``POST /data/all``, ``POST /data/queue/{dataType}``) start a sync, so a
retry after Codat *may* have acted could queue a second one. They are retried only when the
request provably did nothing:

* it never reached Codat: connect errors, connect and pool timeouts (no byte was sent);
* Codat refused it before acting: 429 (rate limiter, in front of the API), 503 (API offline
  for maintenance) and 408 (the request itself did not arrive in time).

They are NOT retried after a read or write timeout, a connection reset or protocol error
once the request was sent, a 500/502/504, or an unreadable 2xx body: the sync may already be
queued. The caller gets the error (``CodatTransportError.request_sent`` is True) and can look
at ``dataStatus``/``data/history`` before trying again. ``DatasetAlreadyInProgressError`` is
never retried: it means a sync of that type is already running, which is what was wanted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from auditor.codat._config import RateLimitPolicy, RetryPolicy
from auditor.codat._exceptions import (
    CodatBaseURLError,
    CodatConnectError,
    CodatDeadlineError,
    CodatError,
    CodatHTTPError,
    CodatPaginationError,
    CodatQuotaExhaustedError,
    CodatRateLimitError,
    CodatResponseError,
    CodatResponseTooLargeError,
    CodatTimeoutError,
    CodatTransportError,
    DatasetAlreadyInProgressError,
    DataStatusEntryError,
    error_for_status,
)
from auditor.codat._limiter import RequestLimiter, parse_retry_after
from auditor.codat._models import (
    DATA_STATUSES,
    Company,
    CompanySyncSettings,
    Connection,
    DataStatus,
    ErrorMessage,
    PullOperation,
    SyncSettings,
    parse_error_message,
)
from auditor.codat._parse import (
    ParseIssues,
    loads_json,
    parse_company,
    parse_connection,
    parse_data_status_entry,
    parse_pull_operation,
    parse_sync_settings,
)
from auditor.logs import register_secret

__all__ = ["DEFAULT_BASE_URL", "ClientStats", "CodatClient"]

DEFAULT_BASE_URL = "https://api.codat.io"
MAX_PAGE_SIZE: Final = 5000
#: Default cap on one answer's body, decompressed (a page of 5,000 companies is ~10 MB).
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
#: Default cap on the pages of one listing when ``totalResults`` does not bound it.
MAX_PAGES: Final = 5_000

_log = logging.getLogger("auditor.codat")

_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
_QUEUE_SAFE_STATUSES: Final = frozenset({408, 429, 503})
_T = TypeVar("_T")


@dataclass
class ClientStats:
    """Counters per endpoint (the spec's operation id), for tests, benchmarks and reports.

    ``requests``: attempts sent (retries included); ``retries``: attempts after the first;
    ``rate_limited``: 429 answers received; ``failures``: calls that raised.
    """

    requests: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{"requests": {endpoint: n}, "retries": ..., ...}`` plus a ``total`` of each."""
        out: dict[str, dict[str, int]] = {}
        for name in ("requests", "retries", "rate_limited", "failures"):
            counter: Counter[str] = getattr(self, name)
            out[name] = {**dict(sorted(counter.items())), "total": counter.total()}
        return out


class _StopOnLongRetryAfter(stop_base):
    """Stop when Codat asks us to wait longer than ``limit`` seconds (Retry-After).

    A 429's Retry-After is bounded by the rate-limit policy's ``quota_retry_after_bound``
    instead (past it the answer is a :class:`CodatQuotaExhaustedError`, never retried)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _outcome_error(retry_state)
        return (
            isinstance(exc, CodatHTTPError)
            and not isinstance(exc, CodatRateLimitError)
            and exc.retry_after is not None
            and exc.retry_after > self.limit
        )


class _StopOnBudget(stop_base):
    """``stop_before_delay(seconds)``, except for a 429 with a Retry-After: waiting out the
    per-minute ceiling is bounded by ``quota_retry_after_bound`` and the attempts, not by the
    time budget (giving up there would cost every company waiting a ``not-collected``)."""

    def __init__(self, seconds: float) -> None:
        self._inner = stop_before_delay(seconds)

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _outcome_error(retry_state)
        if isinstance(exc, CodatRateLimitError) and exc.retry_after is not None:
            return False
        return bool(self._inner(retry_state))


def _outcome_error(retry_state: RetryCallState) -> BaseException | None:
    outcome = retry_state.outcome
    return outcome.exception() if outcome is not None else None


class _Attempts:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _is_retryable_read(exc: BaseException) -> bool:
    if isinstance(exc, DatasetAlreadyInProgressError | CodatResponseTooLargeError):
        return False
    if isinstance(exc, CodatBaseURLError):
        return False
    if isinstance(exc, CodatHTTPError):
        if exc.status_code >= 500:
            return (exc.can_be_retried or "").lower() != "false"
        return exc.status_code in (408, 429)
    return isinstance(exc, CodatTransportError | CodatResponseError)


def _is_retryable_queue(exc: BaseException) -> bool:
    if isinstance(exc, DatasetAlreadyInProgressError | CodatBaseURLError):
        return False
    if isinstance(exc, CodatHTTPError):
        return exc.status_code in _QUEUE_SAFE_STATUSES
    if isinstance(exc, CodatTransportError):
        return not exc.request_sent
    return False


def _gaierror(exc: BaseException) -> socket.gaierror | None:
    """The ``socket.gaierror`` (name resolution failed) behind ``exc``, if any: httpx raises
    ``ConnectError`` from httpcore's, itself raised from the resolver's error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, socket.gaierror):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


_CHECK_BASE_URL: Final = (
    "check the Codat base URL (CODAT_BASE_URL, --base-url or [run] base_url; "
    "https://api.codat.io for Codat)"
)


def _segment(value: str) -> str:
    """A path parameter, percent-encoded so it stays one path segment, the one named.

    Every character outside RFC 3986's unreserved set is encoded (``/``, ``?``, ``#``,
    ``%``, spaces, non-ASCII). A segment made only of dots (``.``, ``..``) has its dots
    encoded as ``%2E``: left as is, URL normalisation would remove it or climb a level
    (``/companies/../dataStatus`` is ``/dataStatus``). An empty value is refused.
    """
    if not value:
        raise ValueError("a path parameter must not be empty")
    if value.isascii() and value.isalnum():
        return value
    encoded = quote(value, safe="")
    if not encoded.strip("."):
        return "%2E" * len(encoded)
    return encoded


class CodatClient:
    """Async client for the Codat Platform API.

    Use as ``async with CodatClient(api_key, base_url=...) as client: ...``. The API key is
    sent as ``Authorization: Basic <base64(key)>`` and kept out of every ``repr``, log line
    and exception. ``timeout`` (seconds, or an ``httpx.Timeout``) bounds every request;
    ``retry`` and ``rate_limit`` are the policies (defaults: 5 attempts within 120 s; 1,000
    requests a minute and 10 in flight per company). At most ``max_in_flight`` requests
    (default 20, capped by ``max_connections``) are on the wire at once, whatever the number
    of tasks. ``transport`` replaces the network (tests pass an ``httpx.MockTransport``).

    ``deadline`` (seconds; default 3 x the read timeout, at least 10 s) bounds each attempt
    as a whole, headers and body: a body dripping a byte at a time never trips a read
    timeout, it trips this (:class:`CodatDeadlineError`, retried like a read timeout).
    ``max_response_bytes`` caps a body once decompressed (a gzip bomb stops there:
    :class:`CodatResponseTooLargeError`, not retried). ``max_pages`` caps one listing's
    pages when ``totalResults`` does not (see ``_iter_items``).

    ``parse_issues`` counts what the parsers could not read (fields left missing, records
    skipped): see :mod:`auditor.codat._parse`.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = 30.0,
        max_connections: int = 100,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimitPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_in_flight: int = 20,
        deadline: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_pages: int = MAX_PAGES,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        token = base64.b64encode(api_key.encode()).decode()
        register_secret(api_key)
        self._secrets: tuple[str, ...] = (api_key, token)
        if not isinstance(timeout, httpx.Timeout):
            # Waiting for a free pooled connection is our own queue, not Codat's slowness.
            timeout = httpx.Timeout(timeout, pool=None)
        if deadline is None:
            read = timeout.read if timeout.read is not None else 30.0
            deadline = max(10.0, 3 * read)
        if deadline <= 0 or max_response_bytes < 1 or max_pages < 1:
            raise ValueError("deadline, max_response_bytes and max_pages must be positive")
        self.deadline = float(deadline)
        self.max_response_bytes = max_response_bytes
        self.max_pages = max_pages
        self.parse_issues = ParseIssues()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Basic {token}", "Accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
        )
        self.base_url = base_url
        host = (self._http.base_url.host or "").rstrip(".").lower()
        #: RFC 6761 6.4: a name under ``.invalid`` never resolves; no lookup is made.
        self._never_resolves = host == "invalid" or host.endswith(".invalid")
        #: Whether any answer came back yet (a temporary resolver failure before that means
        #: the host has never resolved for this client: not retried).
        self._answered = False
        self.retry_policy = retry or RetryPolicy()
        self.rate_limit_policy = rate_limit or RateLimitPolicy()
        self.limiter = RequestLimiter(self.rate_limit_policy)
        self.stats = ClientStats()
        # httpcore's pool does work per request in flight on every event (CPU per call grows
        # from ~1 ms at 10 in flight to ~1.8 ms at 50 on loopback): hand it few at a time.
        # 20 in flight carry ~60 requests/s at Codat's ~0.3 s latency, 3.6x its 1,000/min.
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._in_flight = asyncio.Semaphore(min(max_in_flight, max_connections))
        policy = self.retry_policy
        stop = stop_any(
            stop_after_attempt(policy.max_attempts),
            _StopOnBudget(policy.max_total_seconds),
            _StopOnLongRetryAfter(policy.max_retry_after),
        )
        self._backoff = wait_exponential(
            multiplier=policy.initial_wait, max=policy.max_wait
        ) + wait_random(0, policy.jitter)
        common: dict[str, Any] = {
            "stop": stop,
            "wait": self._wait,
            "reraise": True,
            "before_sleep": self._log_retry,
        }
        self._retry_reads = AsyncRetrying(retry=retry_if_exception(_is_retryable_read), **common)
        self._retry_queues = AsyncRetrying(retry=retry_if_exception(_is_retryable_queue), **common)

    def __repr__(self) -> str:
        return f"CodatClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> CodatClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------ companies

    async def iter_companies(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        query: str | None = None,
        order_by: str | None = None,
    ) -> AsyncIterator[Company]:
        """Every company, with its ``dataConnections``, following the pages.

        Each company is read on its own: a field that cannot be read is left missing, a
        company (or connection) without a usable ``id`` is skipped; both are counted in
        :attr:`parse_issues`.
        """
        issues = self.parse_issues
        async for item in self._iter_items(
            "/companies", "list-companies", None, page_size, query, order_by
        ):
            company = parse_company(item, issues)
            if company is not None:  # else: no usable id, skipped and counted
                yield company

    async def list_companies(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        query: str | None = None,
        order_by: str | None = None,
    ) -> list[Company]:
        """All companies (``GET /companies``, every page)."""
        return [
            c
            async for c in self.iter_companies(page_size=page_size, query=query, order_by=order_by)
        ]

    async def get_company(self, company_id: str) -> Company:
        """``GET /companies/{companyId}``."""
        path = f"/companies/{_segment(company_id)}"
        body = await self._request("GET", path, "get-company", company_id)
        return self._one(parse_company(body, self.parse_issues), "Company", "get-company", path)

    # ---------------------------------------------------------------- connections

    async def iter_connections(
        self,
        company_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        query: str | None = None,
        order_by: str | None = None,
    ) -> AsyncIterator[Connection]:
        """Every data connection of a company (``GET /companies/{id}/connections``, paged)."""
        path = f"/companies/{_segment(company_id)}/connections"
        issues = self.parse_issues
        async for item in self._iter_items(
            path, "list-connections", company_id, page_size, query, order_by
        ):
            connection = parse_connection(item, issues)
            if connection is not None:
                yield connection

    async def list_connections(
        self,
        company_id: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        query: str | None = None,
        order_by: str | None = None,
    ) -> list[Connection]:
        """All data connections of a company."""
        return [
            c
            async for c in self.iter_connections(
                company_id, page_size=page_size, query=query, order_by=order_by
            )
        ]

    # ----------------------------------------------------------------- data status

    async def get_data_status(self, company_id: str) -> dict[str, DataStatus]:
        """``GET /companies/{id}/dataStatus``: data type -> status.

        Null entries are skipped; an entry without ``currentStatus`` has
        ``current_status=None``. Each entry is read on its own: a field that cannot be read
        (``lastSuccessfulSync: "yesterday"``, a time out of range, a wrong type) is None,
        with its raw text in the entry's ``unreadable``, and counted in
        :attr:`parse_issues`. If some entries are not objects at all, raises
        :class:`DataStatusEntryError` carrying the readable ones (``statuses``) and the
        reason for each unreadable data type (``invalid``): nothing is lost.
        """
        path = f"/companies/{_segment(company_id)}/dataStatus"
        endpoint = "get-company-data-status"
        body = await self._request("GET", path, endpoint, company_id, decode=_decode_data_statuses)
        out: dict[str, DataStatus] = {}
        if isinstance(body, _Parsed):  # fast path: the whole body was valid
            for key, value in body.value.items():
                if value is None:  # read as the never-synced form {"dataType": key}
                    out[key] = parse_data_status_entry(key, {}, self.parse_issues)
                    continue
                out[key] = (
                    value
                    if value.data_type == key
                    else value.model_copy(update={"data_type": key})
                )
            return out
        if not isinstance(body, dict):
            raise CodatResponseError(
                f"dataStatus answer is {type(body).__name__}, not an object",
                method="GET",
                path=path,
                endpoint=endpoint,
            )
        invalid: dict[str, str] = {}
        for key, value in body.items():
            try:
                # A null entry is read as the never-synced form {"dataType": key}: the type is
                # there with no status (a row the rules judge), never silently dropped.
                out[key] = parse_data_status_entry(key, {} if value is None else value,
                                                   self.parse_issues)
            except ValueError as exc:
                invalid[key] = _reason(exc)
        if invalid:
            listed = ", ".join(sorted(invalid)[:5]) + (" ..." if len(invalid) > 5 else "")
            raise DataStatusEntryError(
                f"{len(invalid)} unreadable dataStatus entr{'y' if len(invalid) == 1 else 'ies'}"
                f": {listed}",
                statuses=out,
                invalid=invalid,
                method="GET",
                path=path,
                endpoint=endpoint,
            )
        return out

    # ------------------------------------------------------------ pull operations

    async def iter_pull_operations(
        self,
        company_id: str,
        *,
        page_size: int = 100,
        query: str | None = None,
        order_by: str | None = None,
    ) -> AsyncIterator[PullOperation]:
        """A company's pull operations (``GET /companies/{id}/data/history``, paged).

        ``query`` is a Codat query (``dataType=invoices&&status=Complete``), ``order_by`` a
        field, ``-`` first for descending (``-requested``).
        """
        path = f"/companies/{_segment(company_id)}/data/history"
        issues = self.parse_issues
        async for item in self._iter_items(
            path, "list-pull-operations", company_id, page_size, query, order_by
        ):
            op = parse_pull_operation(item, issues)
            if op is not None:
                yield op

    async def list_pull_operations(
        self,
        company_id: str,
        *,
        page_size: int = 100,
        query: str | None = None,
        order_by: str | None = None,
        max_results: int | None = None,
    ) -> list[PullOperation]:
        """A company's pull operations, every page (or the first ``max_results``)."""
        out: list[PullOperation] = []
        if max_results is not None and max_results <= 0:
            return out
        async for op in self.iter_pull_operations(
            company_id, page_size=page_size, query=query, order_by=order_by
        ):
            out.append(op)
            if max_results is not None and len(out) >= max_results:
                break
        return out

    async def get_pull_operation(self, company_id: str, dataset_id: str) -> PullOperation:
        """``GET /companies/{id}/data/history/{datasetId}``."""
        path = f"/companies/{_segment(company_id)}/data/history/{_segment(dataset_id)}"
        body = await self._request("GET", path, "get-pull-operation", company_id)
        op = parse_pull_operation(body, self.parse_issues)
        return self._one(op, "PullOperation", "get-pull-operation", path)

    # -------------------------------------------------------------------- refresh

    async def refresh_all(self, company_id: str) -> None:
        """``POST /companies/{id}/data/all``: queue every ``fetchOnFirstLink`` type (204)."""
        path = f"/companies/{_segment(company_id)}/data/all"
        await self._request(
            "POST", path, "refresh-company-data", company_id, queue=True, expect_json=False
        )

    async def refresh_data_type(
        self, company_id: str, data_type: str, *, connection_id: str | None = None
    ) -> PullOperation:
        """``POST /companies/{id}/data/queue/{dataType}[?connectionId=]``: queue one type.

        Raises :class:`DatasetAlreadyInProgressError` when a sync of that type is running.
        """
        path = f"/companies/{_segment(company_id)}/data/queue/{_segment(data_type)}"
        params = {"connectionId": connection_id} if connection_id else None
        body = await self._request(
            "POST", path, "refresh-data-type", company_id, params=params, queue=True
        )
        op = parse_pull_operation(body, self.parse_issues)
        return self._one(op, "PullOperation", "refresh-data-type", path, method="POST")

    # -------------------------------------------------------------- sync settings

    async def get_sync_settings(self) -> SyncSettings:
        """``GET /profile/syncSettings``: the client-wide sync settings."""
        path = "/profile/syncSettings"
        body = await self._request("GET", path, "get-profile-syncSettings", None)
        settings = parse_sync_settings(SyncSettings, body, self.parse_issues)
        assert settings is None or isinstance(settings, SyncSettings)
        return self._one(settings, "SyncSettings", "get-profile-syncSettings", path)

    async def get_company_sync_settings(self, company_id: str) -> CompanySyncSettings:
        """``GET /companies/{id}/syncSettings``: one company's sync settings."""
        path = f"/companies/{_segment(company_id)}/syncSettings"
        body = await self._request("GET", path, "get-company-syncSettings", company_id)
        own = parse_sync_settings(CompanySyncSettings, body, self.parse_issues)
        assert own is None or isinstance(own, CompanySyncSettings)
        return self._one(own, "CompanySyncSettings", "get-company-syncSettings", path)

    # ------------------------------------------------------------------ internals

    async def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        company_id: str | None,
        *,
        params: dict[str, Any] | None = None,
        queue: bool = False,
        expect_json: bool = True,
        decode: Callable[[bytes], Any] = loads_json,
    ) -> Any:
        """Send with retries; the decoded body (None when ``expect_json`` is False).

        ``decode`` runs inside each attempt, so a body that is not JSON is retried; it
        raises ``ValueError`` for one.
        """
        attempts = _Attempts()

        async def attempt() -> Any:
            attempts.count += 1
            if attempts.count > 1:
                self.stats.retries[endpoint] += 1
            return await self._send(method, path, endpoint, company_id, params, expect_json, decode)

        retrying = (self._retry_queues if queue else self._retry_reads).copy()
        try:
            return await retrying(attempt)
        except CodatError as exc:
            exc.attempts = attempts.count
            self.stats.failures[endpoint] += 1
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("giving up: %s", exc)
            raise

    async def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        company_id: str | None,
        params: dict[str, Any] | None,
        expect_json: bool,
        decode: Callable[[bytes], Any],
    ) -> Any:
        """One attempt: limiter, request and body within the deadline, status, JSON."""
        limiter = self.limiter
        try:
            await limiter.acquire(company_id)
        except CodatQuotaExhaustedError as exc:
            exc.method, exc.path, exc.endpoint = method, path, endpoint
            raise
        answered: httpx.Headers | None = None
        try:
            self.stats.requests[endpoint] += 1
            async with self._in_flight:
                response, content = await self._exchange(method, path, params, endpoint)
            answered = response.headers
        finally:
            limiter.release(company_id, answered)
        status = response.status_code
        if status >= 400:
            raise self._http_error(response, content, method, path, endpoint)
        if not expect_json:
            return None
        try:
            return decode(content)
        except (ValueError, RecursionError):
            raise CodatResponseError(
                f"malformed JSON in the answer to {endpoint} (HTTP {status}, {len(content)} bytes)",
                method=method,
                path=path,
                endpoint=endpoint,
            ) from None

    async def _exchange(
        self, method: str, path: str, params: dict[str, Any] | None, endpoint: str
    ) -> tuple[httpx.Response, bytes]:
        """The response and its whole body (decompressed, at most ``max_response_bytes``),
        all within ``deadline`` seconds."""
        if self._never_resolves:
            raise CodatBaseURLError(
                f"the host {self._http.base_url.host} of the Codat base URL does not resolve "
                f"(a name under .invalid never does): {_CHECK_BASE_URL}",
                request_sent=False,
                method=method,
                path=path,
                endpoint=endpoint,
            )
        deadline = asyncio.timeout(self.deadline)
        try:
            async with deadline, self._http.stream(method, path, params=params) as response:
                content = await self._read_body(response, method, path, endpoint)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, method, path, endpoint) from None
        except TimeoutError:
            if deadline.expired():
                raise CodatDeadlineError(
                    f"no complete answer within the {self.deadline:g} s request deadline",
                    deadline=self.deadline,
                    request_sent=True,
                    method=method,
                    path=path,
                    endpoint=endpoint,
                ) from None
            raise CodatTimeoutError(
                "timed out", request_sent=True, method=method, path=path, endpoint=endpoint
            ) from None
        self._answered = True
        return response, content

    async def _read_body(
        self, response: httpx.Response, method: str, path: str, endpoint: str
    ) -> bytes:
        limit = self.max_response_bytes

        def too_large(size: str) -> CodatResponseTooLargeError:
            return CodatResponseTooLargeError(
                f"the answer to {endpoint} is larger than {limit:,} bytes ({size})",
                limit=limit,
                method=method,
                path=path,
                endpoint=endpoint,
            )

        declared = response.headers.get("content-length", "")
        encoded = "content-encoding" in response.headers
        if declared.isdigit() and not encoded and int(declared) > limit:
            raise too_large(f"Content-Length {int(declared):,}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():  # decompressed, chunk by chunk
            size += len(chunk)
            if size > limit:
                raise too_large("stopped reading there")
            chunks.append(chunk)
        return b"".join(chunks)

    def _transport_error(
        self, exc: httpx.HTTPError, method: str, path: str, endpoint: str
    ) -> CodatError:
        sent = not isinstance(exc, _NOT_SENT)
        fatal = self._base_url_problem(exc)
        if fatal is not None:
            return CodatBaseURLError(
                fatal, request_sent=False, method=method, path=path, endpoint=endpoint
            )
        detail = self._redact(str(exc)) or type(exc).__name__
        message = f"{type(exc).__name__}: {detail}" if detail != type(exc).__name__ else detail
        cls: type[CodatTransportError]
        if isinstance(exc, httpx.TimeoutException):
            cls = CodatTimeoutError
        elif isinstance(exc, httpx.ConnectError):
            cls = CodatConnectError
        elif isinstance(exc, httpx.TransportError):
            cls = CodatTransportError
        else:  # httpx.HTTPStatusError and friends: not raised by us, but be total
            return CodatError(message, method=method, path=path, endpoint=endpoint)
        return cls(message, request_sent=sent, method=method, path=path, endpoint=endpoint)

    def _base_url_problem(self, exc: httpx.HTTPError) -> str | None:
        """What no retry can fix about ``exc``, as a one-line message; None if a retry may."""
        base = self._http.base_url
        if isinstance(exc, httpx.UnsupportedProtocol):
            scheme = base.scheme or "none"
            return self._redact(
                f"the Codat base URL has an unsupported scheme ({scheme!r}; use https://, or "
                f"http:// for a sandbox): {_CHECK_BASE_URL}"
            )
        if not isinstance(exc, httpx.TransportError):
            return None
        # Any transport error: httpx-aiohttp maps aiohttp's DNS error to ConnectTimeout.
        found = _gaierror(exc)
        if found is None or (found.errno == socket.EAI_AGAIN and self._answered):
            return None
        why = found.strerror or str(found)
        return self._redact(
            f"the host {base.host} of the Codat base URL does not resolve ({why}): "
            f"{_CHECK_BASE_URL}, and this machine's DNS"
        )

    def _http_error(
        self, response: httpx.Response, content: bytes, method: str, path: str, endpoint: str
    ) -> CodatError:
        status = response.status_code
        try:
            body: Any = loads_json(content) if content else None
        except (ValueError, RecursionError):
            body = None
        error_message = self._scrub(parse_error_message(body))
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        exc = error_for_status(
            status,
            error_message,
            method=method,
            path=path,
            endpoint=endpoint,
            retry_after=retry_after,
        )
        if isinstance(exc, CodatRateLimitError):
            self.stats.rate_limited[endpoint] += 1
            spent = self.limiter.quota_spent(retry_after, response.headers)
            if spent is not None:  # the daily quota: fatal, nothing more is sent today
                spent.method, spent.path, spent.endpoint = method, path, endpoint
                return spent
            # The per-minute ceiling: every task waits, then the request is retried.
            pause = retry_after if retry_after is not None else self.retry_policy.initial_wait
            self.limiter.pause(pause)
        return exc

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, CodatHTTPError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        _log.info(
            "retrying after %s (attempt %d of %d) in %.2f s",
            exc,
            state.attempt_number + 1,
            self.retry_policy.max_attempts,
            wait,
        )

    async def _iter_items(
        self,
        path: str,
        endpoint: str,
        company_id: str | None,
        page_size: int,
        query: str | None,
        order_by: str | None,
    ) -> AsyncIterator[Any]:
        """Every item of a paged list, following ``_links.next`` or ``pageNumber``.

        Bounded, so that a listing always ends (else :class:`CodatPaginationError`):

        * a page most of whose items were listed already (by ``id``, else by content) is a
          loop (changing ``next`` links, the same page again and again): a few repeats,
          from companies added while listing shifting the offsets, are fine;
        * pages past ``totalResults``: at most ``2 * ceil(total / n) + 2`` pages, ``total``
          the largest announced and ``n`` the largest page received;
        * whatever ``totalResults`` says, at most ``max_pages`` pages.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        base: dict[str, Any] = {}
        if query:
            base["query"] = query
        if order_by:
            base["orderBy"] = order_by
        page = 1
        url, params = path, {**base, "page": page, "pageSize": page_size}
        seen = 0
        visited: set[str] = set()
        keys: set[Any] = set()
        announced = 0
        longest = 0
        pages = 0

        def fail(why: str) -> CodatPaginationError:
            return CodatPaginationError(
                f"the listing {endpoint} does not end: {why} (after {pages} pages, "
                f"{len(keys):,} distinct items)",
                pages=pages,
                method="GET",
                path=path,
                endpoint=endpoint,
            )

        while True:
            body = await self._request("GET", url, endpoint, company_id, params=params)
            pages += 1
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise CodatResponseError(
                    f"the answer to {endpoint} is not a page of results",
                    method="GET",
                    path=url,
                    endpoint=endpoint,
                )
            new = 0
            for item in results:
                key = _item_key(item)
                if key not in keys:
                    keys.add(key)
                    new += 1
            if results and 2 * new < len(results):
                raise fail(
                    f"page {pages} repeats items already listed ({len(results) - new:,} of "
                    f"{len(results):,})"
                )
            longest = max(longest, len(results))
            for item in results:
                yield item
            seen += len(results)
            total = body.get("totalResults")
            if not results or (type(total) is int and seen >= total):
                return
            if type(total) is int:
                announced = max(announced, total)
                if pages >= 2 * -(-announced // longest) + 2:
                    raise fail(
                        f"{pages} pages of at most {longest:,} and totalResults is {announced:,}"
                    )
            if pages >= self.max_pages:
                raise fail(f"the cap of {self.max_pages:,} pages is reached")
            nxt = self._next_link(body, path)
            if nxt is not None and nxt[2] not in visited:
                visited.add(nxt[2])
                url, params = nxt[0], {**base, **nxt[1]}
                page += 1
                continue
            if type(total) is int:
                page += 1
                url, params = path, {**base, "page": page, "pageSize": page_size}
                continue
            return

    def _next_link(self, body: dict[str, Any], path: str) -> tuple[str, dict[str, Any], str] | None:
        """``(path, params, href)`` of ``_links.next`` when it points at this API, else None.

        A link to another host is never followed: it would carry our Authorization header.
        """
        links = body.get("_links")
        nxt = links.get("next") if isinstance(links, dict) else None
        href = nxt.get("href") if isinstance(nxt, dict) else None
        if not isinstance(href, str) or not href:
            return None
        try:
            url = httpx.URL(href)
        except (httpx.InvalidURL, ValueError):
            return None
        base = self._http.base_url
        if url.is_absolute_url and (url.scheme, url.host, url.port) != (
            base.scheme,
            base.host,
            base.port,
        ):
            return None
        link_path = url.path
        prefix = base.path.rstrip("/")
        if prefix and link_path.startswith(prefix + "/"):
            link_path = link_path[len(prefix) :]
        if not link_path.startswith("/"):
            return None
        if link_path != path:  # a next page of a different list is not our next page
            return None
        return link_path, dict(url.params.multi_items()), href

    def _one(
        self, record: _T | None, name: str, endpoint: str, path: str, *, method: str = "GET"
    ) -> _T:
        """A single-record answer, or :class:`CodatResponseError` when it could not be
        identified (not an object, no usable ``id``)."""
        if record is None:
            raise CodatResponseError(
                f"unexpected {name} in the answer to {endpoint}: not an object with an id",
                method=method,
                path=path,
                endpoint=endpoint,
            )
        return record

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def _scrub(self, error_message: ErrorMessage | None) -> ErrorMessage | None:
        """``error_message`` with any echo of our key replaced by ``***``."""
        if error_message is None:
            return None
        dumped = json.dumps(error_message.model_dump(mode="json"), default=str)
        if not any(s in dumped for s in self._secrets):
            return error_message
        return ErrorMessage.model_validate_json(self._redact(dumped))


class _Parsed:
    """A ``dataStatus`` body validated in one pass."""

    __slots__ = ("value",)

    def __init__(self, value: dict[str, DataStatus | None]) -> None:
        self.value = value


def _decode_data_statuses(content: bytes) -> Any:
    """Fast path: validate the whole body from bytes in pydantic-core; on any problem, hand
    back the decoded body (:func:`loads_json`: valid UTF-8) for entry-by-entry reading.
    ``ValueError`` when it is not JSON."""
    try:
        return _Parsed(DATA_STATUSES.validate_json(content))
    except ValidationError:
        pass  # pydantic-core also refuses lone surrogates as "invalid JSON": not the end
    return loads_json(content)


def _item_key(item: Any) -> Any:
    """What identifies a listed item, to see a page repeat: its id, else its content."""
    if isinstance(item, dict):
        ident = item.get("id")
        if isinstance(ident, str) and ident:
            return ident
    try:
        return ("content", json.dumps(item, sort_keys=True, default=str))
    except (TypeError, ValueError, RecursionError):
        return ("object", id(item))


def _reason(exc: ValueError) -> str:
    """A short, input-free description of why a value could not be read."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)
        if first:
            err = first[0]
            loc = ".".join(str(p) for p in err["loc"])
            more = f" (+{len(first) - 1} more)" if len(first) > 1 else ""
            return f"{loc}: {err['msg']}{more}" if loc else f"{err['msg']}{more}"
    return str(exc)[:200]
