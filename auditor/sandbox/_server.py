"""The sandbox HTTP server: Codat's Platform API endpoints over a fleet, on loopback.

An aiohttp application run by an ``AppRunner`` in a background thread with its own event
loop, so that it serves synchronous and asynchronous tests alike::

    with SandboxServer(generate_fleet(500, seed=1), options=SandboxOptions()) as srv:
        srv.base_url, srv.api_key, srv.stats

Each request goes through, in order: the rate limiter (429 past the limit), the latency knob,
authentication (401), fault injection (5xx, hang, connection reset, malformed JSON) and then
the endpoint. Fault decisions are a hash of ``(seed, method, path and query, n)`` where ``n``
counts earlier requests for that same method and URL: a run that sends the same requests
gets the same faults whatever the order of concurrent requests, and a retry of a failed
request draws anew. Faults are injected before the endpoint runs: a faulted queue request
queues nothing.

A generated fleet is served as of sandbox time (scheduled syncs, churn, outages: see
:mod:`auditor.sandbox._generate`); a fleet file is served verbatim. Refreshes are an overlay:
each queued data type gets a live pull operation whose status is a function of sandbox time
(see :class:`LiveOperation`), and the dataStatus shows it as the type's latest sync until a
newer scheduled sync (generated fleets) replaces it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import math
import signal
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from auditor.constants import (
    ALL_DATA_TYPES,
    ERROR_STATUSES,
    IN_PROGRESS_STATUSES,
    source_type_of,
)
from auditor.sandbox._fleet import CompanyRecord, Fleet, format_timestamp
from auditor.sandbox._generate import GeneratedFleet
from auditor.sandbox._query import QueryError, compile_query, order_by
from auditor.sandbox._quirks import QuirkPicker

__all__ = [
    "ALREADY_IN_PROGRESS_STATUS",
    "OPERATION_IDS",
    "SANDBOX_API_KEY",
    "LiveOperation",
    "SandboxOptions",
    "SandboxServer",
    "SandboxStats",
]

#: The API key a sandbox accepts unless ``SandboxOptions.api_key`` says otherwise. It guards
#: nothing; it is distinctive so that tests can check it never leaks into output.
SANDBOX_API_KEY: Final = "sandbox-key-7f3e9c2a5b8d4e61"

#: HTTP status of the ``DatasetAlreadyInProgressException`` answer. Codat's spec lists no 409
#: for ``refresh-data-type``; 400 (its "Malformed-Query" ErrorMessage response) is.
ALREADY_IN_PROGRESS_STATUS: Final = 400

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

#: Stages of a refresh, each lasting ``SandboxOptions.sync_phase_seconds`` of sandbox time.
REFRESH_STAGES: Final[tuple[str, ...]] = (
    "Queued",
    "Fetching",
    "Mapping",
    "Validating",
    "Processing",
)
_STAGE_PROGRESS: Final[dict[str, int]] = {
    "Queued": 0,
    "Fetching": 20,
    "Mapping": 40,
    "Validating": 60,
    "Processing": 80,
}
#: Stage index after which a failing refresh ends (it fails while fetching).
_FAIL_AFTER_STAGES: Final = 2

_PAGE_MAX: Final = 5000
_DEFAULT_PAGE_SIZE: Final = 100

# Properties the query language resolves, per entity (the spec's schema properties).
_COMPANY_PROPS: Final = (
    "id", "name", "description", "redirect", "lastSync", "created", "createdByUserName",
    "products", "tags", "referenceParentCompany", "referenceSubsidiaryCompanies",
    "dataConnections", "platform",
)  # fmt: skip
_CONNECTION_PROPS: Final = (
    "id", "integrationId", "integrationKey", "sourceId", "sourceType", "platformName",
    "linkUrl", "status", "lastSync", "created", "dataConnectionErrors", "connectionInfo",
)  # fmt: skip
_DATASET_PROPS: Final = (
    "id", "companyId", "connectionId", "dataType", "status", "statusDescription",
    "errorMessage", "requested", "completed", "progress", "isCompleted", "isErrored",
)  # fmt: skip


@dataclass(frozen=True)
class SandboxOptions:
    """Knobs of a sandbox. Rates are probabilities per request, drawn reproducibly from ``seed``.

    ``latency_ms``            added to every response.
    ``rate_limit_per_min``    requests allowed per window (None: unlimited); past it, 429 with
                              ``Retry-After``; ``X-Rate-Limit-Limit/-Remaining/-Reset`` (reset as
                              Unix seconds) are on every response while a limit is set.
    ``rate_limit_window_seconds`` the window's length in real seconds (60: "per minute";
                              tests shorten it).
    ``fault_rate``            500/503 with an ErrorMessage.
    ``timeout_rate``          hang ``timeout_hang_seconds`` (past any client timeout), then
                              drop the connection.
    ``reset_rate``            abort the connection without an answer.
    ``malformed_rate``        200 with a truncated JSON body (JSON endpoints only).
    ``quirks``                serve doc-style variants for ``quirk_share`` of the companies.
    ``seed``                  seeds faults, quirks and refresh outcomes.
    ``api_key``               the key accepted (``Authorization: Basic base64(key)``).
    ``time_scale``            sandbox seconds per real second (refreshes move this much faster).
    ``sync_phase_seconds``    sandbox seconds each refresh stage lasts.
    ``refresh_error_rate``    share of refreshes that end in FetchError.
    ``start_time``            sandbox time at start (default: the fleet's ``now``, else now).
    ``clock``                 a callable giving sandbox time (overrides the three above).
    """

    latency_ms: float = 0.0
    rate_limit_per_min: int | None = None
    rate_limit_window_seconds: float = 60.0
    fault_rate: float = 0.0
    timeout_rate: float = 0.0
    reset_rate: float = 0.0
    malformed_rate: float = 0.0
    timeout_hang_seconds: float = 120.0
    quirks: bool = False
    quirk_share: float = 0.1
    seed: int = 0
    api_key: str = field(default=SANDBOX_API_KEY, repr=False)
    time_scale: float = 1.0
    sync_phase_seconds: float = 2.0
    refresh_error_rate: float = 0.0
    start_time: datetime | None = None
    clock: Callable[[], datetime] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        rates = {
            "fault_rate": self.fault_rate,
            "timeout_rate": self.timeout_rate,
            "reset_rate": self.reset_rate,
            "malformed_rate": self.malformed_rate,
            "quirk_share": self.quirk_share,
            "refresh_error_rate": self.refresh_error_rate,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        total = self.fault_rate + self.timeout_rate + self.reset_rate + self.malformed_rate
        if total > 1.0:
            raise ValueError(f"fault, timeout, reset and malformed rates sum to {total} > 1")
        if self.rate_limit_per_min is not None and self.rate_limit_per_min < 1:
            raise ValueError("rate_limit_per_min must be >= 1 (or None for no limit)")
        if self.rate_limit_window_seconds <= 0:
            raise ValueError("rate_limit_window_seconds must be > 0")
        if self.latency_ms < 0 or self.timeout_hang_seconds < 0:
            raise ValueError("latency_ms and timeout_hang_seconds must be >= 0")
        if self.time_scale <= 0 or self.sync_phase_seconds < 0:
            raise ValueError("time_scale must be > 0 and sync_phase_seconds >= 0")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware")
        if not self.api_key:
            raise ValueError("api_key must not be empty")


class SandboxStats:
    """Request counters, thread-safe: per endpoint (operationId), per status, faults injected.

    Requests the router does not know count under endpoint ``"unknown"``. A request answered
    by no response (connection reset, hang) counts under status 0.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_endpoint_status: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[str] = Counter()

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._by_endpoint[endpoint] += 1
            self._by_status[status] += 1
            self._by_endpoint_status[(endpoint, status)] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def reset(self) -> None:
        with self._lock:
            self._by_endpoint.clear()
            self._by_status.clear()
            self._by_endpoint_status.clear()
            self._faults.clear()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._by_endpoint.values())

    @property
    def by_endpoint(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_endpoint)

    @property
    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def by_endpoint_status(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._by_endpoint_status)

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-friendly copy of every counter."""
        with self._lock:
            return {
                "total": sum(self._by_endpoint.values()),
                "by_endpoint": dict(self._by_endpoint),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "by_endpoint_status": {
                    f"{e} {s}": n for (e, s), n in sorted(self._by_endpoint_status.items())
                },
                "faults": dict(self._faults),
            }

    def __repr__(self) -> str:
        return f"SandboxStats({self.snapshot()!r})"


@dataclass(slots=True)
class LiveOperation:
    """A pull operation queued on the sandbox; its status is a function of sandbox time.

    It moves Queued -> Fetching -> Mapping -> Validating -> Processing -> ``outcome``, each
    stage lasting ``phase`` seconds. A failing outcome (AuthError, FetchError, any error
    status) ends the sync after Fetching; NotSupported ends it at once; an in-progress outcome
    (``Queued``: the connector is offline) never ends.
    """

    id: str
    company_id: str
    connection_id: str
    data_type: str
    requested: datetime
    outcome: str
    phase: float

    def state(self, now: datetime) -> tuple[str, int, datetime | None]:
        """``(status, progress, completed)`` at sandbox time ``now``."""
        if self.outcome == "NotSupported":
            return "NotSupported", 100, self.requested
        if self.outcome in IN_PROGRESS_STATUSES:
            return self.outcome, _STAGE_PROGRESS.get(self.outcome, 0), None
        stages = len(REFRESH_STAGES) if self.outcome == "Complete" else _FAIL_AFTER_STAGES
        elapsed = (now - self.requested).total_seconds()
        index = int(elapsed // self.phase) if self.phase > 0 else stages
        if index >= stages:
            return self.outcome, 100, self.requested + timedelta(seconds=stages * self.phase)
        stage = REFRESH_STAGES[max(index, 0)]
        return stage, _STAGE_PROGRESS[stage], None

    def to_json(self, now: datetime) -> dict[str, Any]:
        status, progress, completed = self.state(now)
        op: dict[str, Any] = {
            "id": self.id,
            "companyId": self.company_id,
            "connectionId": self.connection_id,
            "dataType": self.data_type,
            "status": status,
            "requested": format_timestamp(self.requested),
            "progress": progress,
            "isCompleted": status == "Complete",
            "isErrored": status in ERROR_STATUSES,
        }
        if completed is not None:
            op["completed"] = format_timestamp(completed)
        if status == "AuthError":
            op["errorMessage"] = "The connection's credentials are no longer valid."
        elif status == "FetchError":
            op["errorMessage"] = "The platform returned an error while fetching this data type."
        elif status in ERROR_STATUSES:
            op["errorMessage"] = f"The sync ended in {status}."
        return op


@dataclass(slots=True)
class _CompanyOverlay:
    live: dict[str, LiveOperation] = field(default_factory=dict)  # data type -> latest
    history: list[LiveOperation] = field(default_factory=list)  # newest first


class _RateLimiter:
    """A fixed window of ``limit`` requests per ``window`` real seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._start: float | None = None
        self._count = 0

    def take(self) -> tuple[bool, int, float]:
        """``(allowed, remaining, seconds until the window resets)``."""
        now = time.monotonic()
        if self._start is None or now - self._start >= self.window:
            self._start = now
            self._count = 0
        left = self._start + self.window - now
        if self._count >= self.limit:
            return False, 0, left
        self._count += 1
        return True, self.limit - self._count, left


