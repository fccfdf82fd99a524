"""The email digest: what changed tonight, small enough for any mail client.

* :class:`EmailSettings` validates the config's ``[email]`` table (recipients and routing).
* :class:`SmtpSettings` reads the SMTP server and credentials from the environment (``SMTP_*``).
* :func:`build_digest` builds one :class:`~email.message.EmailMessage`: an HTML part (inline
  styles, no script, no remote images; under :data:`HTML_BODY_LIMIT` bytes whatever the fleet
  size), a plain-text part, and the CSVs attached (optionally ``report.html``).
* :func:`plan_deliveries` turns the routing into one message per distinct audience;
  :func:`send_digest` sends over SMTP (STARTTLS or SMTPS; plaintext only when explicitly allowed
  and the host is loopback); :func:`write_eml` writes a message to a ``.eml`` file;
  :func:`deliver_digests` does all of it for the CLI.

Snoozed findings are left out of every count and list of the digest.
"""

from __future__ import annotations

import gzip
import ipaddress
import smtplib
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from auditor.findings import FINDINGS_COLUMNS, Severity
from auditor.result import AuditResult

from ._csv import findings_frame, incidents_frame, summary_frame, to_csv_bytes
from ._env import format_count, format_local, get_environment, resolve_tz
from ._model import (
    Change,
    FindingRow,
    FleetInfo,
    RuleDoc,
    RuleTotal,
    build_change,
    build_rule_totals,
    finding_rows,
    load_rules,
    rank_findings,
)
from ._write import ReportPaths

__all__ = [
    "HTML_BODY_LIMIT",
    "Delivery",
    "DigestOutcome",
    "DigestSendError",
    "DigestView",
    "EmailRoute",
    "EmailSettings",
    "Scope",
    "SmtpSettings",
    "build_digest",
    "deliver_digests",
    "digest_subject",
    "plan_deliveries",
    "send_digest",
    "write_eml",
]

#: Bytes the HTML body may take (Gmail clips messages whose HTML passes ~102 KB).
HTML_BODY_LIMIT: Final[int] = 100_000
#: The message policy: SMTP line ends; long header lines allowed (up to 200 characters) so that
#: the subject is never folded (CPython's folder doubles a space before an encoded "—").
MESSAGE_POLICY: Final = SMTP_POLICY.clone(max_line_length=200)
#: Attachments larger than this are gzipped (``findings.csv.gz``).
DEFAULT_GZIP_ABOVE: Final[int] = 5_000_000
_LOOPBACK_NAMES: Final[frozenset[str]] = frozenset({"localhost", "localhost.localdomain"})


class DigestSendError(RuntimeError):
    """The digest could not be sent (bad SMTP settings, refused connection, refused login...)."""


# --------------------------------------------------------------------------------------------
# settings


