"""``auditor.listen``: receive Codat's webhooks and keep them in the store's event log.

* :class:`ListenerServer` / :func:`serve` — the aiohttp server behind ``auditor listen``:
  Svix signature and timestamp verification, a body cap, de-duplication by ``webhook-id``,
  acknowledgement only once the event is fsync'ed; ``/healthz`` and Prometheus ``/metrics``.
* :class:`EventLog` — the append-only, group-committed event log under ``STORE/events``.
* :func:`load_events` — the stored events as a DataFrame, for the audit.
* :func:`compact` — fold closed days into Parquet (crash-safe, idempotent).

See ``docs/listen.md``.
"""

from __future__ import annotations

from auditor.listen.eventlog import (
    EVENT_COLUMNS,
    EVENTS_DIR,
    EventLog,
    EventLogError,
    compact,
    compact_day,
    load_events,
    load_raw_events,
)
from auditor.listen.server import (
    DEFAULT_MAX_BODY,
    ListenerBusyError,
    ListenerOptions,
    ListenerServer,
    WebhookSecretError,
    check_secret,
    serve,
)
from auditor.listen.signing import signed_headers

__all__ = [
    "DEFAULT_MAX_BODY",
    "EVENTS_DIR",
    "EVENT_COLUMNS",
    "EventLog",
    "EventLogError",
    "ListenerBusyError",
    "ListenerOptions",
    "ListenerServer",
    "WebhookSecretError",
    "check_secret",
    "compact",
    "compact_day",
    "load_events",
    "load_raw_events",
    "serve",
    "signed_headers",
]
