"""Sending the digest: SMTP (STARTTLS or SMTPS), ``.eml`` files, and the whole delivery.

:func:`send_digest` sends one message over SMTP (plaintext only when explicitly allowed and the
host is loopback); :func:`write_eml` writes a message to a ``.eml`` file;
:func:`deliver_digests` plans the routing, builds one digest per audience and sends or writes
each (the nightly job and the CLI call it).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.email_settings import EmailSettings, SmtpSettings, is_loopback
from auditor.logs import redact
from auditor.result import AuditResult

from ._email_digest import build_digest
from ._email_routing import Delivery, plan_deliveries
from ._rule_docs import RuleDoc
from ._view import FleetInfo
from ._write import ReportPaths

__all__ = ["DigestOutcome", "DigestSendError", "deliver_digests", "send_digest", "write_eml"]


class DigestSendError(RuntimeError):
    """The digest could not be sent (bad SMTP settings, refused connection, refused login...)."""


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
    if settings.security == "none" and not (settings.allow_plaintext and is_loopback(host)):
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
        # The server's reply is quoted, but an SMTP server may echo credentials in it (a 535
        # that repeats the AUTH line): redact before the text goes anywhere.
        raise DigestSendError(
            redact(f"could not send the digest via {host}:{port}: {type(exc).__name__}: {exc}")
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
    actions: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    connections: pd.DataFrame | None = None,
) -> list[DigestOutcome]:
    """Build the digests the routing asks for and send them, or (without ``SMTP_HOST``) write
    them next to the report: ``eml_name`` for the full digest, ``<stem>-<n>.eml`` for scoped
    ones. With no recipients configured, one full digest is written as ``eml_name``.

    ``email``: the config's validated ``[email]`` table (``AuditConfig.email``); a mapping is
    validated here. ``actions``, ``refreshes``, ``connections``: as for
    :func:`~._email_digest.build_digest` (each digest gets its scope's part)."""
    settings = (
        email if isinstance(email, EmailSettings) else EmailSettings.model_validate(email or {})
    )
    smtp = smtp if smtp is not None else SmtpSettings()
    out = Path(out_dir)
    deliveries = sorted(
        plan_deliveries(result, settings) or [Delivery(())],
        key=lambda d: not d.scope.everything,
    )
    # Every message is built before any is sent: a digest that cannot be built (a bad value,
    # a bug) fails the step before anyone got half of tonight's mail.
    messages = [
        build_digest(
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
            actions=actions,
            refreshes=refreshes,
            connections=connections,
        )
        for delivery in deliveries
    ]
    outcomes = []
    stem, suffix = Path(eml_name).stem, Path(eml_name).suffix or ".eml"
    for n, (delivery, msg) in enumerate(zip(deliveries, messages, strict=True)):
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