class EmailRoute(BaseModel):
    """Extra recipients for the findings matching every given filter (a missing filter matches
    everything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: list[str] = Field(min_length=1)
    severities: list[Severity] | None = None
    platforms: list[str] | None = None
    rules: list[str] | None = None


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
        platforms = ["NetSuite"]
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    enabled: bool = True
    to: list[str] = Field(default_factory=list)
    sender: str | None = Field(default=None, alias="from")
    subject_prefix: str = "[freshness]"
    attach_report: bool = False
    max_items: int = Field(default=15, ge=0, le=500)
    gzip_above_bytes: int = Field(default=DEFAULT_GZIP_ABOVE, ge=0)
    severity: dict[Severity, list[str]] = Field(default_factory=dict)
    platform: dict[str, list[str]] = Field(default_factory=dict)
    routes: list[EmailRoute] = Field(default_factory=list)

    @field_validator("subject_prefix")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("subject_prefix must be one line")
        return value

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

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    sender: str | None = Field(default=None, validation_alias=AliasChoices("SMTP_FROM", "sender"))
    security: Literal["starttls", "ssl", "none"] = "starttls"
    allow_plaintext: bool = False
    ca_file: Path | None = None
    timeout: float = Field(default=30.0, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return {"ssl": 465, "starttls": 587, "none": 25}[self.security]


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# routing

#: One clause of a scope: (severities, platforms, rules), ``None`` = any.
Clause = tuple[frozenset[str] | None, frozenset[str] | None, frozenset[str] | None]


@dataclass(frozen=True)
class Scope:
    """Which findings an audience sees: the union of its routes' clauses; no clause = all."""

    clauses: tuple[Clause, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.clauses or any(c == (None, None, None) for c in self.clauses)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        if self.everything:
            return pd.Series(True, index=frame.index)
        out = pd.Series(False, index=frame.index)
        for clause in self.clauses:
            part = pd.Series(True, index=frame.index)
            for column, allowed in zip(("severity", "platform", "rule"), clause, strict=True):
                if allowed is not None:
                    col = frame[column].astype("string")
                    part &= col.isin(sorted(allowed)).fillna(False).astype(bool)
            out |= part
        return out

    def label(self) -> str | None:
        """People's words for the scope (``None`` for everything)."""
        if self.everything:
            return None
        parts = []
        for sev, plat, rules in self.clauses:
            bits = [
                f"{name} {', '.join(sorted(vals))}"
                for name, vals in (("severity", sev), ("platform", plat), ("rule", rules))
                if vals is not None
            ]
            parts.append(" & ".join(bits))
        return " or ".join(parts)

    def apply(self, result: AuditResult) -> AuditResult:
        """``result`` cut down to this scope."""
        if self.everything:
            return result
        return replace(
            result,
            findings=result.findings.loc[self.mask(result.findings)].reset_index(drop=True),
            resolved=result.resolved.loc[self.mask(result.resolved)].reset_index(drop=True),
        )


@dataclass(frozen=True)
class Delivery:
    """One message to send: who receives it and what part of the audit it covers."""

    recipients: tuple[str, ...]
    scope: Scope = field(default_factory=Scope)


def _clause(route: EmailRoute) -> Clause:
    def fs(values: list[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    return (
        fs(list(route.severities) if route.severities is not None else None),
        fs(route.platforms),
        fs(route.rules),
    )


def plan_deliveries(result: AuditResult, settings: EmailSettings) -> list[Delivery]:
    """One :class:`Delivery` per distinct audience. Each address gets one message covering the
    union of its routes; a scoped audience with nothing new, regressed, resolved or open in its
    scope gets nothing. Snoozed findings never count."""
    if not settings.enabled:
        return []
    by_address: dict[str, set[Clause]] = {}
    for route in settings.all_routes():
        for address in route.to:
            by_address.setdefault(address.strip(), set()).add(_clause(route))
    by_scope: dict[Scope, list[str]] = {}
    for address, clauses in by_address.items():
        if not address:
            continue
        scope = Scope(tuple(sorted(clauses, key=repr)))
        if scope.everything:
            scope = Scope()
        by_scope.setdefault(scope, []).append(address)
    out = []
    for scope, addresses in by_scope.items():
        if not scope.everything:
            scoped = scope.apply(result)
            if scoped.active.empty and _unsnoozed(scoped.resolved).empty:
                continue
        out.append(Delivery(tuple(addresses), scope))
    return out


def _unsnoozed(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.loc[~frame["snoozed"].fillna(False).astype(bool)]


# --------------------------------------------------------------------------------------------
# view model


@dataclass(frozen=True)
class DigestSection:
    key: str  # new | regressed | resolved | oldest
    title: str
    rows: tuple[FindingRow, ...]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class DigestView:
    """Everything the digest shows."""

    title: str
    subject: str
    day: str
    tz: str
    as_of: datetime
    snapshot_id: str
    scope: str | None
    change: Change
    open_errors: int
    open_warnings: int
    companies_affected: int
    companies_audited: int | None
    sections: tuple[DigestSection, ...]
    rule_totals: tuple[RuleTotal, ...]
    attachments: tuple[str, ...]
    max_items: int

    @property
    def open_total(self) -> int:
        return self.open_errors + self.open_warnings


def _plural(n: int, word: str) -> str:
    return f"{format_count(n)} {word}{'' if n == 1 else 's'}"


def digest_subject(change: Change, open_total: int, day: str, prefix: str = "[freshness]") -> str:
    """E.g. ``[freshness] 12 new errors, 3 resolved — 2026-11-23``."""
    parts = []
    if change.new_errors:
        parts.append(f"{_plural(change.new_errors, 'new error')}")
    if change.new_warnings:
        parts.append(f"{_plural(change.new_warnings, 'new warning')}")
    if change.regressed:
        parts.append(f"{format_count(change.regressed)} regressed")
    if change.resolved:
        parts.append(f"{format_count(change.resolved)} resolved")
    if not parts:
        parts.append(f"no change, {format_count(open_total)} open" if open_total else "all clear")
    return f"{prefix} {', '.join(parts)} — {day}".strip()


def _section_frames(
    active: pd.DataFrame, resolved: pd.DataFrame
) -> list[tuple[str, str, pd.DataFrame]]:
    state = active["state"].astype("string")
    sev = active["severity"].astype("string")
    oldest = active.loc[(state == "ongoing").fillna(False) & (sev == "error").fillna(False)]
    return [
        ("new", "New tonight", active.loc[(state == "new").fillna(False)]),
        (
            "regressed",
            "Regressed (were resolved, are back)",
            active.loc[(state == "regressed").fillna(False)],
        ),
        ("resolved", "Resolved since last night", resolved),
        ("oldest", "Still open: the oldest errors", oldest),
    ]


def build_digest_view(
    result: AuditResult,
    *,
    settings: EmailSettings,
    rules: Sequence[RuleDoc],
    display_tz: str,
    fleet: FleetInfo,
    scope: Scope,
    attachments: Sequence[str],
    max_items: int,
) -> DigestView:
    scoped = scope.apply(result)
    active = scoped.active.reindex(columns=list(FINDINGS_COLUMNS))
    resolved = _unsnoozed(scoped.resolved).reindex(columns=list(FINDINGS_COLUMNS))
    change = build_change(active, resolved)
    sev = active["severity"].astype("string")
    open_errors = int((sev == "error").fillna(False).sum())
    open_warnings = int((sev == "warning").fillna(False).sum())
    as_of = fleet.as_of or result.as_of
    day = format_local(as_of, display_tz, "%Y-%m-%d", zone_name=False)
    sections = tuple(
        DigestSection(
            key,
            title,
            finding_rows(rank_findings(frame).head(max_items), text_limit=240),
            len(frame),
        )
        for key, title, frame in _section_frames(active, resolved)
    )
    totals = tuple(t for t in build_rule_totals(active, rules) if t.total)
    return DigestView(
        title=fleet.title,
        subject=digest_subject(change, open_errors + open_warnings, day, settings.subject_prefix),
        day=day,
        tz=display_tz,
        as_of=as_of,
        snapshot_id=fleet.snapshot_id or result.snapshot_id,
        scope=scope.label(),
        change=change,
        open_errors=open_errors,
        open_warnings=open_warnings,
        companies_affected=int(active["company_id"].nunique()),
        companies_audited=fleet.companies_audited,
        sections=sections,
        rule_totals=totals,
        attachments=tuple(attachments),
        max_items=max_items,
    )


# --------------------------------------------------------------------------------------------
# the message


@dataclass(frozen=True)
class _Attachment:
    filename: str
    data: bytes
    maintype: str
    subtype: str


def _csv_attachments(result: AuditResult, gzip_above: int) -> list[_Attachment]:
    out = []
    for name, frame in (
        ("findings.csv", findings_frame(result)),
        ("summary.csv", summary_frame(result)),
        ("incidents.csv", incidents_frame(result)),
    ):
        data = to_csv_bytes(frame)
        if len(data) > gzip_above:
            out.append(
                _Attachment(name + ".gz", gzip.compress(data, mtime=0), "application", "gzip")
            )
        else:
            out.append(_Attachment(name, data, "text", "csv"))
    return out


def _render_bodies(view: DigestView) -> tuple[str, str]:
    env = get_environment()
    html = env.get_template("digest.html").render(view=view)
    text = env.get_template("digest.txt").render(view=view)
    return html, text


def build_digest(
    result: AuditResult,
    *,
    settings: EmailSettings | None = None,
    recipients: Iterable[str] = (),
    scope: Scope | None = None,
    rules: Sequence[RuleDoc] | None = None,
    display_tz: str = "UTC",
    fleet: FleetInfo | None = None,
    report_paths: ReportPaths | None = None,
    attach_report: bool | None = None,
    sender: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The digest of ``result`` as one message (HTML + text + attachments).

    ``scope`` limits it to part of the fleet (routing, see :func:`plan_deliveries`); the CSVs
    attached then hold that part only. ``report_paths``' ``report.html`` is attached when
    ``attach_report`` (default: ``settings.attach_report``). The HTML body is cut (fewer items
    per section) until it fits :data:`HTML_BODY_LIMIT`.
    """
    settings = settings or EmailSettings()
    scope = scope or Scope()
    resolve_tz(display_tz)
    fleet = fleet or FleetInfo()
    rules = tuple(load_rules() if rules is None else rules)
    scoped = scope.apply(result)
    files = _csv_attachments(scoped, settings.gzip_above_bytes)
    want_report = settings.attach_report if attach_report is None else attach_report
    if want_report and report_paths is not None and report_paths.report_html.is_file():
        files.append(
            _Attachment("report.html", report_paths.report_html.read_bytes(), "text", "html")
        )

    max_items = settings.max_items
    while True:
        view = build_digest_view(
            result,
            settings=settings,
            rules=rules,
            display_tz=display_tz,
            fleet=fleet,
            scope=scope,
            attachments=[f.filename for f in files],
            max_items=max_items,
        )
        html, text = _render_bodies(view)
        if len(html.encode("utf-8")) <= HTML_BODY_LIMIT or max_items == 0:
            break
        max_items //= 2

    msg = EmailMessage(policy=MESSAGE_POLICY)
    msg["Subject"] = view.subject
    from_ = sender or settings.sender or "freshness-auditor@localhost"
    msg["From"] = from_
    to = [r for r in recipients if r]
    if to:
        msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=from_.rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auditor-Snapshot"] = view.snapshot_id
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    for f in files:
        msg.add_attachment(f.data, maintype=f.maintype, subtype=f.subtype, filename=f.filename)
    return msg


def write_eml(msg: EmailMessage, path: Path | str) -> Path:
    """Write ``msg`` as an RFC 5322 ``.eml`` file (CRLF line ends) that mail clients open."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    tmp.replace(out)
    return out


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(
        cafile=str(settings.ca_file) if settings.ca_file is not None else None
    )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def send_digest(
    msg: EmailMessage, settings: SmtpSettings, *, recipients: Sequence[str] | None = None
) -> dict[str, tuple[int, bytes]]:
    """Send ``msg`` through the SMTP server of ``settings``; returns the refused recipients.

    TLS is required (STARTTLS, or SMTPS with ``security="ssl"``); there is no silent fallback to
    plaintext. ``security="none"`` works only with ``allow_plaintext`` and a loopback host.
    Errors are raised as :class:`DigestSendError` (without the password).
    """
    if not settings.host:
        raise DigestSendError("SMTP is not configured (set SMTP_HOST)")
    host, port = settings.host, settings.effective_port
    if settings.security == "none" and not (settings.allow_plaintext and _is_loopback(host)):
        raise DigestSendError(
            f"refusing to send without TLS to {host}: plaintext SMTP is only allowed to a "
            "loopback host with SMTP_ALLOW_PLAINTEXT=1"
        )
    to = list(recipients) if recipients is not None else None
    if not to and not msg.get_all("To") and not msg.get_all("Cc"):
        raise DigestSendError("the digest has no recipients (set [email] to = [...])")
    try:
        client: smtplib.SMTP
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(
                host, port, timeout=settings.timeout, context=_tls_context(settings)
            )
        else:
            client = smtplib.SMTP(host, port, timeout=settings.timeout)
        with client:
            client.ehlo()
            if settings.security == "starttls":
                if not client.has_extn("starttls"):
                    raise DigestSendError(f"{host}:{port} does not offer STARTTLS")
                client.starttls(context=_tls_context(settings))
                client.ehlo()
            if settings.user:
                password = settings.password.get_secret_value() if settings.password else ""
                client.login(settings.user, password)
            return client.send_message(msg, to_addrs=to)
    except DigestSendError:
        raise
    except (smtplib.SMTPException, OSError) as exc:
        raise DigestSendError(
            f"could not send the digest via {host}:{port}: {type(exc).__name__}: {exc}"
        ) from None


@dataclass(frozen=True)
class DigestOutcome:
    """What happened to one digest: sent (to whom) or written (where)."""

    recipients: tuple[str, ...]
    scope: str | None
    subject: str
    sent: bool
    eml_path: Path | None = None
    refused: Mapping[str, tuple[int, bytes]] = field(default_factory=dict)


def deliver_digests(
    result: AuditResult,
    out_dir: Path | str,
    *,
    email: EmailSettings | Mapping[str, Any] | None = None,
    smtp: SmtpSettings | None = None,
    report_paths: ReportPaths | None = None,
    rules: Sequence[RuleDoc] | None = None,
    display_tz: str = "UTC",
    fleet: FleetInfo | None = None,
    eml_name: str = "digest.eml",
    now: datetime | None = None,
) -> list[DigestOutcome]:
    """Build the digests the routing asks for and send them, or (without ``SMTP_HOST``) write
    them next to the report: ``eml_name`` for the full digest, ``<stem>-<n>.eml`` for scoped
    ones. With no recipients configured, one full digest is written as ``eml_name``."""
    settings = (
        email if isinstance(email, EmailSettings) else EmailSettings.model_validate(email or {})
    )
    smtp = smtp if smtp is not None else SmtpSettings()
    out = Path(out_dir)
    deliveries = sorted(
        plan_deliveries(result, settings) or [Delivery(())],
        key=lambda d: not d.scope.everything,
    )
    outcomes = []
    stem, suffix = Path(eml_name).stem, Path(eml_name).suffix or ".eml"
    for n, delivery in enumerate(deliveries):
        msg = build_digest(
            result,
            settings=settings,
            recipients=delivery.recipients,
            scope=delivery.scope,
            rules=rules,
            display_tz=display_tz,
            fleet=fleet,
            report_paths=report_paths,
            sender=smtp.sender,
            now=now,
        )
        subject = str(msg["Subject"])
        if smtp.configured and delivery.recipients:
            refused = send_digest(msg, smtp)
            outcomes.append(
                DigestOutcome(
                    delivery.recipients, delivery.scope.label(), subject, True, None, refused
                )
            )
        else:
            name = eml_name if delivery.scope.everything and n == 0 else f"{stem}-{n}{suffix}"
            path = write_eml(msg, out / name)
            outcomes.append(
                DigestOutcome(delivery.recipients, delivery.scope.label(), subject, False, path)
            )
    return outcomes
