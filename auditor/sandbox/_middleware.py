"""What happens to every request before its endpoint: rate limit, latency, auth, faults.

In order: the per-IP ceiling (429 past ``rate_limit_per_min``, no quota headers), the latency
knob, authentication (401), the daily quota (``daily_quota``: ``X-Rate-Limit-*`` on every
authorised answer, 429 once spent until 00:00 UTC sandbox time), fault injection (5xx, hang,
connection reset, malformed JSON) and then the endpoint. Both limits follow
docs.codat.io/using-the-api/rate-limits. Fault
decisions are a hash of ``(seed, method, path and query, n)`` where ``n`` counts earlier
requests for that same method and URL: a run that sends the same requests gets the same
faults whatever the order of concurrent requests, and a retry of a failed request draws
anew. Faults are injected before the endpoint runs: a faulted queue request queues nothing.
Every request is counted in :class:`~auditor.sandbox.SandboxStats` under its operationId.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from auditor.sandbox._options import SandboxOptions
from auditor.sandbox._responses import Errors
from auditor.sandbox._stats import SandboxStats
from auditor.sandbox._util import hash_unit

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


class _DailyQuota:
    """``limit`` requests per day of sandbox time (``now``), reset at 00:00 UTC."""

    def __init__(self, limit: int, now: Callable[[], datetime], time_scale: float) -> None:
        self.limit = limit
        self._now = now
        self._time_scale = time_scale
        self._day: date | None = None
        self._used = 0

    def take(self) -> tuple[bool, dict[str, str], float]:
        """``(allowed, the quota headers, real seconds until the quota resets)``."""
        moment = self._now().astimezone(UTC)
        day = moment.date()
        if day != self._day:
            self._day, self._used = day, 0
        resets = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        real_left = (resets - moment).total_seconds() / self._time_scale
        allowed = self._used < self.limit
        if allowed:
            self._used += 1
        headers = {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.limit - self._used),
            "X-Rate-Limit-Reset": format_datetime(resets, usegmt=True),
        }
        return allowed, headers, real_left


class SandboxMiddleware:
    """The aiohttp middleware of a sandbox (:meth:`handle`); ``closing`` is set on shutdown
    (it ends hanging requests) and must be created on the server's loop before serving."""

    def __init__(
        self,
        options: SandboxOptions,
        stats: SandboxStats,
        errors: Errors,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.options = options
        self.stats = stats
        self.errors = errors
        self.closing: asyncio.Event | None = None
        #: Called (with the quota and when it resets) each time a request finds it spent.
        self.on_quota_spent: Callable[[int, datetime], None] | None = None
        self._fault_counts: Counter[str] = Counter()
        self._limiter = (
            _RateLimiter(options.rate_limit_per_min, options.rate_limit_window_seconds)
            if options.rate_limit_per_min is not None
            else None
        )
        self._quota = (
            _DailyQuota(options.daily_quota, now or (lambda: datetime.now(UTC)), options.time_scale)
            if options.daily_quota is not None
            else None
        )
        self._auth_header = "Basic " + base64.b64encode(options.api_key.encode()).decode()

    def _fault_for(self, request: web.Request) -> tuple[str | None, float]:
        o = self.options
        if not (o.fault_rate or o.timeout_rate or o.reset_rate or o.malformed_rate):
            return None, 0.0
        key = f"{request.method} {request.path_qs}"
        n = self._fault_counts[key]
        self._fault_counts[key] = n + 1
        u = hash_unit(o.seed, "fault", key, n)
        edge = 0.0
        for kind, rate in (
            ("server_error", o.fault_rate),
            ("timeout", o.timeout_rate),
            ("reset", o.reset_rate),
            ("malformed", o.malformed_rate),
        ):
            edge += rate
            if u < edge:
                return kind, hash_unit(o.seed, "fault-detail", key, n)
        return None, 0.0

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    @web.middleware
    async def handle(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        route = request.match_info.route
        endpoint = route.name if route.name else "unknown"
        headers: dict[str, str] = {}
        if self._limiter is not None:
            allowed, _, left = self._limiter.take()
            if not allowed:  # the DoS ceiling: Codat documents no header for it
                response = self.errors.error(
                    429,
                    "You have made too many requests in a given amount of time; "
                    "please retry later.",
                )
                response.headers["Retry-After"] = str(max(1, math.ceil(left)))
                self.stats.record_limited("per-minute")
                self.stats.record(endpoint, 429)
                return response
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000.0)
        if not self._authorised(request.headers.get("Authorization")):
            response = self.errors.error(401, "Unauthorized")
        elif self._quota is not None and not self._take_quota(headers):
            response = self.errors.error(
                429,
                "You have made too many requests in a given amount of time; please retry later.",
            )
            response.headers["Retry-After"] = headers.pop("Retry-After")
            self.stats.record_limited("daily-quota")
        else:
            fault, detail = self._fault_for(request)
            if fault is not None:
                self.stats.record_fault(fault)
            if fault == "server_error":
                if detail < 0.5:
                    response = self.errors.error(
                        500, "There is a problem with our server. Please try again later."
                    )
                else:
                    response = self.errors.error(
                        503,
                        "The Codat API is temporarily offline for maintenance. "
                        "Please try again later.",
                    )
            elif fault == "timeout":
                assert self.closing is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.closing.wait(), timeout=self.options.timeout_hang_seconds
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
                    response = self.errors.error(
                        exc.status, "Not found" if exc.status == 404 else exc.reason
                    )
                if fault == "malformed" and isinstance(response, web.Response):
                    body = response.body
                    if response.status == 200 and isinstance(body, bytes) and body:
                        response.body = body[: max(1, len(body) // 2)]
        response.headers.update(headers)
        self.stats.record(endpoint, response.status)
        return response

    def _take_quota(self, headers: dict[str, str]) -> bool:
        """Count one request against the daily quota; its headers go into ``headers`` (and a
        ``Retry-After`` when it is spent). False when it is spent."""
        assert self._quota is not None
        allowed, quota_headers, real_left = self._quota.take()
        headers.update(quota_headers)
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(real_left)))
            if self.on_quota_spent is not None:  # the webhook client.rateLimit.reached
                resets = parsedate_to_datetime(quota_headers["X-Rate-Limit-Reset"])
                self.on_quota_spent(self._quota.limit, resets.astimezone(UTC))
        return allowed

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
