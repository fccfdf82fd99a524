"""The client's knobs: retry policy and rate-limit policy (plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RateLimitPolicy", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to retry a transient failure.

    ``max_attempts`` counts the first try (1 disables retries). ``max_total_seconds`` bounds
    the whole call: a retry whose wait would end past it is not made. Waits grow
    exponentially from ``initial_wait`` (x2 each time, capped at ``max_wait``) plus a random
    jitter of up to ``jitter`` seconds. A ``Retry-After`` from Codat (seconds or HTTP date)
    replaces the computed wait; one longer than ``max_retry_after`` is not waited for (the
    error is raised at once).
    """

    max_attempts: int = 5
    max_total_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_total_seconds, self.initial_wait, self.max_wait, self.jitter) < 0:
            raise ValueError("retry times must not be negative")


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """How fast the client may talk to Codat, shared by every task using one client.

    ``requests_per_minute`` (None: no limit) is enforced so that no window of
    ``window_seconds`` (60, as Codat's), sliding or fixed, ever holds more than its quota
    (``requests_per_minute * window_seconds / 60``): a leaky bucket of ``burst`` requests
    (default 1 % of the quota, at least 1) draining at ``quota - 2 * burst`` per window,
    i.e. 98 % of the limit at steady state for the default 1,000/min. The ``burst`` of slack
    absorbs jitter in network latency between our clock and the server's.
    This pacing keeps us under Codat's per-IP DoS ceiling (1,000 requests a minute, no
    headers: docs.codat.io/using-the-api/rate-limits); it is not the daily quota.
    ``max_concurrent_per_company`` (None: no limit) caps requests in flight per company.

    The daily quota (``1,000 x (1 + active connected companies)`` a day, reset at 00:00 UTC)
    is read from ``X-Rate-Limit-Limit/-Remaining/-Reset`` on every answer when
    ``honour_headers`` is on. ``quota_reserve`` (a fraction of ``X-Rate-Limit-Limit``, default
    10 %) is left for the customer's own application: a request that would take the quota
    below it is not sent (:class:`~auditor.codat.CodatQuotaExhaustedError`). A 429 whose
    ``Retry-After`` is at most ``quota_retry_after_bound`` seconds is the per-minute ceiling:
    every task pauses that long and the request is retried. Longer, it is the daily quota
    spent: the same error, and no request is sent any more.
    """

    requests_per_minute: float | None = 1000.0
    window_seconds: float = 60.0
    max_concurrent_per_company: int | None = 10
    burst: int | None = None
    honour_headers: bool = True
    quota_reserve: float = 0.10
    quota_retry_after_bound: float = 300.0

    def __post_init__(self) -> None:
        if self.requests_per_minute is not None and self.requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive (or None for no limit)")
        if self.max_concurrent_per_company is not None and self.max_concurrent_per_company < 1:
            raise ValueError("max_concurrent_per_company must be at least 1 (or None)")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0.0 <= self.quota_reserve < 1.0:
            raise ValueError("quota_reserve must be a fraction from 0 to below 1")
        if not self.quota_retry_after_bound >= 0:  # also refuses nan
            raise ValueError("quota_retry_after_bound must not be negative")

    @property
    def quota(self) -> float | None:
        """Requests allowed in one window, or None when unlimited."""
        if self.requests_per_minute is None:
            return None
        return self.requests_per_minute * self.window_seconds / 60.0

    def bucket(self) -> tuple[float, float] | None:
        """``(capacity, seconds to drain it)`` for aiolimiter, or None when unlimited."""
        quota = self.quota
        if quota is None:
            return None
        burst = float(self.burst if self.burst is not None else max(1, int(quota // 100)))
        burst = min(burst, quota)
        per_window = quota - 2 * burst
        if per_window <= 0:
            # Tiny quotas: one request at a time, evenly spaced, a little under the limit.
            burst, per_window = 1.0, quota * 0.9
        return burst, burst * self.window_seconds / per_window
