"""POSTing one JSON message: httpx, retried by tenacity on 429, 5xx and transport errors.

A ``Retry-After`` (delta seconds or an HTTP date, read by the Codat client's own
:func:`~auditor.codat._limiter.parse_retry_after`) is waited out when it fits the message's time
budget; otherwise the message fails at once rather than sleeping past the budget. Attempts and
total time are bounded (``[notify] max_attempts``, ``max_seconds``, ``timeout`` per request).

The URL is a secret: it is registered with :func:`auditor.logs.register_secret` (whole, and its
path, which holds the token) before the first request, and no error raised here quotes it or
chains an httpx exception that might.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from auditor.codat._limiter import parse_retry_after
from auditor.email_settings import is_loopback
from auditor.logs import redact, redact_logger, register_secret

from ._content import flat

__all__ = ["NotifyError", "encode_body", "post_json", "register_url"]

log = logging.getLogger("auditor.notify")
# httpx logs "HTTP Request: POST <url>" at INFO: the URL is a secret.
for _name in ("httpx", "httpcore"):
    redact_logger(_name)

#: Seconds of the first backoff without Retry-After (doubling, at most :data:`_MAX_BACKOFF`).
_FIRST_BACKOFF: Final = 0.5
_MAX_BACKOFF: Final = 10.0
_USER_AGENT: Final = "codat-freshness-auditor"


class NotifyError(RuntimeError):
    """A notification could not be delivered. The message names the route, never its URL."""


class _Retryable(Exception):
    def __init__(self, status: int | None, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def encode_body(payload: dict[str, Any]) -> bytes:
    """The JSON body as sent (UTF-8, compact)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def register_url(url: str) -> None:
    """Make ``url`` a secret: redacted whole, and its path (where Slack and Teams put the token)
    when the path is long enough to be one."""
    register_secret(url)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(path) >= 12:
        register_secret(path)
    if parts.query and len(parts.query) >= 12:
        register_secret(parts.query)


def check_url(url: str, label: str) -> None:
    """``url`` must be https, or http to a loopback host (tests, a local relay)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if any(c.isspace() or ord(c) < 0x20 for c in url) or not host:
        raise NotifyError(f"{label}: the URL is not a valid http(s) URL (value not shown)")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return
    raise NotifyError(
        f"{label}: the URL must be https:// (http only to a loopback host); value not shown"
    )


class _StopOnBudget(stop_base):
    """Stop when the next wait would pass the deadline."""

    def __init__(self, deadline: float, wait: Callable[[RetryCallState], float]) -> None:
        self.deadline = deadline
        self.wait = wait

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + self.wait(retry_state) > self.deadline


def _wait(retry_state: RetryCallState) -> float:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, _Retryable) and exc.retry_after is not None:
        return float(exc.retry_after)
    return float(min(_FIRST_BACKOFF * 2.0 ** (retry_state.attempt_number - 1), _MAX_BACKOFF))


def post_json(
    url: str,
    body: bytes,
    *,
    label: str,
    timeout: float = 10.0,
    max_attempts: int = 4,
    max_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
) -> int:
    """POST ``body`` (JSON) to ``url``; the HTTP status of the answer that took it (2xx).

    Raises :class:`NotifyError` (without the URL) after the last attempt, or at once on an
    answer that retrying cannot change (4xx other than 408/429). ``client``: an
    ``httpx.Client`` to reuse (``follow_redirects=False``; its own timeout), e.g. by a
    long-running sender; else one is made for this message."""
    register_url(url)
    check_url(url, label)
    deadline = time.monotonic() + max_seconds
    attempts = 0

    def attempt(client: httpx.Client) -> int:
        nonlocal attempts
        attempts += 1
        try:
            response = client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT},
            )
        except httpx.TransportError as exc:
            raise _Retryable(None, f"{type(exc).__name__}: {exc}", None) from None
        if 200 <= response.status_code < 300:
            return response.status_code
        detail = f"HTTP {response.status_code}: {flat(response.text, 200)}"
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _Retryable(
                response.status_code,
                detail,
                parse_retry_after(response.headers.get("retry-after")),
            )
        raise NotifyError(redact(f"{label}: refused: {detail}"))

    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
        stop=stop_after_attempt(max_attempts) | _StopOnBudget(deadline, _wait),
        wait=_wait,
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: log.warning(
            "%s: attempt %d failed (%s); retrying in %.1fs",
            label,
            state.attempt_number,
            redact(str(state.outcome.exception() if state.outcome else "")),
            _wait(state),
        ),
    )
    with contextlib.nullcontext(client) if client is not None else httpx.Client(
        timeout=timeout, follow_redirects=False
    ) as http:
        try:
            return int(retrying(attempt, http))
        except _Retryable as exc:
            raise NotifyError(
                redact(f"{label}: not delivered after {attempts} attempt"
                       f"{'' if attempts == 1 else 's'}: {exc.detail}")
            ) from None  # fmt: skip
