"""The whole delivery: plan the routes, build one message per audience, send (or write) each.

Routes of one channel that name the same ``url_env`` are one audience: one message covering
the union of their filters (as an email address on several routes gets one digest). A scoped
audience with nothing in its scope gets nothing, unless the audit is incomplete (then every
audience hears it: silence would read as all clear). One failed message never stops the
others; each outcome says what happened, and the caller turns a failure into exit 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import pandas as pd

from auditor.logs import redact
from auditor.notify_settings import Channel, NotifyRoute, NotifySettings
from auditor.report import FleetInfo
from auditor.report._view import unsnoozed
from auditor.result import AuditResult
from auditor.routing import Scope

from ._content import Notification, build_notification
from ._send import NotifyError, encode_body, post_json
from .slack import slack_payload
from .teams import teams_payload
from .webhook import webhook_payload

__all__ = [
    "LAYOUTS",
    "NotifyOutcome",
    "NotifyPlan",
    "deliver_notifications",
    "entries_shown",
    "plan_notifications",
]

log = logging.getLogger("auditor.notify")

#: How each channel lays a :class:`Notification` out.
LAYOUTS: Final[Mapping[Channel, Callable[[Notification], dict[str, Any]]]] = {
    "slack": slack_payload,
    "teams": teams_payload,
    "webhook": webhook_payload,
}


@dataclass(frozen=True)
class NotifyPlan:
    """One message to send: the channel, the variable naming the URL, what it covers."""

    channel: Channel
    url_env: str
    label: str
    scope: Scope
    max_items: int


@dataclass(frozen=True)
class NotifyOutcome:
    """What happened to one message: sent, written (dry run) or failed (``error``)."""

    channel: Channel
    label: str
    scope: str | None
    sent: bool
    bytes: int
    entries_shown: int
    entries_total: int
    path: Path | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def plan_notifications(result: AuditResult, settings: NotifySettings) -> list[NotifyPlan]:
    """One :class:`NotifyPlan` per distinct (channel, ``url_env``)."""
    grouped: dict[tuple[Channel, str], list[NotifyRoute]] = {}
    for channel, route in settings.routes():
        grouped.setdefault((channel, route.url_env), []).append(route)
    plans = []
    for (channel, url_env), routes in grouped.items():
        scope = Scope.of(routes)
        if not scope.everything and not result.incomplete:
            scoped = scope.apply(result)
            if scoped.active.empty and unsnoozed(scoped.resolved).empty:
                continue
        limits = [r.max_items for r in routes if r.max_items is not None]
        label = " + ".join(dict.fromkeys(r.label for r in routes))
        plans.append(
            NotifyPlan(
                channel,
                url_env,
                f"{channel} {label}",
                scope,
                max(limits) if limits else settings.max_items,
            )
        )
    return plans


def entries_shown(channel: Channel, payload: dict[str, Any]) -> int:
    """How many entries a laid-out payload carries (the rest were counted, not shown)."""
    if channel == "slack":
        return sum(1 for b in payload["blocks"] if str(b.get("block_id", "")).startswith("entry-"))
    if channel == "teams":
        body = payload["attachments"][0]["content"]["body"]
        return sum(1 for b in body if str(b.get("id", "")).startswith("entry-"))
    return len(payload["entries"])


def deliver_notifications(
    result: AuditResult,
    settings: NotifySettings,
    *,
    fleet: FleetInfo | None = None,
    display_tz: str = "UTC",
    out_dir: Path | str | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
    actions: pd.DataFrame | None = None,
) -> list[NotifyOutcome]:
    """Send every planned message; with ``dry_run`` write each body to
    ``OUT/notify-<channel>-<n>.json`` instead (no request is made, no URL is needed).

    Never raises for a message that could not be sent: its outcome has ``error`` set (and the
    failure is logged, URL redacted). Messages are all built before any is sent."""
    environ = os.environ if env is None else env
    plans = plan_notifications(result, settings)
    payloads = []
    for plan in plans:
        note = build_notification(
            result,
            scope=plan.scope,
            fleet=fleet,
            display_tz=display_tz,
            report_url=settings.report_url,
            max_items=plan.max_items,
            actions=actions,
        )
        payloads.append((plan, note, LAYOUTS[plan.channel](note)))
    outcomes = []
    for n, (plan, note, payload) in enumerate(payloads):
        body = encode_body(payload)
        base = NotifyOutcome(
            channel=plan.channel,
            label=plan.label,
            scope=plan.scope.label(),
            sent=False,
            bytes=len(body),
            entries_shown=entries_shown(plan.channel, payload),
            entries_total=note.entries_total,
        )
        if dry_run:
            if out_dir is None:
                outcomes.append(base)
                continue
            path = Path(out_dir) / f"notify-{plan.channel}-{n}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            outcomes.append(replace(base, path=path))
            continue
        url = environ.get(plan.url_env, "").strip()
        try:
            if not url:
                raise NotifyError(f"{plan.label}: {plan.url_env} is not set (the webhook URL)")
            extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
            post_json(
                url,
                body,
                label=plan.label,
                timeout=settings.timeout,
                max_attempts=settings.max_attempts,
                max_seconds=settings.max_seconds,
                **extra,
            )
        except NotifyError as exc:
            message = redact(str(exc))
            log.error("notification failed: %s", message)
            outcomes.append(replace(base, error=message))
            continue
        except Exception as exc:  # a bug must not leak the URL either
            message = redact(f"{plan.label}: {type(exc).__name__}: {exc}")
            log.error("notification failed: %s", message)
            outcomes.append(replace(base, error=message))
            continue
        log.info("notification sent: %s (%d bytes)", plan.label, len(body))
        outcomes.append(replace(base, sent=True))
    return outcomes
