"""The notifications' settings: the config's ``[notify]`` table (Slack, Teams, JSON webhooks).

A leaf of the config, like :mod:`auditor.email_settings`: :mod:`auditor.config` types
``AuditConfig.notify`` with :class:`NotifySettings` (validated when the file loads) and
:mod:`auditor.notify` sends with it, without either importing the other.

.. code-block:: toml

    [notify]
    report_url = "https://ops.example.com/freshness/report.html"   # linked from every message

    [[notify.slack]]
    url_env = "SLACK_WEBHOOK_URL"       # the webhook URL is a secret: only from the environment
    severities = ["error"]              # the same filters as [[email.routes]]
    tags = {owner = "team-a"}
    min_nights = 2

    [[notify.teams]]
    url_env = "TEAMS_WEBHOOK_URL"

    [[notify.webhook]]
    url_env = "OPS_WEBHOOK_URL"

A route's URL is read from the environment variable ``url_env`` when the message is sent; it is
registered as a secret then (:func:`auditor.logs.register_secret`) and never appears in a log
line, an error or a file.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditor.route_filters import RouteFilter

__all__ = ["CHANNELS", "Channel", "NotifyRoute", "NotifySettings"]

Channel = Literal["slack", "teams", "webhook"]
CHANNELS: Final[tuple[Channel, ...]] = ("slack", "teams", "webhook")
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class NotifyRoute(RouteFilter):
    """One notification route: where (the environment variable holding the webhook URL) and
    which findings (:class:`~auditor.routing.RouteFilter`'s filters)."""

    #: The environment variable that holds the webhook URL (the URL itself never goes in a file).
    url_env: str
    #: A name for logs and the run summary (default: the variable's name).
    name: str | None = Field(default=None, max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$")
    #: Entries (company x rule) listed at most; the rest are counted ("and N more").
    max_items: int | None = Field(default=None, ge=1, le=200)

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                "an environment variable name (letters, digits, _), e.g. SLACK_WEBHOOK_URL; "
                "the URL itself is a secret and never goes in the config file"
            )
        return value

    @property
    def label(self) -> str:
        return self.name or self.url_env


class NotifySettings(BaseModel):
    """The ``[notify]`` table of the config."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = True
    #: Where the report is published (https); linked from every message. None: no link.
    report_url: str | None = None
    #: Entries (company x rule) per message unless a route says otherwise.
    max_items: int = Field(default=15, ge=1, le=200)
    #: Attempts per message, the first included (429 and 5xx are retried).
    max_attempts: int = Field(default=4, ge=1, le=10)
    #: Seconds one request may take.
    timeout: float = Field(default=10.0, gt=0, le=300)
    #: Seconds all attempts of one message may take, waits (Retry-After) included.
    max_seconds: float = Field(default=60.0, gt=0, le=3600)
    slack: list[NotifyRoute] = Field(default_factory=list)
    teams: list[NotifyRoute] = Field(default_factory=list)
    webhook: list[NotifyRoute] = Field(default_factory=list)

    @field_validator("report_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https://[^\s/?#]+[^\s]*$", value) or any(
            ord(c) < 0x20 or ord(c) == 0x7F for c in value
        ):
            raise ValueError("report_url must be an https:// URL on one line")
        return value

    def routes(self) -> list[tuple[Channel, NotifyRoute]]:
        """Every route with its channel, in the file's order per channel."""
        if not self.enabled:
            return []
        return [(channel, route) for channel in CHANNELS for route in getattr(self, channel)]
