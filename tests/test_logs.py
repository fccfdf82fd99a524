"""Secrets never reach a log line, whatever path the text takes through the formatter."""

from __future__ import annotations

import base64
import io
import logging
import sys

import pytest

from auditor.logs import configure_logging, redact, register_secret

SECRET = 'pa"ss\\word-535-echo'


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_secrets_are_redacted_in_messages_args_extras_and_tracebacks(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_secret(SECRET)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(run_id="r1", fmt=fmt)  # type: ignore[arg-type]
    log = logging.getLogger("auditor.test")
    log.info("plain %s", SECRET)
    log.info("non-string argument %s", RuntimeError(f"535 auth failed for {SECRET}"))
    log.info("extra field", extra={"detail": {"reply": SECRET}, "items": [SECRET]})
    try:
        raise ValueError(f"server said: {SECRET}")
    except ValueError:
        log.exception("with a traceback")
    encoded = base64.b64encode(SECRET.encode()).decode()
    log.info("basic auth %s", encoded)
    out = stream.getvalue()
    assert out.count("***") >= (6 if fmt == "json" else 4), out
    for needle in (SECRET, encoded, "pa\\\"ss", "word-535-echo"):
        assert needle not in out, (needle, out)


def test_a_secret_containing_another_is_removed_whole() -> None:
    register_secret("abc")
    register_secret("xxabcxx")
    assert redact("key xxabcxx") == "key ***"


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_a_huge_message_from_codat_is_cut(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(run_id="r2", fmt=fmt)  # type: ignore[arg-type]
    logging.getLogger("auditor.test").warning("giving up: HTTP 500: %s", "x" * 200_000)
    out = stream.getvalue()
    assert len(out) < 3_000
    assert "more characters]" in out
