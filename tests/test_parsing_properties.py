"""Property tests (issue 12, items 2-4): hostile JSON through the parsing boundary and the
frame builders. Whatever the payload (wrong types, nulls, huge and unicode text with lone
surrogates, out-of-range times), no exception escapes, every record is either parsed or
counted as skipped, and the frames can be written as Parquet.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from auditor.codat import (
    ParseIssues,
    PullOperation,
    loads_json,
    parse_company,
    parse_data_status_entry,
    parse_pull_operation,
)
from auditor.collector import BatchBuilder
from auditor.constants import ALL_DATA_TYPES, ALL_STATUSES

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
AT = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)

lone_surrogates = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    min_size=1,
    max_size=3,
)
hostile_text = st.one_of(
    st.tuples(st.text(max_size=8), lone_surrogates, st.text(max_size=8)).map("".join),
    st.text(max_size=20),
    st.text(st.characters(codec=None), max_size=20),  # any code point, surrogates included
    st.just("x" * 5000),
    st.sampled_from(["", ".", "..", "/", "a/../b", "%2E", "\x00", "\u202e", "\ufffd"]),
)
hostile_times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59.9999999Z",
            "9999-12-31T23:59:59-01:00",
            "1677-09-21T00:12:43Z",
            "2262-04-11T23:47:17Z",
            "2026-11-18T03:00:00-05:00",
            "2026-11-18T05:00:00",
            "2026-11-17",
            "2019-06-11T13:26:54.6884704Z",
            "yesterday",
            "soon",
            "",
        ]
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.integers(),
    st.floats(allow_nan=False),
)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
ids = st.uuids().map(str) | hostile_text | anything


def fields_of(spec: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: v | anything for k, v in spec.items()})


connections = fields_of(
    {
        "id": ids,
        "integrationKey": hostile_text,
        "sourceType": st.sampled_from(["Accounting", "Banking", "Commerce"]),
        "platformName": hostile_text,
        "linkUrl": hostile_text,
        "status": st.sampled_from(["Linked", "Deauthorized", "Unlinked"]),
        "lastSync": hostile_times,
        "created": hostile_times,
    }
)
companies = fields_of(
    {
        "id": ids,
        "name": hostile_text,
        "description": hostile_text,
        "created": hostile_times,
        "lastSync": hostile_times,
        "dataConnections": st.lists(connections | anything, max_size=4),
    }
)
entries = fields_of(
    {
        "dataType": st.sampled_from(ALL_DATA_TYPES),
        "currentStatus": st.sampled_from(ALL_STATUSES),
        "lastSuccessfulSync": hostile_times,
        "latestSyncId": ids,
        "latestSuccessfulSyncId": ids,
    }
)
pull_operations = fields_of(
    {
        "id": ids,
        "companyId": ids,
        "connectionId": ids,
        "dataType": st.sampled_from(ALL_DATA_TYPES),
        "status": st.sampled_from(ALL_STATUSES),
        "statusDescription": hostile_text,
        "errorMessage": hostile_text,
        "requested": hostile_times,
        "completed": hostile_times,
        "progress": st.integers(),
        "isCompleted": st.booleans(),
        "isErrored": st.booleans(),
    }
)


def over_the_wire(value: Any) -> Any:
    """What the client's decoder makes of ``value`` sent as JSON (surrogates escaped)."""
    return loads_json(json.dumps(value, ensure_ascii=True).encode())


def assert_utf8(value: Any) -> None:
    json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")


def parquet_writable(frames: dict[str, Any]) -> None:
    for frame in frames.values():
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)


@SETTINGS
@example(
    [
        {
            "id": "a",
            "name": "Caf\ud800",
            "created": "0001-01-01T00:00:00",
            "dataConnections": [{"id": "k", "lastSync": "9999-12-31T23:59:59.9999999Z"}],
        },
        {"id": None},
    ],
    {"invoices": {"lastSuccessfulSync": "yesterday", "currentStatus": 5}, "bills": 3},
    [{"id": "op", "requested": "0001-01-01T00:00:00"}, {"id": 4}],
)
@given(
    st.lists(companies | anything, max_size=6),
    st.dictionaries(st.sampled_from(ALL_DATA_TYPES) | hostile_text, entries | anything, max_size=5),
    st.lists(pull_operations | anything, max_size=4),
)
def test_hostile_payloads_end_in_records_or_counts_and_writable_frames(
    raw_companies: list[Any], raw_statuses: dict[str, Any], raw_pulls: list[Any]
) -> None:
    issues = ParseIssues()
    items = over_the_wire(raw_companies)
    body = over_the_wire(raw_statuses)
    pull_items = over_the_wire(raw_pulls)

    parsed = []
    for item in items:
        before = issues.copy()
        company = parse_company(item, issues)
        delta = issues.since(before)
        if company is None:
            assert delta.skipped_records["company"] == 1
            continue
        assert delta.skipped_records["company"] == 0
        assert company.id
        raw_conns = item.get("dataConnections")
        if isinstance(raw_conns, list):
            # Every connection is either kept or counted as skipped.
            kept = len(company.data_connections)
            assert kept + delta.skipped_records["connection"] == len(raw_conns)
        else:
            assert company.data_connections == []
        assert set(company.unreadable) <= set(item)
        assert_utf8(company.model_dump(mode="json"))
        parsed.append(company)

    statuses = {}
    for key, value in body.items():
        before = issues.copy()
        try:
            statuses[key] = parse_data_status_entry(key, value, issues)
        except ValueError:
            assert not isinstance(value, dict)
            assert issues.since(before).skipped_records["data_status"] == 1
            continue
        assert statuses[key].data_type == key
        if statuses[key].unreadable.get("lastSuccessfulSync") is not None:
            assert statuses[key].last_successful_sync is None

    pulls: list[PullOperation] = []
    for item in pull_items:
        before = issues.copy()
        op = parse_pull_operation(item, issues)
        if op is None:
            assert issues.since(before).skipped_records["pull_operation"] == 1
        else:
            pulls.append(op)

    builder = BatchBuilder(AT)
    for company in parsed:
        builder.add_company(company, statuses, pulls)
    frames = builder.build()
    assert len(frames["status"]) == len(parsed) * len(statuses)
    parquet_writable(frames)
    for moment in ("company_created", "company_last_sync", "connection_created"):
        assert str(frames["companies"][moment].dtype) == "datetime64[ns, UTC]"
