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

``[[notify.forward]]`` (:class:`ForwardRoute`) forwards selected webhook events at once from
``auditor listen`` (:mod:`auditor.notify.forward`, docs/listen.md "Intraday forwarding"):

.. code-block:: toml

    [[notify.forward]]
    events = ["connection.disconnected"]   # eventType, or a prefix such as "connection.*"
    tags = {tier = "gold"}                 # the routes' tags filter (company tags)
    slack = ["SLACK_ONCALL_URL"]           # url_env names, as in [[notify.slack]]
    email = ["oncall@example.com"]
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auditor.route_filters import RouteFilter, TagFilter
from auditor.safe_text import EmailAddress

__all__ = ["CHANNELS", "Channel", "ForwardRoute", "NotifyRoute", "NotifySettings"]

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


#: An event type to forward: an ``eventType`` (``connection.disconnected``), a prefix
#: (``connection.*``) or ``*`` (every event).
_EVENT_PATTERN: Final = re.compile(r"^(\*|[A-Za-z0-9{}_-]+(\.[A-Za-z0-9{}_-]+)*(\.\*)?)$")


def _env_names(values: list[str]) -> list[str]:
    for value in values:
        if not _ENV_NAME.match(value):
            raise ValueError(
                "environment variable names (letters, digits, _) holding the webhook URLs, "
                "e.g. SLACK_WEBHOOK_URL; a URL itself never goes in the config file"
            )
    return values


class ForwardRoute(BaseModel):
    """One intraday forwarding route: which webhook events (``events``), for which companies
    (``tags``, ``platforms``: the filters of every route), sent where (``slack``, ``teams``,
    ``webhook``: variables naming webhook URLs, as ``url_env``; ``email``: addresses)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A name for logs and the message (default: the event types).
    name: str | None = Field(default=None, max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$")
    events: list[str] = Field(min_length=1)
    tags: TagFilter | None = None
    platforms: list[str] | None = None
    slack: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    webhook: list[str] = Field(default_factory=list)
    email: list[EmailAddress] = Field(default_factory=list)

    @field_validator("events")
    @classmethod
    def _events(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _EVENT_PATTERN.match(value):
                raise ValueError(
                    "event types such as connection.disconnected, a prefix such as "
                    "connection.* or * (every event)"
                )
        return values

    @field_validator("slack", "teams", "webhook")
    @classmethod
    def _url_envs(cls, values: list[str]) -> list[str]:
        return _env_names(values)

    @model_validator(mode="after")
    def _somewhere(self) -> ForwardRoute:
        if not (self.slack or self.teams or self.webhook or self.email):
            raise ValueError("a forward route needs somewhere to send: slack, teams, webhook "
                             "(variable names) or email (addresses)")
        return self

    @property
    def label(self) -> str:
        return self.name or ", ".join(self.events)

    def wants(self, event_type: str) -> bool:
        """Whether this route forwards events of ``event_type``."""
        for pattern in self.events:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False


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
    #: Intraday forwarding of webhook events by ``auditor listen`` (not used by ``auditor run``).
    forward: list[ForwardRoute] = Field(default_factory=list)
    #: Events waiting to be forwarded at most; beyond, new ones are dropped (counted, logged).
    forward_queue: int = Field(default=1000, ge=1, le=1_000_000)
    #: Events forwarded per second at most (a burst waits in the queue, then drops): Slack
    #: takes about one message a second per webhook, and the listener's CPU stays its own.
    forward_per_second: float = Field(default=5.0, gt=0, le=1000)
    #: Seconds between checks for a new snapshot (company names, tags, links of the fleet).
    forward_refresh_seconds: float = Field(default=60.0, gt=0, le=86_400)

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
