"""The knobs of a sandbox (``SandboxOptions``) and its default API key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

__all__ = ["SANDBOX_API_KEY", "SandboxOptions"]

#: The API key a sandbox accepts unless ``SandboxOptions.api_key`` says otherwise. It guards
#: nothing; it is distinctive so that tests can check it never leaks into output.
SANDBOX_API_KEY: Final = "sandbox-key-7f3e9c2a5b8d4e61"


@dataclass(frozen=True)
class SandboxOptions:
    """Knobs of a sandbox. Rates are probabilities per request, drawn reproducibly from ``seed``.

    ``latency_ms``            added to every response.
    ``rate_limit_per_min``    the per-IP DoS ceiling: requests allowed per window (None:
                              unlimited); past it, 429 with ``Retry-After`` and no quota headers
                              (Codat documents none for it).
    ``rate_limit_window_seconds`` the window's length in real seconds (60: "per minute";
                              tests shorten it).
    ``daily_quota``           the daily quota (None: unlimited): authorised requests allowed per
                              sandbox day. ``X-Rate-Limit-Limit`` (the quota),
                              ``-Remaining`` and ``-Reset`` (the next 00:00 UTC of sandbox time,
                              an HTTP date) are on every authorised answer; once it is spent,
                              429 with ``Retry-After`` (real seconds until that midnight) until
                              sandbox time reaches it.
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
    ``webhook_url``           post Codat's webhooks there as the fleet changes (None: none);
                              signed with ``webhook_secret`` (a ``whsec_`` Svix secret). See
                              :mod:`auditor.sandbox._webhooks` and docs/sandbox.md.
    ``webhook_poll_seconds``  real seconds between two looks at sandbox time.
    ``webhook_step_minutes``  sandbox minutes per scan step (a sync that fails and recovers
                              within one step is not seen).
    ``webhook_issue_rate``    share of company x data types whose data is doubtful: 80 % of
                              their completed reads carry a ``warning.validation``.
    ``webhook_duplicate_rate`` share of events delivered twice (at least once delivery).
    ``webhook_retry_seconds`` delays between attempts after a failed delivery (then gives up).
    ``webhook_concurrency``   deliveries in flight at once.
    """

    latency_ms: float = 0.0
    rate_limit_per_min: int | None = None
    rate_limit_window_seconds: float = 60.0
    daily_quota: int | None = None
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
    webhook_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_poll_seconds: float = 1.0
    webhook_step_minutes: int = 240
    webhook_issue_rate: float = 0.005
    webhook_duplicate_rate: float = 0.05
    webhook_retry_seconds: tuple[float, ...] = (0.0, 0.2, 1.0, 5.0, 30.0)
    webhook_concurrency: int = 4

    def __post_init__(self) -> None:
        rates = {
            "fault_rate": self.fault_rate,
            "timeout_rate": self.timeout_rate,
            "reset_rate": self.reset_rate,
            "malformed_rate": self.malformed_rate,
            "quirk_share": self.quirk_share,
            "refresh_error_rate": self.refresh_error_rate,
            "webhook_issue_rate": self.webhook_issue_rate,
            "webhook_duplicate_rate": self.webhook_duplicate_rate,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        total = self.fault_rate + self.timeout_rate + self.reset_rate + self.malformed_rate
        if total > 1.0:
            raise ValueError(f"fault, timeout, reset and malformed rates sum to {total} > 1")
        if self.rate_limit_per_min is not None and self.rate_limit_per_min < 1:
            raise ValueError("rate_limit_per_min must be >= 1 (or None for no limit)")
        if self.daily_quota is not None and self.daily_quota < 1:
            raise ValueError("daily_quota must be >= 1 (or None for no quota)")
        if self.rate_limit_window_seconds <= 0:
            raise ValueError("rate_limit_window_seconds must be > 0")
        if self.latency_ms < 0 or self.timeout_hang_seconds < 0:
            raise ValueError("latency_ms and timeout_hang_seconds must be >= 0")
        if self.time_scale <= 0 or self.sync_phase_seconds < 0:
            raise ValueError("time_scale must be > 0 and sync_phase_seconds >= 0")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware")
        if self.webhook_url is not None and not (self.webhook_secret or "").startswith("whsec_"):
            raise ValueError("webhook_url needs a webhook_secret starting with whsec_")
        if self.webhook_poll_seconds <= 0 or self.webhook_step_minutes < 1:
            raise ValueError("webhook_poll_seconds must be > 0 and webhook_step_minutes >= 1")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
