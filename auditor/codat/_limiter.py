"""Client-side rate limiting shared by every task of one client.

Three gates, in this order, before each request (retries included):

1. at most ``max_concurrent_per_company`` requests in flight per company (asyncio
   semaphores keyed by company id, dropped when unused);
2. a pause gate, closed until a moment Codat told us about: a 429's ``Retry-After``, or
   ``X-Rate-Limit-Reset`` when ``X-Rate-Limit-Remaining`` says the quota is spent;
3. a leaky bucket (aiolimiter) sized so that no 60-second window, sliding or fixed, holds
   more than ``requests_per_minute`` requests (see :class:`RateLimitPolicy`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from aiolimiter import AsyncLimiter

from auditor.codat._config import RateLimitPolicy

__all__ = ["RequestLimiter", "parse_reset", "parse_retry_after"]


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


def _seconds_until_date(text: str, now: float | None) -> float | None:
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
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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

    async def acquire(self, company_id: str | None) -> None:
        """Wait until a request for ``company_id`` (None: not company-scoped) may start."""
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
        except BaseException:
            self.release(company_id)
            raise

    def release(self, company_id: str | None) -> None:
        """Give back the company slot taken by :meth:`acquire`."""
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
        """Read ``X-Rate-Limit-Remaining``/``-Reset``: pause when the quota is spent."""
        if not self.policy.honour_headers:
            return
        remaining = headers.get("x-rate-limit-remaining")
        if remaining is None:
            return
        try:
            left = int(float(remaining))
        except ValueError:
            return
        if left > self.policy.header_reserve:
            return
        reset = parse_reset(headers.get("x-rate-limit-reset"))
        if reset is None:
            reset = 1.0
        self.pause(min(reset, self.policy.max_header_pause))

    @property
    def companies_in_flight(self) -> int:
        """Companies with at least one request waiting or in flight."""
        return len(self._slots)
