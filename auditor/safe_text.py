"""Text that crosses a boundary: config values, what we display, what we print to a terminal.

Three jobs, one module:

* **Config values that end up in a header or a line** (email addresses, subject prefixes):
  :data:`OneLine` and :data:`EmailAddress` refuse, at load time, every character that would
  break a line (CR, LF, VT, FF, NEL, U+2028/U+2029 and other control characters), so a value
  that validates can never crash the digest half-way or forge a header.
* **Display bounds**: a company name, platform, id or message from Codat can be any size; the
  report, the digest and the CSVs show at most :data:`DISPLAY_LIMITS` characters of each
  (with ``…``), while the store keeps the full value. :func:`clip` for one value,
  :func:`clip_series` for a column (vectorised).
* **Terminals**: :func:`terminal_safe` escapes control and bidirectional-override characters
  in text printed by the CLI, so a company id cannot set the terminal title, move the cursor,
  or forge lines.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Final

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from pydantic import AfterValidator

__all__ = [
    "DISPLAY_LIMITS",
    "ELLIPSIS",
    "EmailAddress",
    "OneLine",
    "clip",
    "clip_middle",
    "clip_middle_series",
    "clip_series",
    "email_address",
    "one_line",
    "terminal_safe",
]

ELLIPSIS: Final = "…"

#: Characters shown of each kind of text from Codat (the store keeps the whole value).
DISPLAY_LIMITS: Final[dict[str, int]] = {
    "company_name": 120,
    "platform": 60,
    "data_type": 60,
    "id": 80,
    "status": 40,
    "message": 1000,
    "remedy": 1000,
    "error": 300,
    "url": 500,
}

#: Bidirectional overrides and isolates: they reorder what a reader sees (Trojan Source).
_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _breaks_a_line(ch: str) -> bool:
    return unicodedata.category(ch) in {"Cc", "Zl", "Zp"} or ch in _BIDI


def one_line(value: str) -> str:
    """``value`` if it holds no line break or control character (else ``ValueError``)."""
    for ch in value:
        if _breaks_a_line(ch) and ch != "\t":
            raise ValueError(
                f"must be one line of text: it contains {unicodedata.name(ch, repr(ch))} "
                f"(U+{ord(ch):04X})"
            )
    return value


_PART: Final = r"[^@\s,;<>()\[\]\\\"]+"
_ADDRESS: Final = re.compile(rf"^{_PART}@{_PART}\.{_PART}$")


def email_address(value: str) -> str:
    """``value`` if it is one plain address ``local@domain.tld`` (no name, no list)."""
    one_line(value)
    if len(value) > 254 or not _ADDRESS.match(value):
        raise ValueError(f"not one email address: {terminal_safe(value)[:80]!r}")
    return value


#: A config string that must stay on one line (a subject prefix, a header value).
OneLine = Annotated[str, AfterValidator(one_line)]
#: One plain email address.
EmailAddress = Annotated[str, AfterValidator(email_address)]


def clip(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters (the last one ``…``) when longer."""
    if value is None or len(value) <= limit:
        return value
    return value[: max(limit - 1, 0)] + ELLIPSIS


def clip_series(series: pd.Series, limit: int) -> pd.Series:
    """Each value cut to ``limit`` characters (``…`` last) when longer; nulls stay null."""
    values = series.astype("string")
    array = pa.array(values.array, type=pa.large_string(), from_pandas=True)
    long = pc.greater(pc.utf8_length(array), limit)
    if not pc.any(long).as_py():
        return values
    cut = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(array, 0, max(limit - 1, 0)),  # code points, for UTF-8
        pa.scalar(ELLIPSIS, pa.large_string()),
        pa.scalar("", pa.large_string()),
    )
    out = pc.if_else(long, cut, array)
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(out, pa.large_string())),
                     index=series.index, dtype="string")


def _halves(limit: int) -> tuple[int, int]:
    """(characters kept from the start, from the end) of a middle cut to ``limit``."""
    kept = max(limit - 1, 0)
    return kept // 2, kept - kept // 2


def clip_middle(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters in the middle (``start…end``) when longer.

    For sentences built around quoted text (a message naming a platform, quoting an error):
    the oversized part is in the middle, and what the sentence says (its opening and its
    closing clause: ``... is Deauthorized; 3 data types in AuthError``, ``This also explains
    ...``) survives the cut, which :func:`clip` would drop."""
    if value is None or len(value) <= limit:
        return value
    head, tail = _halves(limit)
    return value[:head] + ELLIPSIS + (value[-tail:] if tail else "")


def clip_middle_series(series: pd.Series, limit: int) -> pd.Series:
    """:func:`clip_middle` of each value (vectorised); nulls stay null."""
    values = series.astype("string")
    array = pa.array(values.array, type=pa.large_string(), from_pandas=True)
    length = pc.utf8_length(array)
    long = pc.greater(length, limit)
    if not pc.any(long).as_py():
        return values
    head, tail = _halves(limit)
    start = pc.utf8_slice_codeunits(array, 0, head)
    empty = pa.array([""] * len(array), pa.large_string())
    end = pc.utf8_slice_codeunits(array, -tail) if tail else empty
    cut = pc.binary_join_element_wise(
        start, pa.scalar(ELLIPSIS, pa.large_string()), end, pa.scalar("", pa.large_string())
    )
    out = pc.if_else(long, cut, array)
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(out, pa.large_string())),
                     index=series.index, dtype="string")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI)) + "]"
)


def terminal_safe(value: object) -> str:
    """``str(value)`` with control, line-separator and bidi characters escaped (``\\x1b``),
    for printing to a terminal; tab and newline stay (callers print one value per line)."""
    return _UNSAFE.sub(_escape, str(value)).replace("\n", "\\n")
