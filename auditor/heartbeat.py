"""Heartbeat of the nightly job (a dead man's switch): pings at start, success and failure.

``auditor run`` pings a monitoring URL when ``AUDITOR_HEARTBEAT_URL`` (or ``[run]
heartbeat_url``) names one, in the healthchecks.io convention
(https://healthchecks.io/docs/measuring_script_run_time/,
https://healthchecks.io/docs/signaling_failures/, https://healthchecks.io/docs/http_api/):

``URL/start``  when the run starts (once its configuration is read);
``URL``        when it ends having worked: exit 0, or 1 (findings at the fail level: the job
               did its work and the digest says what it found);
``URL/fail``   when it ends with exit 2 (the run failed or its answer cannot be trusted).

Each ping is a POST whose body is one short line (run id, exit code, reason; healthchecks.io
keeps the body of a ping as its log), with a ``rid`` query parameter (a UUID per run, the
same on the three pings) so that the service pairs the start with its end even when two runs
overlap (https://blog.healthchecks.io/2022/11/using-run-ids-to-track-run-times-of-overlapping-jobs/).
The monitoring service alerts when the start is not followed by an end within its grace
time, or when no ping arrives on schedule: a job that did not run at all is noticed.

A ping never fails the run: it has a short timeout (:data:`PING_TIMEOUT` seconds), is tried
:data:`PING_ATTEMPTS` times (a connection error, a timeout, a 429 or a 5xx is retried after
a short pause), and a ping that still fails is logged as a warning. The URL is a secret (its
UUID or ping key is all it takes to ping): there is no command-line option for it, it is
registered for redaction and never logged (nor is the body of an answer), and a config error
about it does not echo it. Any http(s) URL works (a self-hosted Healthchecks, Cronitor's or
Better Stack's heartbeat URLs with the same suffixes, or one's own receiver); a query string
in it (e.g. ``?create=1``) is kept.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from auditor.logs import redact, register_secret
from auditor.safe_text import clip

__all__ = [
    "HEARTBEAT_URL_ENV",
    "PING_ATTEMPTS",
    "PING_TIMEOUT",
    "Heartbeat",
    "PingKind",
    "heartbeat",
    "ping_url",
]

log = logging.getLogger("auditor.heartbeat")

#: The environment variable with the heartbeat URL (wins over ``[run] heartbeat_url``).
HEARTBEAT_URL_ENV: Final = "AUDITOR_HEARTBEAT_URL"
#: Seconds before one ping attempt gives up (connect, read and write each).
PING_TIMEOUT: Final = 5.0
#: Attempts per ping, the first included.
PING_ATTEMPTS: Final = 3
#: Characters of the reason sent in a ping's body (healthchecks.io keeps 100 kB, a
#: self-hosted instance 10 kB by default).
MAX_BODY_CHARS: Final = 1_000

PingKind = Literal["start", "success", "fail"]
_SUFFIX: Final[Mapping[PingKind, str]] = {"start": "/start", "success": "", "fail": "/fail"}


def ping_url(url: str, kind: PingKind, run_uuid: str | None = None) -> str:
    """``url`` with the suffix of ``kind`` appended to its path (``/start``, none, ``/fail``)
    and ``rid=run_uuid`` added to its query (a query already there is kept)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + _SUFFIX[kind] if _SUFFIX[kind] else parts.path
    query = parse_qsl(parts.query, keep_blank_values=True)
    if run_uuid is not None:
        query = [(k, v) for k, v in query if k != "rid"] + [("rid", run_uuid)]
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), parts.fragment))


class _Retryable(Exception):
    """An answer worth another try (429, 5xx)."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx.TransportError)


@dataclass
class Heartbeat:
    """The pings of one run. Without a URL every method does nothing.

    ``sent`` lists the kinds that reached the service (2xx), for the caller and the tests.
    """

    url: str | None
    run_id: str
    timeout: float = PING_TIMEOUT
    attempts: int = PING_ATTEMPTS
    #: Seconds of the first pause between attempts (doubled each time, at most 2 s).
    backoff: float = 0.5
    run_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    sent: list[PingKind] = field(default_factory=list)
    #: Whether the run's end was pinged already (one end per run).
    finished: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def start(self) -> bool:
        """Ping ``URL/start``."""
        return self._ping("start", f"auditor run {self.run_id} started")

    def finish(self, exit_code: int, reason: str = "") -> bool:
        """Ping the run's end: ``URL`` for exit 0 or 1, ``URL/fail`` otherwise (once)."""
        if self.finished:
            return True
        self.finished = True
        kind: PingKind = "success" if exit_code in (0, 1) else "fail"
        body = f"auditor run {self.run_id}: exit {exit_code}" + (f": {reason}" if reason else "")
        return self._ping(kind, body)

    def _ping(self, kind: PingKind, body: str) -> bool:
        """POST one ping; True when the service answered 2xx. Never raises."""
        if not self.url:
            return True
        target = ping_url(self.url, kind, self.run_uuid)
        register_secret(target)
        content = (clip(redact(body), MAX_BODY_CHARS) or "").encode("utf-8", "replace")
        headers = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "codat-auditor"}
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
                for attempt in Retrying(
                    stop=stop_after_attempt(max(1, self.attempts)),
                    wait=wait_exponential(multiplier=self.backoff, max=2.0),
                    retry=retry_if_exception(_retryable),
                    reraise=False,
                ):
                    with attempt:
                        response = client.post(target, content=content, headers=headers)
                        if response.status_code == 429 or response.status_code >= 500:
                            raise _Retryable(f"HTTP {response.status_code}")
                        if not response.is_success:
                            log.warning(
                                "heartbeat %s ping refused: HTTP %d (not retried; check the "
                                "heartbeat URL)", kind, response.status_code,
                            )
                            return False
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            log.warning(
                "heartbeat %s ping failed after %d attempts: %s (the run goes on)",
                kind, max(1, self.attempts), _describe(cause),
            )
            return False
        except Exception as exc:  # a ping never fails the run
            log.warning("heartbeat %s ping failed: %s (the run goes on)", kind, _describe(exc))
            return False
        self.sent.append(kind)
        log.info("heartbeat %s ping sent", kind)
        return True


def _describe(exc: BaseException | None) -> str:
    """The exception's type and text, without the URL (httpx names it in some messages)."""
    if exc is None:
        return "unknown error"
    return redact(f"{type(exc).__name__}: {exc}")[:300]


def heartbeat(
    run_id: str,
    *,
    file_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Heartbeat:
    """The run's heartbeat: ``AUDITOR_HEARTBEAT_URL`` wins over ``[run] heartbeat_url``
    (``file_url``); neither: a heartbeat that does nothing. The URL (and a password in it)
    is registered as a secret. A URL that is not http(s) gives a warning and no pings."""
    environ = os.environ if env is None else env
    url = environ.get(HEARTBEAT_URL_ENV) or file_url or None
    if url:
        register_secret(url)
        parts = urlsplit(url)
        register_secret(parts.password)
        if len(parts.path.strip("/")) >= 8:  # the check's UUID or ping key and slug
            register_secret(parts.path.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            log.warning(
                "%s is not an http(s) URL (value not shown: it is a secret); no heartbeat "
                "pings", HEARTBEAT_URL_ENV,
            )
            url = None
    return Heartbeat(url=url, run_id=run_id)
