"""Logging for the CLI: human lines on a terminal, JSON lines for log collectors.

Every record of a run carries its ``run_id``. Secrets registered with :func:`register_secret`
(the API key, SMTP password, webhook URLs, and their Basic-auth encodings) are replaced by
``***`` in what the handler writes: the formatted line, tracebacks and every ``extra`` field.
Redaction happens on the way out, so no formatter path (an exception's text, a non-string
argument, a field added later) can carry a secret past it: defence in depth on top of never
logging them in the first place.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = [
    "LOG_LEVELS",
    "LogFormat",
    "LogLevel",
    "configure_logging",
    "redact",
    "redact_logger",
    "register_secret",
    "set_cli_defaults",
]

LogFormat = Literal["human", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: What ``auditor --log-level/--quiet`` set for every command of this process.
_CLI: dict[str, int | bool] = {"level": logging.INFO, "quiet": False}


def set_cli_defaults(*, level: LogLevel | None = None, quiet: bool = False) -> None:
    """The global ``--log-level`` and ``--quiet`` of the CLI: the level every later
    :func:`configure_logging` uses (``--quiet`` alone means warnings and errors only)."""
    _CLI["quiet"] = quiet
    _CLI["level"] = LOG_LEVELS[level] if level else (logging.WARNING if quiet else logging.INFO)


def cli_quiet() -> bool:
    """``--quiet`` was given: commands print errors only."""
    return bool(_CLI["quiet"])

_SECRETS: set[str] = set()
_RESERVED: Final[frozenset[str]] = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
) | {"message", "asctime", "run_id"}


def register_secret(secret: str | None) -> None:
    """Never let ``secret`` (nor its base64 form, as sent in Basic auth) reach a log line."""
    if not secret:
        return
    _SECRETS.add(secret)
    _SECRETS.add(base64.b64encode(secret.encode()).decode())


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest secrets first, so a
    secret that contains another is removed whole)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _Redacting(logging.Filter):
    """Redacts a record's message in place (for loggers of libraries that quote URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def redact_logger(name: str) -> None:
    """Redact every registered secret from the records of logger ``name`` (e.g. ``httpx``,
    whose INFO line quotes the request URL: a webhook URL is a secret), whatever handler
    ends up writing them. Idempotent."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _Redacting) for f in logger.filters):
        logger.addFilter(_Redacting())


class _Context(logging.Filter):
    """Stamps the run id on every record."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        return True


#: Characters kept of a log message (text from Codat can be any size: one error body was
#: 200 KB) and of a traceback; the rest is cut with a note of how much was left out.
MAX_MESSAGE_CHARS: Final = 2_000
MAX_TRACEBACK_CHARS: Final = 20_000


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters]"


class _HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = _bounded(redact(record.getMessage()), MAX_MESSAGE_CHARS)
        saved = record.msg, record.args
        record.msg, record.args = line, None
        try:
            out = super().format(record)
        finally:
            record.msg, record.args = saved
        return _bounded(redact(out), MAX_MESSAGE_CHARS + MAX_TRACEBACK_CHARS)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "message": _bounded(redact(record.getMessage()), MAX_MESSAGE_CHARS),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = _bounded(self.formatException(record.exc_info), MAX_TRACEBACK_CHARS)
        # Values are redacted before encoding (JSON escaping would hide a secret with a quote
        # or a backslash from a search of the encoded line) and the line once more after.
        return redact(json.dumps(_redacted(payload), default=lambda v: redact(str(v))))


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return _bounded(redact(value), MAX_MESSAGE_CHARS)
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redacted(v) for v in value]
    return value


def configure_logging(
    *, run_id: str, fmt: LogFormat = "human", level: int | None = None
) -> logging.Handler:
    """Send ``auditor`` logs to stderr in ``fmt``, each line stamped with ``run_id``; at
    ``level`` (default: the CLI's ``--log-level``/``--quiet``, else INFO)."""
    level = int(_CLI["level"]) if level is None else level
    handler = _StderrHandler(sys.stderr)
    handler.addFilter(_Context(run_id))
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            _HumanFormatter("%(asctime)s %(levelname)-7s [%(run_id)s] %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger("auditor")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
