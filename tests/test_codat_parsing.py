"""Property tests: whatever Codat sends, the client's parsers end in a model or a typed error.

Random and mutated ``dataStatus``, ``PullOperation`` and ``ErrorMessage`` bodies go through
the real client (over ``httpx.MockTransport``): no exception other than a ``CodatError``
escapes, unreadable dataStatus entries never take the readable ones down with them, and the
fast whole-body path agrees with the entry-by-entry path.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from auditor.codat import (
    CodatClient,
    CodatError,
    CodatHTTPError,
    CodatResponseError,
    DataStatus,
    DataStatusEntryError,
    PullOperation,
    RateLimitPolicy,
    RetryPolicy,
    parse_codat_datetime,
    parse_data_status_entry,
    parse_error_message,
)
from auditor.constants import ALL_DATA_TYPES, ALL_STATUSES

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ONE_TRY = RetryPolicy(max_attempts=1)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)

timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "4Z"  # 7 fractional digits
    ),
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.timezones(),
    ).map(lambda d: d.isoformat()),
    st.text(max_size=30),
)

entry_fields = {
    "dataType": st.sampled_from([*ALL_DATA_TYPES, "someNewType"]) | json_values,
    "currentStatus": st.sampled_from([*ALL_STATUSES, "SomethingNew"]) | json_values,
    "lastSuccessfulSync": timestamps | json_values,
    "latestSyncId": st.uuids().map(str) | json_values,
    "latestSuccessfulSyncId": st.uuids().map(str) | json_values,
}


@st.composite
def data_status_entries(draw: st.DrawFn) -> Any:
    """A dataStatus entry: mostly well-formed, with some fields dropped or mutated."""
    kind = draw(st.sampled_from(["good", "mutated", "anything"]))
    if kind == "anything":
        return draw(json_values)
    entry: dict[str, Any] = {
        "dataType": draw(st.sampled_from(ALL_DATA_TYPES)),
        "currentStatus": draw(st.sampled_from(ALL_STATUSES)),
        "lastSuccessfulSync": draw(timestamps),
        "latestSyncId": draw(st.uuids().map(str)),
        "latestSuccessfulSyncId": draw(st.uuids().map(str)),
    }
    if kind == "mutated":
        for name in draw(st.lists(st.sampled_from(sorted(entry_fields)), max_size=3)):
            if draw(st.booleans()):
                entry.pop(name, None)
            else:
                entry[name] = draw(entry_fields[name])
    return entry


data_status_bodies = st.dictionaries(
    st.sampled_from([*ALL_DATA_TYPES, "someNewType", ""]) | st.text(max_size=8),
    data_status_entries() | st.none(),
    max_size=12,
)


def call(body: bytes, status: int, method: str, *args: str) -> Any:
    """Run one client method against a server that answers ``status`` and ``body``.

    Returns the method's result, or the ``CodatError`` it raised; anything else propagates
    (and fails the test).
    """

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async def go() -> Any:
        async with CodatClient(
            "sk-property-test-key-7f3a",
            base_url="http://codat.test",
            retry=ONE_TRY,
            rate_limit=NO_LIMIT,
            transport=httpx.MockTransport(handler),
        ) as client:
            try:
                return await getattr(client, method)(*args)
            except CodatError as exc:
                return exc

    return asyncio.run(go())


def readable(key: str, value: Any) -> bool:
    try:
        parse_data_status_entry(key, value)
    except ValueError:
        return False
    return True


def dumps(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


@SETTINGS
@given(data_status_bodies)
def test_data_status_bodies_end_in_statuses_or_a_typed_error(body: dict[str, Any]) -> None:
    outcome = call(dumps(body), 200, "get_data_status", "c1")
    statuses = outcome.statuses if isinstance(outcome, DataStatusEntryError) else outcome
    assert isinstance(statuses, dict)
    if isinstance(outcome, DataStatusEntryError):
        assert outcome.invalid
        assert set(outcome.invalid).isdisjoint(statuses)
        # Exactly the entries that cannot be read on their own are reported.
        for key in outcome.invalid:
            assert not readable(key, body[key]), f"{key} was readable"
    # Every readable entry is there, keyed and typed by its key, times in UTC; a null entry is
    # the never-synced form (the type, no status).
    for key, value in body.items():
        if value is None:
            assert statuses[key].data_type == key
            assert statuses[key].current_status is None
            continue
        try:
            expected = parse_data_status_entry(key, value)
        except ValueError:
            continue
        assert statuses[key] == expected
        assert isinstance(statuses[key], DataStatus)
        assert statuses[key].data_type == key
        synced = statuses[key].last_successful_sync
        assert synced is None or synced.utcoffset() == timedelta(0)


@SETTINGS
@given(json_values)
def test_any_json_as_data_status_is_handled(body: Any) -> None:
    outcome = call(dumps(body), 200, "get_data_status", "c1")
    assert isinstance(outcome, dict | CodatResponseError)


@SETTINGS
@given(st.binary(max_size=60))
def test_any_bytes_as_data_status_is_handled(body: bytes) -> None:
    outcome = call(body, 200, "get_data_status", "c1")
    assert isinstance(outcome, dict | CodatResponseError)


pull_operation_fields = {
    "id": st.uuids().map(str) | json_values,
    "companyId": st.uuids().map(str) | json_values,
    "connectionId": st.uuids().map(str) | json_values,
    "dataType": st.sampled_from(ALL_DATA_TYPES) | json_values,
    "status": st.sampled_from([*ALL_STATUSES, "New"]) | json_values,
    "statusDescription": st.none() | st.text(max_size=20) | json_values,
    "errorMessage": st.none() | st.text(max_size=20) | json_values,
    "requested": timestamps | json_values,
    "completed": timestamps | json_values,
    "progress": st.integers(0, 100) | json_values,
    "isCompleted": st.booleans() | json_values,
    "isErrored": st.booleans() | json_values,
}


@SETTINGS
@given(st.fixed_dictionaries({}, optional=pull_operation_fields) | json_values)
def test_pull_operation_payloads_end_in_a_model_or_a_typed_error(body: Any) -> None:
    op = call(dumps(body), 200, "get_pull_operation", "c1", "d1")
    if isinstance(op, CodatError):
        assert isinstance(op, CodatResponseError)
        assert op.endpoint == "get-pull-operation"
        assert "get-pull-operation" in str(op)
        return
    assert isinstance(op, PullOperation)
    for moment in (op.requested, op.completed):
        assert moment is None or moment.utcoffset() == timedelta(0)


error_fields = {
    "statusCode": st.integers() | json_values,
    "service": st.text(max_size=10) | json_values,
    "error": st.text(max_size=40) | json_values,
    "correlationId": st.text(max_size=10) | json_values,
    "canBeRetried": st.sampled_from(["Unknown", "True", "False"]) | json_values,
    "detailedErrorCode": st.integers() | json_values,
    "validation": json_values,
}


@SETTINGS
@given(
    st.fixed_dictionaries({}, optional=error_fields) | json_values,
    st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 503]),
)
def test_error_bodies_always_give_a_typed_http_error(body: Any, status: int) -> None:
    message = parse_error_message(body)  # never raises
    assert message is None or isinstance(body, dict)
    exc = call(dumps(body), status, "get_company", "c1")
    assert isinstance(exc, CodatHTTPError)
    assert exc.status_code == status
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        assert exc.error == body["error"]


@SETTINGS
@given(timestamps | json_values)
@example("0001-01-01T00:00:00+01:00")  # out of range once in UTC
@example("9999-12-31T23:59:59-01:00")
@example("2019-06-11T13:26:54.6884704Z")
@example("  2019-06-11T13:26:54.6884704z ")
@example("")
def test_parse_codat_datetime_gives_utc_or_value_error(value: Any) -> None:
    try:
        result = parse_codat_datetime(value)
    except ValueError:
        # A string that is not a time, a time out of range, or not a string at all (a
        # number would otherwise be read as Unix seconds).
        assert value is not None
        return
    assert isinstance(value, str) or value is None
    assert result is None or (isinstance(result, datetime) and result.utcoffset() == timedelta(0))
    assert result is None or datetime(1677, 9, 22, tzinfo=UTC) <= result


def test_any_codat_error_is_the_only_escape() -> None:
    # A smoke check that the property tests above really hit both outcomes.
    good = {"invoices": {"dataType": "invoices", "currentStatus": "Complete"}}
    assert set(call(dumps(good), 200, "get_data_status", "c1")) == {"invoices"}
    assert isinstance(call(b"[]", 200, "get_data_status", "c1"), CodatResponseError)