def _hash_unit(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SandboxServer:
    """A Codat-compatible HTTP server for ``fleet`` on ``host:port`` (port 0: a free one).

    Start with ``with``/``async with`` or :meth:`start`; stop with :meth:`close`. The server
    runs in a daemon thread with its own event loop. ``stats`` counts requests.
    """

    def __init__(
        self,
        fleet: Fleet,
        options: SandboxOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.fleet = fleet
        self.options = options or SandboxOptions()
        self.host = host
        self.port = port
        self.stats = SandboxStats()
        self._quirks = QuirkPicker(self.options.seed, self.options.quirk_share)
        self._overlays: dict[str, _CompanyOverlay] = {}
        self._fault_counts: Counter[str] = Counter()
        self._limiter = (
            _RateLimiter(self.options.rate_limit_per_min, self.options.rate_limit_window_seconds)
            if self.options.rate_limit_per_min is not None
            else None
        )
        self._auth_header = "Basic " + base64.b64encode(self.options.api_key.encode()).decode()
        self._records = _LRU(4096)
        self._status_bytes = _LRU(4096)
        self._pages = _LRU(64)
        self._correlation = 0
        self._op_counter = 0
        self._overlay_version = 0  # bumped by each refresh: listing pages show lastSync
        self._t0_mono = time.monotonic()
        self._t0 = (self.options.start_time or fleet.now or datetime.now(UTC)).astimezone(UTC)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.options.api_key

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"SandboxServer({self.base_url}, companies={len(self.fleet)}, {state})"

    def is_quirky(self, company_id: str) -> bool:
        """Whether ``company_id`` is served doc-style variants (``quirks`` on and chosen)."""
        return self.options.quirks and self._quirks.is_quirky(company_id)

    def now(self) -> datetime:
        """Sandbox time: ``clock()``, or the start time advanced ``time_scale`` times real time."""
        if self.options.clock is not None:
            return self.options.clock().astimezone(UTC)
        elapsed = (time.monotonic() - self._t0_mono) * self.options.time_scale
        return self._t0 + timedelta(seconds=elapsed)

    def start(self) -> SandboxServer:
        """Start serving; returns when the port is bound."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                    self._runner = None
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="codat-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("sandbox did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = None
            self._loop = None
            raise failure[0]
        return self

    def close(self) -> None:
        """Stop serving (hanging requests are dropped) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._thread = None
            self._loop = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> SandboxServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    def serve_forever(self) -> None:
        """Block until Ctrl-C (KeyboardInterrupt, re-raised) or SIGTERM (returns), then close."""
        if self._thread is None:
            self.start()
        stop = threading.Event()
        previous: Any = None
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
            self.close()

    async def _startup(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**2)
        r = app.router
        r.add_get("/companies", self._list_companies, name="list-companies")
        r.add_get("/companies/{companyId}", self._get_company, name="get-company")
        r.add_get(
            "/companies/{companyId}/connections", self._list_connections, name="list-connections"
        )
        r.add_get(
            "/companies/{companyId}/dataStatus", self._data_status, name="get-company-data-status"
        )
        r.add_get("/companies/{companyId}/data/history", self._history, name="list-pull-operations")
        r.add_get(
            "/companies/{companyId}/data/history/{datasetId}",
            self._pull_operation,
            name="get-pull-operation",
        )
        r.add_post(
            "/companies/{companyId}/data/all", self._refresh_all, name="refresh-company-data"
        )
        r.add_post(
            "/companies/{companyId}/data/queue/{dataType}",
            self._refresh_one,
            name="refresh-data-type",
        )
        r.add_get("/profile/syncSettings", self._profile_settings, name="get-profile-syncSettings")
        r.add_get(
            "/companies/{companyId}/syncSettings",
            self._company_settings,
            name="get-company-syncSettings",
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def _shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- plumbing -------------------------------------------------------------------------
    def _next_correlation(self) -> str:
        self._correlation += 1
        return hashlib.blake2b(
            f"{self.options.seed}|corr|{self._correlation}".encode(), digest_size=16
        ).hexdigest()

    def _error(self, status: int, error: str, service: str = "PublicApi") -> web.Response:
        body = {
            "statusCode": status,
            "service": service,
            "error": error,
            "correlationId": self._next_correlation(),
            "canBeRetried": "Unknown",
            "detailedErrorCode": 0,
        }
        return web.Response(status=status, body=_dumps(body), content_type="application/json")

    @staticmethod
    def _json(body: bytes | Any, status: int = 200) -> web.Response:
        data = body if isinstance(body, bytes) else _dumps(body)
        return web.Response(status=status, body=data, content_type="application/json")

    def _fault_for(self, request: web.Request) -> tuple[str | None, float]:
        o = self.options
        if not (o.fault_rate or o.timeout_rate or o.reset_rate or o.malformed_rate):
            return None, 0.0
        key = f"{request.method} {request.path_qs}"
        n = self._fault_counts[key]
        self._fault_counts[key] = n + 1
        u = _hash_unit(o.seed, "fault", key, n)
        edge = 0.0
        for kind, rate in (
            ("server_error", o.fault_rate),
            ("timeout", o.timeout_rate),
            ("reset", o.reset_rate),
            ("malformed", o.malformed_rate),
        ):
            edge += rate
            if u < edge:
                return kind, _hash_unit(o.seed, "fault-detail", key, n)
        return None, 0.0

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        route = request.match_info.route
        endpoint = route.name if route.name else "unknown"
        headers: dict[str, str] = {}
        if self._limiter is not None:
            allowed, remaining, left = self._limiter.take()
            headers = {
                "X-Rate-Limit-Limit": str(self._limiter.limit),
                "X-Rate-Limit-Remaining": str(remaining),
                "X-Rate-Limit-Reset": str(math.ceil(time.time() + left)),
            }
            if not allowed:
                response = self._error(
                    429,
                    "You have made too many requests in a given amount of time; "
                    "please retry later.",
                )
                response.headers.update(headers)
                response.headers["Retry-After"] = str(max(1, math.ceil(left)))
                self.stats.record(endpoint, 429)
                return response
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000.0)
        if not self._authorised(request.headers.get("Authorization")):
            response = self._error(401, "Unauthorized")
        else:
            fault, detail = self._fault_for(request)
            if fault is not None:
                self.stats.record_fault(fault)
            if fault == "server_error":
                if detail < 0.5:
                    response = self._error(
                        500, "There is a problem with our server. Please try again later."
                    )
                else:
                    response = self._error(
                        503,
                        "The Codat API is temporarily offline for maintenance. "
                        "Please try again later.",
                    )
            elif fault == "timeout":
                assert self._closing is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._closing.wait(), timeout=self.options.timeout_hang_seconds
                    )
                self._abort(request)
                self.stats.record(endpoint, 0)
                raise web.HTTPServiceUnavailable()  # never sent: the transport is gone
            elif fault == "reset":
                self._abort(request)
                self.stats.record(endpoint, 0)
                raise web.HTTPServiceUnavailable()  # never sent: the transport is gone
            else:
                try:
                    response = await handler(request)  # type: ignore[assignment]
                except web.HTTPException as exc:
                    response = self._error(
                        exc.status, "Not found" if exc.status == 404 else exc.reason
                    )
                if fault == "malformed" and isinstance(response, web.Response):
                    body = response.body
                    if response.status == 200 and isinstance(body, bytes) and body:
                        response.body = body[: max(1, len(body) // 2)]
        response.headers.update(headers)
        self.stats.record(endpoint, response.status)
        return response

    def _authorised(self, header: str | None) -> bool:
        if header is None:
            return False
        if header == self._auth_header:
            return True
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == self.options.api_key

    # --- fleet access ---------------------------------------------------------------------
    def _state_key(self, now: datetime) -> int | None:
        """The cache key of a generated fleet's state at ``now`` (None: a fleet file)."""
        if isinstance(self.fleet, GeneratedFleet):
            return self.fleet.minute_of(now)
        return None

    def _fixes(self, company_id: str) -> dict[str, datetime]:
        """Data type -> request time of its latest refresh that ends Complete."""
        overlay = self._overlays.get(company_id)
        fixes: dict[str, datetime] = {}
        if overlay is not None:
            for op in overlay.history:  # newest first
                if op.outcome == "Complete" and op.data_type not in fixes:
                    fixes[op.data_type] = op.requested
        return fixes

    def _record(self, company_id: str, now: datetime | None = None) -> CompanyRecord | None:
        """The record of ``company_id`` at sandbox time ``now`` (default: the sandbox's now)."""
        fleet = self.fleet
        if not isinstance(fleet, GeneratedFleet):
            cached = self._records.get(company_id)
            if cached is not None:
                return cached  # type: ignore[no-any-return]
            record = fleet.get(company_id)
            if record is not None:
                self._records.put(company_id, record)
            return record
        index = fleet.index_of(company_id)
        if index is None:
            return None
        now = self.now() if now is None else now
        fixes = self._fixes(company_id)
        if fixes:
            return fleet.record_at(index, now, fixes)
        key = (company_id, fleet.minute_of(now))
        cached = self._records.get(key)
        if cached is None:
            cached = fleet.record_at(index, now)
            self._records.put(key, cached)
        return cached  # type: ignore[no-any-return]

    def _company_json(self, index: int, now: datetime) -> dict[str, Any]:
        if isinstance(self.fleet, GeneratedFleet):
            company_id = self.fleet.company_ids[index]
            if company_id in self._overlays:
                record = self._record(company_id, now)
                assert record is not None
                return record.company
            return self.fleet.company_at(index, now)
        return self.fleet.records[index].company

    def _not_found(self, company_id: str) -> web.Response:
        return self._error(404, f"No company was found with ID {company_id}", "ClientsApi")

    def _paging(
        self, request: web.Request
    ) -> tuple[int, int, str | None, str | None] | web.Response:
        q = request.query
        try:
            page = int(q.get("page", "1"))
            size = int(q.get("pageSize", str(_DEFAULT_PAGE_SIZE)))
        except ValueError:
            return self._error(
                400, "Error processing request - page and pageSize must be integers."
            )
        if page < 1 or not 1 <= size <= _PAGE_MAX:
            return self._error(
                400,
                f"Error processing request - page must be >= 1 and pageSize between 1 and "
                f"{_PAGE_MAX}.",
            )
        return page, size, q.get("query") or None, q.get("orderBy") or None

    @staticmethod
    def _envelope_bytes(
        path: str,
        results: list[bytes],
        page: int,
        size: int,
        total: int,
        query: str | None,
        order: str | None,
    ) -> bytes:
        def href(p: int) -> dict[str, str]:
            params: dict[str, Any] = {"page": p, "pageSize": size}
            if query:
                params["query"] = query
            if order:
                params["orderBy"] = order
            return {"href": f"{path}?{urlencode(params)}"}

        links: dict[str, Any] = {"self": {"href": path}, "current": href(page)}
        if page * size < total:
            links["next"] = href(page + 1)
        if page > 1:
            links["previous"] = href(page - 1)
        tail = _dumps(
            {"pageNumber": page, "pageSize": size, "totalResults": total, "_links": links}
        )
        return b'{"results":[' + b",".join(results) + b"]," + tail[1:]

    def _page_of(
        self,
        request: web.Request,
        items: list[dict[str, Any]],
        props: tuple[str, ...],
        entity: str,
    ) -> web.Response:
        paging = self._paging(request)
        if isinstance(paging, web.Response):
            return paging
        page, size, query, order = paging
        try:
            if query:
                keep = compile_query(query, props, entity)
                items = [i for i in items if keep(i)]
            if order:
                items = order_by(items, order, props, entity)
        except QueryError as exc:
            return self._error(400, str(exc))
        chunk = items[(page - 1) * size : page * size]
        return self._json(
            self._envelope_bytes(
                request.path, [_dumps(i) for i in chunk], page, size, len(items), query, order
            )
        )

    # --- endpoints ------------------------------------------------------------------------
    async def _list_companies(self, request: web.Request) -> web.Response:
        paging = self._paging(request)
        if isinstance(paging, web.Response):
            return paging
        page, size, query, order = paging
        now = self.now()
        if query or order:
            items = [self._company_json(i, now) for i in range(len(self.fleet))]
            return self._page_of(request, items, _COMPANY_PROPS, "Company")
        key = (page, size, self._state_key(now), self._overlay_version)
        cached = self._pages.get(key)
        if cached is None:
            total = len(self.fleet)
            lo, hi = (page - 1) * size, min(page * size, total)
            results = [_dumps(self._company_json(i, now)) for i in range(lo, hi)]
            cached = self._envelope_bytes(request.path, results, page, size, total, None, None)
            self._pages.put(key, cached)
        return self._json(cached)

    async def _get_company(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        record = self._record(company_id)
        if record is None:
            return self._not_found(company_id)
        return self._json(record.company)

    async def _list_connections(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        record = self._record(company_id)
        if record is None:
            return self._not_found(company_id)
        return self._page_of(request, record.connections, _CONNECTION_PROPS, "DataConnection")

    def _merged_status(self, record: CompanyRecord, now: datetime) -> dict[str, Any]:
        """The dataStatus of ``record`` at ``now`` with the refresh overlay, before quirks.

        A fleet file: a refresh is the type's latest sync. A generated fleet (whose record is
        already as of ``now``): a refresh is the latest sync unless a scheduled sync was
        requested after it; the last successful sync is the newer of the two.
        """
        overlay = self._overlays.get(record.id)
        body = record.data_status
        if overlay is None or not overlay.live:
            return body
        body = dict(body)
        generated = isinstance(self.fleet, GeneratedFleet)
        requested: dict[Any, Any] = (
            {op.get("id"): op.get("requested") for op in record.pull_operations}
            if generated
            else {}
        )
        for data_type, op in overlay.live.items():
            status, _, completed = op.state(now)
            base = body.get(data_type)
            entry = dict(base) if isinstance(base, dict) else {"dataType": data_type}
            done = format_timestamp(completed) if completed is not None else None
            newer_success = status == "Complete" and done is not None
            if generated and isinstance(base, dict):
                last = base.get("lastSuccessfulSync")
                newer_success = newer_success and (not isinstance(last, str) or last <= str(done))
                scheduled = requested.get(base.get("latestSyncId"))
                if isinstance(scheduled, str) and scheduled > format_timestamp(op.requested):
                    if newer_success:
                        entry["lastSuccessfulSync"] = done
                        entry["latestSuccessfulSyncId"] = op.id
                    body[data_type] = entry
                    continue
            entry["currentStatus"] = status
            entry["latestSyncId"] = op.id
            if newer_success:
                entry["lastSuccessfulSync"] = done
                entry["latestSuccessfulSyncId"] = op.id
            body[data_type] = entry
        return body

    def current_data_status(self, record: CompanyRecord, now: datetime) -> dict[str, Any]:
        """The dataStatus body of ``record`` at sandbox time ``now`` (refresh overlay applied).

        For a generated fleet, ``record`` should be the record as of ``now``
        (``srv.fleet.record_at``); a fleet file's record is served as it is.
        """
        body = self._merged_status(record, now)
        if self.is_quirky(record.id):
            body = self._quirks.data_status(record.id, body, record.connections)
        return body

    async def _data_status(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        now = self.now()
        record = self._record(company_id, now)
        if record is None:
            return self._not_found(company_id)
        if record.data_status_error is not None:
            status = int(record.data_status_error.get("statusCode", 500))
            return self._json(record.data_status_error, status=status)
        overlay = self._overlays.get(company_id)
        if overlay is not None and overlay.live:
            return self._json(self.current_data_status(record, now))
        key = (company_id, self._state_key(now))
        cached = self._status_bytes.get(key)
        if cached is None:
            cached = _dumps(self.current_data_status(record, now))
            self._status_bytes.put(key, cached)
        return self._json(cached)

    def _operations(self, record: CompanyRecord, now: datetime) -> list[dict[str, Any]]:
        overlay = self._overlays.get(record.id)
        live = [op.to_json(now) for op in overlay.history] if overlay is not None else []
        ops = live + record.pull_operations
        if live and isinstance(self.fleet, GeneratedFleet):  # scheduled syncs may be newer
            ops.sort(key=lambda op: str(op.get("requested", "")), reverse=True)
        if self.is_quirky(record.id):
            ops = [self._quirks.pull_operation(record.id, op) for op in ops]
        return ops

    async def _history(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        now = self.now()
        record = self._record(company_id, now)
        if record is None:
            return self._not_found(company_id)
        return self._page_of(request, self._operations(record, now), _DATASET_PROPS, "Dataset")

    async def _pull_operation(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        dataset_id = request.match_info["datasetId"]
        now = self.now()
        record = self._record(company_id, now)
        if record is None:
            return self._not_found(company_id)
        for op in self._operations(record, now):
            if op.get("id") == dataset_id:
                return self._json(op)
        return self._error(404, f"No dataset was found with ID {dataset_id}", "PullApi")

    async def _profile_settings(self, request: web.Request) -> web.Response:
        return self._json(self.fleet.sync_settings)

    async def _company_settings(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        record = self._record(company_id)
        if record is None:
            return self._not_found(company_id)
        if record.sync_settings is not None:
            return self._json(record.sync_settings)
        return self._json(
            {
                "companyId": company_id,
                "settings": self.fleet.sync_settings.get("settings", []),
                "overridesDefaults": False,
            }
        )

    # --- refresh --------------------------------------------------------------------------
    def _effective(
        self, record: CompanyRecord, data_type: str, now: datetime
    ) -> tuple[str | None, str | None]:
        """``(currentStatus, latestSyncId)`` of ``data_type`` now (overlay first)."""
        overlay = self._overlays.get(record.id)
        if isinstance(self.fleet, GeneratedFleet):
            entry = self._merged_status(record, now).get(data_type)
            if not isinstance(entry, dict):
                return None, None
            return entry.get("currentStatus"), entry.get("latestSyncId")
        if overlay is not None and data_type in overlay.live:
            op = overlay.live[data_type]
            return op.state(now)[0], op.id
        entry = record.data_status.get(data_type)
        if not isinstance(entry, dict):
            return None, None
        status = entry.get("currentStatus")
        latest = entry.get("latestSyncId")
        return (
            status if isinstance(status, str) else None,
            latest if isinstance(latest, str) else None,
        )

    def _queue(
        self, record: CompanyRecord, data_type: str, connection: dict[str, Any], now: datetime
    ) -> LiveOperation:
        self._op_counter += 1
        op_id = str(
            _uuid_from(f"{self.options.seed}|op|{record.id}|{data_type}|{self._op_counter}")
        )
        base_status, _ = self._effective(record, data_type, now)
        fleet = self.fleet
        index = fleet.index_of(record.id) if isinstance(fleet, GeneratedFleet) else None
        if connection.get("status") == "Deauthorized":
            outcome = "AuthError"
        elif isinstance(fleet, GeneratedFleet) and index is not None:
            outcome = fleet.refresh_outcome(index, data_type, now)
            if (
                outcome == "Complete"
                and _hash_unit(self.options.seed, "refresh", op_id)
                < self.options.refresh_error_rate
            ):
                outcome = "FetchError"
        elif base_status == "AuthError":
            outcome = "AuthError"
        elif base_status == "NotSupported":
            outcome = "NotSupported"
        elif _hash_unit(self.options.seed, "refresh", op_id) < self.options.refresh_error_rate:
            outcome = "FetchError"
        else:
            outcome = "Complete"
        op = LiveOperation(
            id=op_id,
            company_id=record.id,
            connection_id=str(connection.get("id", "")),
            data_type=data_type,
            requested=now,
            outcome=outcome,
            phase=self.options.sync_phase_seconds,
        )
        overlay = self._overlays.setdefault(record.id, _CompanyOverlay())
        overlay.live[data_type] = op
        overlay.history.insert(0, op)
        self._status_bytes.put((record.id, None), None)
        self._overlay_version += 1
        return op

    @staticmethod
    def _connection_for(record: CompanyRecord, data_type: str) -> dict[str, Any] | None:
        source = source_type_of(data_type)
        candidates = [c for c in record.connections if c.get("sourceType") == source]
        for wanted in ("Linked", "Deauthorized"):
            for conn in candidates:
                if conn.get("status") == wanted:
                    return conn
        return None

    def _in_progress_error(
        self, record: CompanyRecord, data_type: str, dataset_id: str | None
    ) -> web.Response:
        return self._error(
            ALREADY_IN_PROGRESS_STATUS,
            f"DatasetAlreadyInProgressException: Cannot queue {data_type} sync for "
            f"{record.id} as previous sync {dataset_id} is still in progress",
            "PullApi",
        )

    async def _refresh_one(self, request: web.Request) -> web.Response:
        company_id = request.match_info["companyId"]
        data_type = request.match_info["dataType"]
        now = self.now()
        record = self._record(company_id, now)
        if record is None:
            return self._not_found(company_id)
        if data_type not in ALL_DATA_TYPES:
            return self._error(400, f"Error processing request - unknown data type {data_type}.")
        connection_id = request.query.get("connectionId")
        if connection_id:
            connection = next((c for c in record.connections if c.get("id") == connection_id), None)
            if connection is None:
                return self._error(404, f"Data connection {connection_id} not found")
            if connection.get("sourceType") != source_type_of(data_type):
                return self._error(
                    400,
                    f"Error processing request - data connection {connection_id} does not "
                    f"serve {data_type}.",
                )
        else:
            connection = self._connection_for(record, data_type)
            if connection is None:
                return self._error(
                    400,
                    f"Error processing request - company {company_id} has no linked data "
                    f"connection for {data_type}.",
                )
        if connection.get("status") not in ("Linked", "Deauthorized"):
            return self._error(
                400,
                f"Error processing request - data connection {connection.get('id')} is "
                f"{connection.get('status')}.",
            )
        status, latest = self._effective(record, data_type, now)
        if status in IN_PROGRESS_STATUSES:
            return self._in_progress_error(record, data_type, latest)
        op = self._queue(record, data_type, connection, now)
        return self._json(op.to_json(now))

    async def _refresh_all(self, request: web.Request) -> web.StreamResponse:
        company_id = request.match_info["companyId"]
        now = self.now()
        record = self._record(company_id, now)
        if record is None:
            return self._not_found(company_id)
        for data_type in ALL_DATA_TYPES:
            connection = self._connection_for(record, data_type)
            if connection is None:
                continue
            status, _ = self._effective(record, data_type, now)
            if status in IN_PROGRESS_STATUSES:
                continue
            self._queue(record, data_type, connection, now)
        return web.Response(status=204)


def _uuid_from(text: str) -> str:
    return str(uuid.UUID(bytes=hashlib.blake2b(text.encode(), digest_size=16).digest(), version=4))
