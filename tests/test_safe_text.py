"""Config text that stays on one line, display bounds, terminal-safe printing."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from auditor.safe_text import (
    ELLIPSIS,
    EmailAddress,
    OneLine,
    clip,
    clip_series,
    terminal_safe,
)


class _M(BaseModel):
    prefix: OneLine = ""
    to: list[EmailAddress] = []


@pytest.mark.parametrize(
    "bad", ["a\nb", "a\rb", "a\u2028b", "a\u2029b", "a\x0bb", "a\x0cb", "a\x85b", "a\x00b",
            "a\u202eb"]
)
def test_line_breaking_characters_are_refused_at_load(bad: str) -> None:
    with pytest.raises(ValidationError, match="one line"):
        _M(prefix=bad)
    with pytest.raises(ValidationError):
        _M(to=[f"ops{bad}@example.com"])


@pytest.mark.parametrize(
    "bad", ["ops@example.com\r\nBcc: x@evil.example", "a@b", "Ops <ops@example.com>",
            "a@example.com, b@example.com", "", "no-at.example.com"]
)
def test_an_address_is_one_plain_address(bad: str) -> None:
    with pytest.raises(ValidationError):
        _M(to=[bad])


def test_good_values_pass() -> None:
    m = _M(prefix="[freshness]\t(prod)", to=["data-ops@example.com", "a.b+c@sub.example.co.uk"])
    assert m.to[1] == "a.b+c@sub.example.co.uk"


@settings(deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=200))
def test_clip_and_clip_series_agree_and_bound(value: str, limit: int) -> None:
    one = clip(value, limit)
    assert one is not None
    assert len(one) <= limit
    assert one == value or one.endswith(ELLIPSIS)
    series = clip_series(pd.Series([value, None], dtype="string"), limit)
    assert series.iloc[0] == one
    assert pd.isna(series.iloc[1])


def test_a_huge_name_is_clipped_whole_series() -> None:
    s = clip_series(pd.Series(["x" * 200_000, "short"]), 120)
    assert len(s.iloc[0]) == 120
    assert s.iloc[0].endswith(ELLIPSIS)
    assert s.iloc[1] == "short"


@settings(deadline=None)
@given(st.text())
def test_terminal_safe_leaves_no_control_character(value: str) -> None:
    out = terminal_safe(value)
    assert not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029\u202e\u2066"
        for c in out if c != "\t"
    )


def test_terminal_escapes_are_visible() -> None:
    assert terminal_safe("\x1b]0;pwned\x07co\nforged") == "\\x1b]0;pwned\\x07co\\nforged"


def test_the_cli_prints_no_control_character_and_no_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from auditor.cli._echo import echo, field
    from auditor.logs import register_secret

    register_secret("k3y-for-echo")
    company = "\x1b]0;owned\x07acme\r\nPOST /companies/forged/data/all"
    echo(f"  POST /companies/{field(company)}/data/all  [stale]\nsecond line k3y-for-echo")
    out = capsys.readouterr().out
    assert out.count("\n") == 2  # the message's own two lines, no forged one
    assert "\x1b" not in out
    assert "\r" not in out
    assert "\\x1b]0;owned\\x07acme\\x0d\\nPOST" in out
    assert "k3y-for-echo" not in out
