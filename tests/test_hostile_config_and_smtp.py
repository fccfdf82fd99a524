"""Config values that would crash the email step are refused at load; an SMTP server that
echoes credentials in its 535 reply leaks nothing."""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.config import ConfigError, load_config
from auditor.email_settings import SmtpSettings
from auditor.logs import redact
from auditor.report import DigestSendError
from auditor.report._email_send import send_digest

PASSWORD = "s3cret-Pa55w0rd!"


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        ('[email]\nto = ["ops@example.com\\r\\nBcc: all@evil.example"]\n', "email.to"),
        ('[email]\nto = ["ops@example.com\\nX: y"]\n', "email.to"),
        ('[[email.routes]]\nto = ["a@example.com\\r\\n"]\n', "email.routes"),
        ('[email]\nsubject_prefix = "[fresh]\\u2028Bcc: x@evil.example"\n', "subject_prefix"),
        ('[email]\nsubject_prefix = "a\\u000bb"\n', "subject_prefix"),
        ('[email]\nfrom = "a@example.com\\r\\nBcc: x@evil.example"\n', "email.from"),
        ('[email.platform]\n"Xero\\n" = ["a@example.com"]\n', "email.platform"),
        ("[run]\nrate_limit = inf\n", "run.rate_limit"),
        ("[run]\nrate_limit = nan\n", "run.rate_limit"),
        ("[run]\ntimeout = inf\n", "run.timeout"),
        ('[run]\nbase_url = "ftp://api.codat.io"\n', "run.base_url"),
        ('[run]\nbase_url = "https://"\n', "run.base_url"),
    ],
)
def test_values_that_validate_but_cannot_work_are_refused_at_load(
    tmp_path: Path, toml: str, where: str
) -> None:
    path = tmp_path / "auditor.toml"
    path.write_text("# comment\n" + toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert where.split(".")[-1] in str(info.value)
    assert "auditor.toml:" in str(info.value)


class _EchoingSmtp(socketserver.StreamRequestHandler):
    """Speaks just enough SMTP to reach AUTH, then fails it quoting what it was sent."""

    def handle(self) -> None:
        self.wfile.write(b"220 echo ESMTP\r\n")
        while line := self.rfile.readline():
            text = line.decode(errors="replace").strip()
            verb = text.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250-echo\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == "AUTH":
                self.wfile.write(f"535 5.7.8 bad credentials: {text}\r\n".encode())
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(f"535 5.7.8 rejected: {text}\r\n".encode())


@pytest.fixture
def echoing_smtp() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoingSmtp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_535_that_echoes_the_credentials_leaks_no_password(echoing_smtp: int) -> None:
    from email.message import EmailMessage

    smtp = SmtpSettings(
        host="127.0.0.1", port=echoing_smtp, user="auditor", password=PASSWORD,
        security="none", allow_plaintext=True, timeout=5,
    )
    msg = EmailMessage()
    msg["To"] = "ops@example.com"
    msg["From"] = "auditor@example.com"
    msg["Subject"] = "x"
    msg.set_content("x")
    with pytest.raises(DigestSendError) as info:
        send_digest(msg, smtp)
    text = str(info.value)
    assert "535" in text  # the reply is quoted ...
    plain = base64.b64encode(f"\0auditor\0{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), plain):
        assert secret not in text  # ... without what the server echoed of the credentials
        assert redact(f"x {secret} y") == "x *** y"  # registered the moment it was read
