"""The vectorised CSV writer (``auditor.report._csv``) writes exactly the bytes pandas' writer
(``DataFrame.to_csv``, which uses csv.writer, QUOTE_MINIMAL, CRLF) writes for the same safe
frame, for every dtype the exports use and any text, including quotes, commas, CR/LF, empty
strings, missing values, formula prefixes and non-BMP characters."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.report import _csv

_TEXT = st.text(
    alphabet=st.sampled_from(list("ab ,\"\r\n\t=+-@'é😀\x00;")) | st.characters(codec="utf-8"),
    max_size=12,
)


def _reference(frame: pd.DataFrame) -> bytes:
    """pandas' bytes for the frame the vectorised writer writes (same safety steps)."""
    safe = _csv.neutralise_formulas(_csv._format_timestamps(frame))
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, lineterminator="\r\n")
    return buffer.getvalue().encode("utf-8")


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 30))
    texts = draw(st.lists(st.none() | _TEXT, min_size=n, max_size=n))
    floats = draw(
        st.lists(
            st.none() | st.floats(allow_nan=False, allow_infinity=True, width=64),
            min_size=n,
            max_size=n,
        )
    )
    ints = draw(st.lists(st.none() | st.integers(-(2**62), 2**62), min_size=n, max_size=n))
    bools = draw(st.lists(st.none() | st.booleans(), min_size=n, max_size=n))
    stamps = draw(
        st.lists(
            st.none()
            | st.datetimes(
                min_value=datetime(1970, 1, 1),
                max_value=datetime(2200, 1, 1),
                timezones=st.just(UTC),
            ),
            min_size=n,
            max_size=n,
        )
    )
    header = draw(st.lists(_TEXT, min_size=9, max_size=9, unique=True))
    return pd.DataFrame(
        {
            header[0]: pd.Series(texts, dtype="string"),
            header[1]: pd.Series(texts, dtype="category"),
            header[2]: pd.Series([np.nan if v is None else v for v in floats], dtype="float64"),
            header[3]: pd.Series(ints, dtype="Int64"),
            header[4]: pd.Series(bools, dtype="boolean"),
            header[5]: pd.Series([bool(b) for b in bools], dtype="bool"),
            header[6]: pd.Series([0 if v is None else v for v in ints], dtype="int64"),
            header[7]: pd.Series(pd.to_datetime(pd.Series(stamps, dtype=object), utc=True)),
            header[8]: pd.Series(texts, dtype="object"),
        }
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_vectorised_writer_writes_pandas_bytes(frame: pd.DataFrame) -> None:
    assert _csv.to_csv_bytes(frame) == _reference(frame)


@pytest.mark.parametrize("rows", [0, 1, _csv._CHUNK_ROWS, _csv._CHUNK_ROWS + 3])
def test_chunk_edges(rows: int) -> None:
    frame = pd.DataFrame(
        {
            "a": pd.Series(
                [f'x,"{i}"' if i % 3 else f"=cmd{i}" for i in range(rows)], dtype="string"
            ),
            "b": pd.Series(np.arange(rows, dtype="float64") / 7),
        }
    )
    assert _csv.to_csv_bytes(frame) == _reference(frame)


def test_a_hostile_category_is_neutralised_even_when_its_quoted_twin_exists() -> None:
    # "'=x" is already a category: renaming "=x" to it would merge two values.
    frame = pd.DataFrame(
        {"a": pd.Series(["=x", "'=x", None, "y"], dtype="category"), "b": [1, 2, 3, 4]}
    )
    out = _csv.to_csv_bytes(frame).decode()
    assert out == "a,b\r\n'=x,1\r\n'=x,2\r\n,3\r\ny,4\r\n"
    assert _csv.to_csv_bytes(frame) == _reference(frame)


def test_one_column_and_unknown_dtypes_use_pandas_writer() -> None:
    one = pd.DataFrame({"a": pd.Series(["", None, "x"], dtype="string")})
    assert _csv.to_csv_bytes(one) == _reference(one) == b'a\r\n""\r\n""\r\nx\r\n'
    spans = pd.DataFrame({"a": ["x", "y"], "d": pd.to_timedelta(["1h", "2h"])})
    assert _csv.to_csv_bytes(spans) == _reference(spans)
