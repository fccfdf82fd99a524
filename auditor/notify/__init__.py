"""Notifications beyond email: Slack (Block Kit), Microsoft Teams (Adaptive Card) and a generic
JSON webhook, routed like the email digest (docs/notifications.md).

* :mod:`._content` builds the channel-neutral :class:`Notification` (headline counts, the
  notices of an incomplete audit, entries grouped per company x rule, the report link);
* :mod:`.slack`, :mod:`.teams`, :mod:`.webhook` lay it out for one channel each, within the
  channel's size limits, hostile text inert;
* :mod:`._send` POSTs one message (httpx + tenacity: 429/5xx retried, Retry-After honoured,
  the URL a secret); :mod:`._deliver` plans the routes and sends every message.

The settings are :mod:`auditor.notify_settings` (the config's ``[notify]`` table); the route
filters and scopes are :mod:`auditor.routing`'s, shared with email.
"""

from __future__ import annotations

from auditor.notify_settings import CHANNELS, Channel, NotifyRoute, NotifySettings

from ._content import Entry, Notification, build_notification, group_findings
from ._deliver import (
    LAYOUTS,
    NotifyOutcome,
    NotifyPlan,
    deliver_notifications,
    entries_shown,
    plan_notifications,
)
from ._send import NotifyError, encode_body, post_json
from .slack import slack_payload
from .teams import teams_payload
from .webhook import webhook_payload

__all__ = [
    "CHANNELS",
    "LAYOUTS",
    "Channel",
    "Entry",
    "Notification",
    "NotifyError",
    "NotifyOutcome",
    "NotifyPlan",
    "NotifyRoute",
    "NotifySettings",
    "build_notification",
    "deliver_notifications",
    "encode_body",
    "entries_shown",
    "group_findings",
    "plan_notifications",
    "post_json",
    "slack_payload",
    "teams_payload",
    "webhook_payload",
]
