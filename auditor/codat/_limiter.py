"""Client-side rate limiting shared by every task of one client.

Codat has two limits (docs.codat.io/using-the-api/rate-limits): a **daily quota** of
``1,000 x (1 + active connected companies)`` requests, reset at 00:00 UTC, described on every
answer by ``X-Rate-Limit-Limit`` (the quota of the period), ``X-Rate-Limit-Remaining`` and
``X-Rate-Limit-Reset`` (when the quota resets); and a per-IP **DoS ceiling** of 1,000 requests
a minute that has no headers and "may block an IP's traffic without warning".

Four gates, in this order, before each request (retries included):

1. at most ``max_concurrent_per_company`` requests in flight per company (asyncio
   semaphores keyed by company id, dropped when unused);
2. a pause gate, closed until a 429's ``Retry-After`` (one within
   ``quota_retry_after_bound``: the per-minute ceiling);
3. a leaky bucket (aiolimiter) sized so that no 60-second window, sliding or fixed, holds
   more than ``requests_per_minute`` requests (see :class:`RateLimitPolicy`): our pace,
   below the DoS ceiling;
4. the daily quota (:class:`DailyQuota`): once it is spent (a 429 past the bound) or the
   request would take it below the reserve kept for the customer's own application, no
   request starts any more: :class:`~auditor.codat.CodatQuotaExhaustedError`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from aiolimiter import AsyncLimiter

from auditor.codat._config import RateLimitPolicy
from auditor.codat._exceptions import CodatQuotaExhaustedError

_log = logging.getLogger("auditor.codat")

__all__ = ["DailyQuota", "RequestLimiter", "parse_reset", "parse_reset_at", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta seconds or an HTTP date.

    None when absent or unreadable; never negative. ``now`` is a Unix time (default: now).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_date(text, now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def parse_reset(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until ``X-Rate-Limit-Reset``: delta seconds, Unix epoch seconds, or a date."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return _seconds_until_date(text, now)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    if number > 1e11:  # epoch milliseconds
        number = number / 1000.0 - (time.time() if now is None else now)
    elif number > 1e9:  # epoch seconds
        number -= time.time() if now is None else now
    return max(0.0, number)


def parse_reset_at(value: str | None, *, now: float | None = None) -> datetime | None:
    """The moment ``X-Rate-Limit-Reset`` names (tz-aware UTC): an HTTP or ISO-8601 date (the
    docs: "the date when the quota will be reset"), Unix epoch seconds or milliseconds, or
    delta seconds from ``now`` (a Unix time, default now). Never clamped to now: a date in our
    past stays that date (the server's clock is the quota's). None when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    base = time.time() if now is None else now
    try:
        number = float(text)
    except ValueError:
        when = _date(text)
        return None if when is None else when.astimezone(UTC)
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        return None
    if number > 1e11:
        number /= 1000.0
    elif number <= 1e9:
        number += base
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _count(value: str | None) -> int | None:
    """A header's non-negative request count, or None when absent or unreadable."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        return None
    return int(number)


def _date(text: str) -> datetime | None:
    """An HTTP date or an ISO-8601 time (UTC when it names no zone), else None."""
    when: datetime | None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _seconds_until_date(text: str, now: float | None) -> float | None:
    when = _date(text)
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class DailyQuota:
    """The daily quota as Codat's ``X-Rate-Limit-*`` headers describe it, and the reserve.

    ``limit``, ``remaining`` and ``resets_at`` are the last values read (None before any).
    Within one quota period ``remaining`` only goes down: answers arriving out of order never
    raise it; a later ``X-Rate-Limit-Reset`` starts a new period. ``pending`` counts requests
    sent and not yet answered: they may not be counted in the last ``remaining`` yet, so they
    are taken off it (an estimate that errs on the side of the reserve).

    The reserve is ``ceil(reserve x limit)`` requests: :meth:`refusal` says why a new request
    must not start when ``remaining - pending`` would fall below it.
    """

    def __init__(self, reserve: float) -> None:
        self.reserve = reserve
        self.limit: int | None = None
        self.remaining: int | None = None
        self.resets_at: datetime | None = None
        self.pending = 0

    @property
    def reserve_requests(self) -> int:
        """Requests of the quota kept for the customer's own application (0 before a limit
        is known)."""
        return math.ceil(self.reserve * self.limit) if self.limit else 0

    def observe(self, headers: Mapping[str, str], *, now: float | None = None) -> None:
        """Read the quota headers of one answer (any status); ``headers`` is an
        ``httpx.Headers`` or any mapping (its names are then matched case-insensitively)."""
        if not hasattr(headers, "multi_items"):  # not httpx.Headers: a plain mapping
            headers = {k.lower(): v for k, v in headers.items()}
        remaining = _count(headers.get("x-rate-limit-remaining"))
        limit = _count(headers.get("x-rate-limit-limit"))
        resets_at = parse_reset_at(headers.get("x-rate-limit-reset"), now=now)
        if limit is not None:
            self.limit = limit
        if remaining is None:
            return
        new_period = self.remaining is None or (
            resets_at is not None
            and (self.resets_at is None or resets_at - self.resets_at > timedelta(seconds=1))
        )
        self.remaining = remaining if new_period else min(remaining, self.remaining or 0)
        if resets_at is not None and (new_period or self.resets_at is None):
            self.resets_at = resets_at

    def refusal(self) -> str | None:
        """Why one more request must not start (the reserve would be crossed), or None.

        A new period is seen only in a later ``X-Rate-Limit-Reset`` on an answer, never by our
        own clock (the server's clock, or a sandbox's, is the quota's)."""
        if self.remaining is None:
            return None
        left = self.remaining - self.pending
        reserve = self.reserve_requests
        if left - 1 >= reserve:
            return None
        limit = f" of {self.limit:,}" if self.limit else ""
        share = f"{self.reserve:.0%}" if self.reserve else "no"
        return (
            f"Codat's daily API quota is down to its reserve: {max(0, left):,}{limit} "
            f"requests left and {reserve:,} ({share} reserve) kept for your own application"
        )


class _Slot:
    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


class RequestLimiter:
    """The gates every request passes; one per client, shared by all its tasks."""

    def __init__(self, policy: RateLimitPolicy) -> None:
        self.policy = policy
        bucket = policy.bucket()
        self._bucket = AsyncLimiter(*bucket) if bucket else None
        self._per_company = policy.max_concurrent_per_company
        self._slots: dict[str, _Slot] = {}
        self._resume_at = 0.0  # time.monotonic() before which no request starts
        self.paused_seconds = 0.0
        self.quota = DailyQuota(policy.quota_reserve)
        #: Set once the quota is spent or down to the reserve: no request starts any more.
        self.exhausted: CodatQuotaExhaustedError | None = None

    async def acquire(self, company_id: str | None) -> None:
        """Wait until a request for ``company_id`` (None: not company-scoped) may start.

        Raises :class:`~auditor.codat.CodatQuotaExhaustedError` once the daily quota is spent
        or down to its reserve; then no request starts any more (whoever asks).
        """
        self._check_quota()
        if company_id is not None and self._per_company is not None:
            slot = self._slots.get(company_id)
            if slot is None:
                slot = self._slots[company_id] = _Slot(self._per_company)
            slot.users += 1
            try:
                await slot.semaphore.acquire()
            except BaseException:
                self._drop(company_id, slot)
                raise
        try:
            await self._wait_gate()
            if self._bucket is not None:
                await self._bucket.acquire()
                await self._wait_gate()
            self._check_quota()
        except BaseException:
            self._release_slot(company_id)
            raise
        self.quota.pending += 1

    def release(self, company_id: str | None, headers: Mapping[str, str] | None = None) -> None:
        """Give back what :meth:`acquire` took, once the request is over; ``headers``: the
        answer's, when there was one (the quota headers are read from them)."""
        self.quota.pending = max(0, self.quota.pending - 1)
        if headers is not None:
            self.observe(headers)
        self._release_slot(company_id)

    def _check_quota(self) -> None:
        if self.exhausted is None and self.policy.honour_headers:
            why = self.quota.refusal()
            if why is not None:
                self.exhausted = self._quota_error(why)
        if self.exhausted is not None:
            raise self._copy(self.exhausted)

    def _quota_error(
        self, why: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> CodatQuotaExhaustedError:
        quota = self.quota
        exc = CodatQuotaExhaustedError(
            why,
            resets_at=quota.resets_at,
            status_code=status_code,
            retry_after=retry_after,
            limit=quota.limit,
            remaining=quota.remaining,
        )
        exc.message = f"{why}; no more requests until the quota resets at {exc.resets_text}"
        exc.args = (exc.message,)
        _log.debug("%s", exc.message)  # once; the caller prints it (one message a run)
        return exc

    @staticmethod
    def _copy(exc: CodatQuotaExhaustedError) -> CodatQuotaExhaustedError:
        """A fresh exception like ``exc`` (each raise its own traceback)."""
        return CodatQuotaExhaustedError(
            exc.message,
            resets_at=exc.resets_at,
            status_code=exc.status_code,
            retry_after=exc.retry_after,
            limit=exc.limit,
            remaining=exc.remaining,
        )

    def quota_spent(
        self, retry_after: float | None, headers: Mapping[str, str]
    ) -> CodatQuotaExhaustedError | None:
        """The error for a 429 that says the daily quota is spent, or None for one of the
        per-minute ceiling: its ``Retry-After`` (else, with ``X-Rate-Limit-Remaining: 0``, the
        time until ``X-Rate-Limit-Reset``) is longer than ``quota_retry_after_bound``. The
        first such error closes the limiter for good (see :attr:`exhausted`)."""
        wait = retry_after
        if wait is None and _count(headers.get("x-rate-limit-remaining")) == 0:
            wait = parse_reset(headers.get("x-rate-limit-reset"))
        bound = self.policy.quota_retry_after_bound
        if wait is None or wait <= bound:
            return None
        if self.exhausted is None:
            self.quota.observe(headers)
            if parse_reset_at(headers.get("x-rate-limit-reset")) is None:
                self.quota.resets_at = datetime.now(UTC) + timedelta(seconds=wait)
            self.exhausted = self._quota_error(
                f"Codat's daily API quota is spent (HTTP 429, Retry-After {wait:,.0f} s, "
                f"longer than the {bound:,.0f} s bound)",
                status_code=429,
                retry_after=wait,
            )
        return self._copy(self.exhausted)

    def _release_slot(self, company_id: str | None) -> None:
        if company_id is None or self._per_company is None:
            return
        slot = self._slots.get(company_id)
        if slot is not None:
            slot.semaphore.release()
            self._drop(company_id, slot)

    def _drop(self, company_id: str, slot: _Slot) -> None:
        slot.users -= 1
        if slot.users <= 0:
            self._slots.pop(company_id, None)

    async def _wait_gate(self) -> None:
        while True:
            delay = self._resume_at - time.monotonic()
            if delay <= 0:
                return
            self.paused_seconds += delay
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (extends, never shortens, a pause)."""
        if seconds > 0:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the daily quota's ``X-Rate-Limit-*`` headers (unless ``honour_headers`` is off).

        They never pause anything: a quota spent until midnight is not waited for, it stops
        the run (see :meth:`acquire`)."""
        if self.policy.honour_headers and "x-rate-limit-remaining" in headers:
            self.quota.observe(headers)

    @property
    def companies_in_flight(self) -> int:
        """Companies with at least one request waiting or in flight."""
        return len(self._slots)
