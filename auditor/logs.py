"""Logging for the CLI: human lines on a terminal, JSON lines for log collectors.

Every record of a run carries its ``run_id``. Secrets registered with :func:`register_secret`
(the API key, SMTP password, and their Basic-auth encodings) are replaced by ``***`` in every
message and argument before any handler sees them: defence in depth on top of never logging
them in the first place.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = ["LogFormat", "configure_logging", "redact", "register_secret"]

LogFormat = Literal["human", "json"]

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
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _Context(logging.Filter):
    """Stamps the run id on every record and redacts secrets."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        if _SECRETS:
            record.msg = redact(str(record.msg))
            if record.args:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


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
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


def configure_logging(
    *, run_id: str, fmt: LogFormat = "human", level: int = logging.INFO
) -> logging.Handler:
    """Send ``auditor`` logs to stderr in ``fmt``, each line stamped with ``run_id``."""
    handler = _StderrHandler(sys.stderr)
    handler.addFilter(_Context(run_id))
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s [%(run_id)s] %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger("auditor")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
