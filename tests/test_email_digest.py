"""The email digest, received by a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from smtp_inbox import Inbox, free_port, plain_smtp_server

from auditor.report import (
    HTML_BODY_LIMIT,
    DigestSendError,
    EmailSettings,
    FleetInfo,
    Scope,
    SmtpSettings,
    build_digest,
    deliver_digests,
    plan_deliveries,
    send_digest,
    write_eml,
    write_reports,
)
from auditor.testing.synthetic import synthetic_result, tiny_result

AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
PASSWORD = "s3cret-pa55word-xyz"


@pytest.fixture
def plain_server() -> Iterator[tuple[Inbox, int]]:
    with plain_smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, crt


def _server_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[1]), str(cert[0]))
    return ctx


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and data.login == b"auditor"
    ok = ok and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def _smtp(port: int, **kw: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, timeout=10, **kw)


def _digest(**kw: Any) -> EmailMessage:
    return build_digest(
        tiny_result(as_of=AS_OF),
        recipients=["ops@example.com"],
        sender="freshness@example.com",
        fleet=FleetInfo(companies_audited=40),
        now=AS_OF,
        **kw,
    )


def _html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_plaintext_on_loopback_when_allowed_arrives_whole(plain_server: tuple[Inbox, int]) -> None:
    inbox, port = plain_server
    refused = send_digest(_digest(), _smtp(port, security="none", allow_plaintext=True))
    assert refused == {}
    [(rcpts, msg)] = inbox.messages
    assert rcpts == ["ops@example.com"]
    assert (
        msg["Subject"]
        == "[freshness] 2 new errors, 2 new warnings, 3 regressed, 1 resolved — 2026-11-23"
    )
    assert msg["From"] == "freshness@example.com"
    assert msg.get_body(("plain",)) is not None
    html = _html_part(msg)
    assert len(html.encode()) < HTML_BODY_LIMIT
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<style" not in html.lower()  # inline styles only
    assert "<img" not in html.lower()  # no images at all
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names == [
        "findings.csv", "summary.csv", "incidents.csv", "actions.csv", "relinks.csv"
    ]
    findings = next(p for p in msg.iter_attachments() if p.get_filename() == "findings.csv")
    assert "'=HYPERLINK" in findings.get_content()


def test_plaintext_refused_unless_allowed_and_loopback() -> None:
    msg = _digest()
    with pytest.raises(DigestSendError, match="refusing to send without TLS"):
        send_digest(msg, _smtp(2525, security="none"))
    with pytest.raises(DigestSendError, match="refusing to send without TLS"):
        send_digest(
            msg,
            SmtpSettings(host="mail.example.com", port=25, security="none", allow_plaintext=True),
        )


def test_starttls_required_no_silent_downgrade(plain_server: tuple[Inbox, int]) -> None:
    inbox, port = plain_server
    with pytest.raises(DigestSendError, match="does not offer STARTTLS"):
        send_digest(_digest(), _smtp(port))
    assert inbox.messages == []


def test_starttls_with_login(cert: tuple[Path, Path]) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_ctx(cert),
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    )
    controller.start()
    try:
        settings = _smtp(port, user="auditor", password=PASSWORD, ca_file=cert[1])
        send_digest(_digest(attach_report=False), settings)
        assert len(inbox.messages) == 1
        bad = _smtp(port, user="auditor", password="wrong-" + PASSWORD, ca_file=cert[1])
        with pytest.raises(DigestSendError) as err:
            send_digest(_digest(), bad)
        assert PASSWORD not in str(err.value)
        assert PASSWORD not in repr(bad)
    finally:
        controller.stop()


def test_smtps(cert: tuple[Path, Path]) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=_server_ctx(cert))
    controller.start()
    try:
        send_digest(_digest(), _smtp(port, security="ssl", ca_file=cert[1]))
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_untrusted_certificate_is_refused(cert: tuple[Path, Path]) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=_server_ctx(cert))
    controller.start()
    try:
        with pytest.raises(DigestSendError, match="SSL"):
            send_digest(_digest(), _smtp(port))  # system CAs do not trust our self-signed cert
        assert inbox.messages == []
    finally:
        controller.stop()


def test_body_stays_under_limit_for_a_huge_fleet(plain_server: tuple[Inbox, int]) -> None:
    inbox, port = plain_server
    result = synthetic_result(8_000, as_of=AS_OF, seed=7)
    settings = EmailSettings(max_items=500, gzip_above_bytes=500_000)
    msg = build_digest(result, settings=settings, recipients=["ops@example.com"], now=AS_OF)
    send_digest(msg, _smtp(port, security="none", allow_plaintext=True))
    [(_, got)] = inbox.messages
    html = _html_part(got)
    assert len(html.encode()) <= HTML_BODY_LIMIT
    assert "more in the attachment" in html
    names = [p.get_filename() for p in got.iter_attachments()]
    assert "findings.csv.gz" in names


def test_snoozed_findings_are_left_out() -> None:
    msg = _digest()
    assert "Snoozed Co" not in _html_part(msg)
    plain = msg.get_body(("plain",))
    assert plain is not None
    assert "Snoozed Co" not in plain.get_content()


def test_report_attached_on_request(tmp_path: Path) -> None:
    result = tiny_result(as_of=AS_OF)
    paths = write_reports(result, tmp_path)
    msg = build_digest(result, report_paths=paths, attach_report=True, now=AS_OF)
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names[-1] == "report.html"


def test_routing_per_severity_and_platform() -> None:
    result = tiny_result(as_of=AS_OF)
    settings = EmailSettings.model_validate(
        {
            "to": ["all@example.com"],
            "severity": {"error": ["oncall@example.com"]},
            "platform": {"Xero": ["xero@example.com", "oncall@example.com"], "Sage": ["s@x.io"]},
            "routes": [{"to": ["skew@example.com"], "rules": ["cross-type-skew"]}],
        }
    )
    plans = {d.recipients: d.scope for d in plan_deliveries(result, settings)}
    assert plans[("all@example.com",)].everything
    assert ("s@x.io",) not in plans  # nothing on that platform: no mail
    oncall = plans[("oncall@example.com",)]
    scoped = oncall.apply(result).active
    assert set(scoped["severity"].astype(str)) | {"warning"} >= {"error"}
    assert all((r.severity == "error") or (r.platform == "Xero") for r in scoped.itertuples())
    msg = build_digest(result, settings=settings, scope=oncall, now=AS_OF)
    assert "covers your routing only" in _html_part(msg)
    assert "severity error" in _html_part(msg)


def test_email_settings_validate_the_config_table() -> None:
    with pytest.raises(ValueError, match="severity"):
        EmailSettings.model_validate({"severity": {"critical": ["x@example.com"]}})
    with pytest.raises(ValueError, match="Extra inputs"):
        EmailSettings.model_validate({"too": ["typo@example.com"]})
    ok = EmailSettings.model_validate({"from": "a@b.c", "to": ["x@y.z"]})
    assert ok.sender == "a@b.c"


def test_smtp_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", "2526")
    monkeypatch.setenv("SMTP_USER", "u")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SMTP_FROM", "from@example.com")
    s = SmtpSettings()
    assert (s.host, s.port, s.user, s.sender, s.security) == (
        "127.0.0.1", 2526, "u", "from@example.com", "starttls",
    )  # fmt: skip
    assert PASSWORD not in repr(s)
    assert PASSWORD not in str(s.model_dump())


def test_without_smtp_the_digest_is_written_as_eml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMTP_HOST", raising=False)
    result = tiny_result(as_of=AS_OF)
    outcomes = deliver_digests(
        result, tmp_path, email={"to": ["ops@example.com"]}, eml_name="demo.eml", now=AS_OF
    )
    assert [o.sent for o in outcomes] == [False]
    path = tmp_path / "demo.eml"
    assert outcomes[0].eml_path == path
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert parsed["To"] == "ops@example.com"
    assert parsed["Subject"].startswith("[freshness] ")
    assert {p.get_filename() for p in parsed.iter_attachments()} == {
        "findings.csv", "summary.csv", "incidents.csv", "actions.csv", "relinks.csv",
    }  # fmt: skip


def test_deliver_sends_when_smtp_configured(
    plain_server: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = plain_server
    outcomes = deliver_digests(
        tiny_result(as_of=AS_OF),
        tmp_path,
        email={"to": ["ops@example.com"], "severity": {"error": ["oncall@example.com"]}},
        smtp=_smtp(port, security="none", allow_plaintext=True, sender="f@example.com"),
        now=AS_OF,
    )
    assert [o.sent for o in outcomes] == [True, True]
    assert sorted(r for rcpts, _ in inbox.messages for r in rcpts) == [
        "oncall@example.com", "ops@example.com",
    ]  # fmt: skip
    assert not list(tmp_path.glob("*.eml"))


def test_write_eml_roundtrip(tmp_path: Path) -> None:
    msg = _digest()
    path = write_eml(msg, tmp_path / "x.eml")
    raw = path.read_bytes()
    assert b"\r\n" in raw
    back = email.message_from_bytes(raw, policy=default_policy)
    assert back["Subject"] == msg["Subject"]


def test_scope_everything_by_default() -> None:
    assert Scope().everything


def test_a_digest_that_cannot_be_built_sends_none_of_the_night(
    plain_server: tuple[Inbox, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three routes; building the second digest fails: nobody gets half of tonight's mail."""
    import auditor.report._email_send as email_send

    inbox, port = plain_server
    settings = EmailSettings.model_validate(
        {"to": ["ops@example.com"], "severity": {"error": ["oncall@example.com"]},
         "platform": {"Xero": ["xero@example.com"]}}
    )
    built = 0
    real_build = email_send.build_digest

    def flaky_build(*args: Any, **kwargs: Any) -> EmailMessage:
        nonlocal built
        built += 1
        if built == 2:
            raise ValueError("a bug in the second digest")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(email_send, "build_digest", flaky_build)
    with pytest.raises(ValueError, match="second digest"):
        deliver_digests(
            tiny_result(as_of=AS_OF), tmp_path, email=settings,
            smtp=_smtp(port, security="none", allow_plaintext=True),
        )
    assert inbox.messages == []
