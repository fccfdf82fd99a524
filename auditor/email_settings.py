"""The email digest's settings: the config's ``[email]`` table and the ``SMTP_*`` environment.

A leaf module: it imports nothing of the config, the rules or the reports, so that
:mod:`auditor.config` can type ``AuditConfig.email`` with :class:`EmailSettings` (validated
once, when the file loads) and :mod:`auditor.report` can use the same model, without either
importing the other.

* :class:`EmailSettings` validates ``[email]`` (recipients, routing, limits);
  :class:`EmailRoute` is one of its routes.
* :class:`SmtpSettings` reads the SMTP server and credentials from the environment.
"""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from auditor.findings import Severity
from auditor.logs import register_secret
from auditor.route_filters import RouteFilter
from auditor.safe_text import EmailAddress, OneLine

__all__ = [
    "DEFAULT_GZIP_ABOVE",
    "EmailRoute",
    "EmailSettings",
    "SmtpSettings",
    "is_loopback",
]

#: Attachments larger than this are gzipped (``findings.csv.gz``).
DEFAULT_GZIP_ABOVE: Final[int] = 5_000_000
_LOOPBACK_NAMES: Final[frozenset[str]] = frozenset({"localhost", "localhost.localdomain"})


class EmailRoute(RouteFilter):
    """Extra recipients for the findings matching every given filter (a missing filter matches
    everything; the filters are :class:`~auditor.routing.RouteFilter`'s: severities,
    platforms, rules, tags, min_nights)."""

    to: list[EmailAddress] = Field(min_length=1)


class EmailSettings(BaseModel):
    """The ``[email]`` table of the config.

    .. code-block:: toml

        [email]
        to = ["data-ops@example.com"]          # get the whole digest
        from = "freshness@example.com"         # SMTP_FROM wins when set
        attach_report = true

        [email.severity]                       # shorthand routes, one per severity ...
        error = ["on-call@example.com"]

        [email.platform]                       # ... or per platform
        Xero = ["xero-team@example.com"]

        [[email.routes]]                       # general routes: all filters must match
        to = ["payables@example.com"]
        rules = ["cross-type-skew"]
        platforms = ["Oracle NetSuite"]

        [[email.routes]]                       # by company tag, after 3 nights open
        to = ["team-a@example.com"]
        tags = {owner = "team-a"}
        min_nights = 3
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    enabled: bool = True
    to: list[EmailAddress] = Field(default_factory=list)
    sender: OneLine | None = Field(default=None, alias="from")
    subject_prefix: OneLine = "[freshness]"
    attach_report: bool = False
    max_items: int = Field(default=15, ge=0, le=500)
    #: Ranked actions (one per company × root cause) at the top of the digest ("Start here").
    start_here: int = Field(default=10, ge=0, le=100)
    gzip_above_bytes: int = Field(default=DEFAULT_GZIP_ABOVE, ge=0)
    severity: dict[Severity, list[EmailAddress]] = Field(default_factory=dict)
    platform: dict[OneLine, list[EmailAddress]] = Field(default_factory=dict)
    routes: list[EmailRoute] = Field(default_factory=list)

    def all_routes(self) -> list[EmailRoute]:
        """``to``, the shorthand routes and the general routes, as routes."""
        out: list[EmailRoute] = []
        if self.to:
            out.append(EmailRoute(to=self.to))
        out += [EmailRoute(to=to, severities=[sev]) for sev, to in self.severity.items() if to]
        out += [EmailRoute(to=to, platforms=[plat]) for plat, to in self.platform.items() if to]
        return out + list(self.routes)


class SmtpSettings(BaseSettings):
    """The SMTP server, from the environment: ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USER``,
    ``SMTP_PASSWORD``, ``SMTP_FROM``, ``SMTP_SECURITY`` (``starttls`` | ``ssl`` | ``none``),
    ``SMTP_ALLOW_PLAINTEXT``, ``SMTP_CA_FILE``, ``SMTP_TIMEOUT``.

    Without ``SMTP_HOST`` nothing is sent (the digest is written as a ``.eml`` file).
    ``security="none"`` is refused unless ``allow_plaintext`` is set *and* the host is loopback.
    """

    model_config = SettingsConfigDict(env_prefix="SMTP_", extra="ignore", populate_by_name=True)

    host: OneLine | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: OneLine | None = None
    password: SecretStr | None = None
    sender: OneLine | None = Field(
        default=None, validation_alias=AliasChoices("SMTP_FROM", "sender")
    )
    security: Literal["starttls", "ssl", "none"] = "starttls"
    allow_plaintext: bool = False
    ca_file: Path | None = None
    timeout: float = Field(default=30.0, gt=0)

    def model_post_init(self, context: Any, /) -> None:
        """The password (and its Basic-auth form) is a secret from the moment it is read: no
        log line, error or file may carry it, even one an SMTP server echoes it in."""
        if self.password is not None:
            password = self.password.get_secret_value()
            register_secret(password)  # and base64(password), as AUTH LOGIN sends it
            if self.user and password:  # AUTH PLAIN sends base64("\0user\0password")
                plain = base64.b64encode(f"\0{self.user}\0{password}".encode()).decode()
                register_secret(plain)

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"ssl": 465, "starttls": 587, "none": 25}[self.security]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) is this machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
