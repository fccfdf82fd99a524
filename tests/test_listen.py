"""The webhook listener on loopback: verification, de-duplication, durability, the reader,
compaction, metrics and secrets (``auditor.listen``)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.listen import (
    EVENT_COLUMNS,
    EventLog,
    ListenerBusyError,
    ListenerOptions,
    ListenerServer,
    compact,
    compact_day,
    load_events,
    signed_headers,
)
from auditor.listen.eventlog import encode_record, iter_segment_ids, read_segment
from auditor.logs import configure_logging

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def read_completed(company: str = "c-1", *, types: tuple[str, ...] = ("invoices",)) -> str:
    return json.dumps(
        {
            "id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
            "eventType": "read.completed",
            "generatedDate": "2026-11-30T23:59:00.000Z",
            "payload": {
                "referenceCompany": {"id": company, "name": "Toft stores"},
                "modifiedFromDate": "2026-11-30T00:00:00.000Z",
                "dataTypes": [
                    {
                        "connectionId": "conn-1",
                        "dataType": data_type,
                        "recordsModified": False,
                        "status": "Complete",
                        "issues": [{"type": "warning.validation", "message": "look"}]
                        if data_type == "bills"
                        else [],
                    }
                    for data_type in types
                ],
            },
        }
    )


def disconnected(company: str = "c-2") -> str:
    return json.dumps(
        {
            "id": "ba29118f-5406-4e59-b05c-ba307ca38d01",
            "eventType": "connection.disconnected",
            "generatedDate": "2026-11-30T10:00:00Z",
            "payload": {
                "referenceCompany": {"id": company, "name": "Bank of Dave"},
                "connection": {"id": "conn-9", "status": "Deauthorized", "platformName": "Basiq"},
            },
        }
    )


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[ListenerServer]:
    server = ListenerServer(
        tmp_path / "store", SECRET, port=0, options=ListenerOptions(max_body_bytes=64 * 1024)
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    server: ListenerServer,
    body: str | bytes,
    headers: dict[str, str],
    path: str = "/webhooks/codat",
) -> tuple[int, dict[str, object]]:
    async with session.post(server.url + path, data=body, headers=headers) as response:
        return response.status, await response.json()


def stored_ids(store: Path) -> list[str]:
    return list(iter_segment_ids(store))


async def test_a_signed_event_is_stored_once_and_read_back(
    listener: ListenerServer, session: aiohttp.ClientSession
) -> None:
    body = read_completed(types=("invoices", "bills"))
    status, answer = await post(session, listener, body, signed_headers(SECRET, "msg_1", body))
    assert (status, answer) == (200, {"status": "stored"})
    other = disconnected()
    status, _ = await post(session, listener, other, signed_headers(SECRET, "msg_2", other), "/")
    assert status == 200
    assert stored_ids(listener.store) == ["msg_1", "msg_2"]

    events = load_events(listener.store)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert events["event_id"].tolist() == ["msg_1", "msg_1", "msg_2"]
    first = events.iloc[1]
    assert first["event_type"] == "read.completed"
    assert first["company_id"] == "c-1"
    assert (first["connection_id"], first["data_type"], first["status"]) == (
        "conn-1",
        "bills",
        "Complete",
    )
    assert json.loads(first["issues"])[0]["type"] == "warning.validation"
    assert first["raw"] == body  # exactly the signed bytes
    assert first["generated_at"] == datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert abs(first["received_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    last = events.iloc[2]
    assert (last["event_type"], last["company_id"], last["connection_id"], last["status"]) == (
        "connection.disconnected",
        "c-2",
        "conn-9",
        "Deauthorized",
    )
    assert str(events["received_at"].dtype) == "datetime64[us, UTC]"
    future = datetime.now(UTC) + timedelta(hours=1)
    assert load_events(listener.store, since=future).empty
    assert len(load_events(listener.store, until=future)) == 3


async def test_redeliveries_are_acknowledged_but_stored_once(
    listener: ListenerServer, session: aiohttp.ClientSession
) -> None:
    body = read_completed()
    # Sequential redelivery, then several concurrent ones (in flight together).
    assert (await post(session, listener, body, signed_headers(SECRET, "msg_a", body)))[0] == 200
    status, answer = await post(session, listener, body, signed_headers(SECRET, "msg_a", body))
    assert (status, answer["status"]) == (200, "duplicate")
    answers = await asyncio.gather(
        *(post(session, listener, body, signed_headers(SECRET, "msg_b", body)) for _ in range(8))
    )
    assert sorted(a["status"] for _, a in answers) == ["duplicate"] * 7 + ["stored"]
    assert sorted(stored_ids(listener.store)) == ["msg_a", "msg_b"]
    assert listener.counts["duplicates"] == 8


async def test_a_restarted_listener_remembers_stored_ids(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    body = read_completed()
    for _ in range(2):
        server = ListenerServer(tmp_path, SECRET, port=0)
        await server.start()
        try:
            _, answer = await post(session, server, body, signed_headers(SECRET, "msg_r", body))
        finally:
            await server.stop()
    assert answer["status"] == "duplicate"
    assert stored_ids(tmp_path) == ["msg_r"]


async def test_bad_deliveries_are_rejected_and_nothing_is_stored(
    listener: ListenerServer, session: aiohttp.ClientSession
) -> None:
    body = read_completed()
    good = signed_headers(SECRET, "msg_x", body)
    now = time.time()
    cases: list[tuple[str, str | bytes, dict[str, str], int]] = [
        ("wrong secret", body, signed_headers(OTHER_SECRET, "msg_x", body), 401),
        ("tampered body", body.replace("c-1", "c-666"), good, 401),
        ("garbage signature", body, {**good, "webhook-signature": "v1,not base64!"}, 401),
        ("no v1, prefix", body, {**good, "webhook-signature": "deadbeef"}, 401),
        ("replayed (old)", body, signed_headers(SECRET, "msg_x", body, timestamp=now - 600), 401),
        ("from the future", body, signed_headers(SECRET, "msg_x", body, timestamp=now + 600), 401),
        ("bad timestamp", body, {**good, "webhook-timestamp": "yesterday"}, 400),
        ("nan timestamp", body, {**good, "webhook-timestamp": "nan"}, 400),
        ("no signature", body, {k: v for k, v in good.items() if k != "webhook-signature"}, 400),
        ("no id", body, {k: v for k, v in good.items() if k != "webhook-id"}, 400),
        ("no headers", body, {}, 400),
        ("id too long", body, signed_headers(SECRET, "m" * 300, body), 400),
        ("not JSON", "{nope", signed_headers(SECRET, "msg_x", "{nope"), 400),
        ("not an event", "[1, 2]", signed_headers(SECRET, "msg_x", "[1, 2]"), 400),
        ("no eventType", '{"id": 1}', signed_headers(SECRET, "msg_x", '{"id": 1}'), 400),
        ("not UTF-8", b"\xff\xfe", {**good}, 400),
    ]
    big = json.dumps({"eventType": "read.completed", "pad": "x" * 70_000})
    cases.append(("oversize", big, signed_headers(SECRET, "msg_x", big), 413))
    for name, data, headers, expected in cases:
        status, answer = await post(session, listener, data, headers)
        assert status == expected, name
        assert answer["status"] == "rejected", name

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    # A chunked body (no Content-Length) is cut off at the cap too.
    async with session.post(listener.url + "/webhooks/codat", data=chunks(), headers=good) as r:
        assert r.status == 413
    assert stored_ids(listener.store) == []
    assert load_events(listener.store).empty
    assert listener.counts["stored"] == 0
    # The id of a rejected delivery is not burnt: the genuine delivery is stored.
    assert (await post(session, listener, body, good))[1]["status"] == "stored"


async def test_health_and_metrics(listener: ListenerServer, session: aiohttp.ClientSession) -> None:
    body = read_completed()
    await post(session, listener, body, signed_headers(SECRET, "msg_m", body))
    await post(session, listener, body, signed_headers(SECRET, "msg_m", body))
    await post(session, listener, body, signed_headers(OTHER_SECRET, "msg_n", body))
    async with session.get(listener.url + "/healthz") as response:
        assert response.status == 200
        health = await response.json()
    assert health["status"] == "ok"
    assert (health["stored"], health["duplicates"], health["rejected"]) == (1, 1, 1)
    async with session.get(listener.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert "codat_webhooks_received_total 3.0" in text
    assert "codat_webhooks_stored_total 1.0" in text
    assert "codat_webhooks_duplicates_total 1.0" in text
    assert 'codat_webhooks_rejected_total{reason="bad_signature"} 1.0' in text
    assert "codat_webhook_ack_seconds_count 2.0" in text


async def test_one_listener_per_store(listener: ListenerServer) -> None:
    second = ListenerServer(listener.store, SECRET, port=0)
    with pytest.raises(ListenerBusyError):
        await second.start()


def test_a_torn_last_line_is_skipped_everywhere(tmp_path: Path) -> None:
    day = datetime.now(UTC).date()
    day_dir = tmp_path / "events" / f"date={day}"
    day_dir.mkdir(parents=True)
    received = datetime.now(UTC)
    good = encode_record("msg_1", received, read_completed()) + encode_record(
        "msg_2", received, disconnected()
    )
    torn = encode_record("msg_3", received, read_completed())[:-20]
    (day_dir / "log-20260101T000000000000Z-1.jsonl").write_bytes(good + torn)
    # A damaged complete line (bit flip) and a zero-filled tail in a second segment.
    flipped = bytearray(encode_record("msg_4", received, read_completed()))
    flipped[40] ^= 0x01
    (day_dir / "log-20260101T000001000000Z-2.jsonl").write_bytes(bytes(flipped) + b"\0" * 64)

    scan = read_segment(day_dir / "log-20260101T000000000000Z-1.jsonl")
    assert [r["id"] for r in scan.records] == ["msg_1", "msg_2"]
    assert scan.torn_tails == 1
    assert load_events(tmp_path)["event_id"].unique().tolist() == ["msg_1", "msg_2"]

    log = EventLog(tmp_path)
    log.load()
    assert log.known_ids == 2
    assert (log.startup_scan.torn_tails, log.startup_scan.damaged_lines) == (2, 1)


async def test_writing_after_a_torn_tail_starts_a_new_segment(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    day_dir = tmp_path / "events" / f"date={datetime.now(UTC).date()}"
    day_dir.mkdir(parents=True)
    torn = encode_record("msg_t", datetime.now(UTC), read_completed())[:-5]
    (day_dir / "log-20260101T000000000000Z-1.jsonl").write_bytes(torn)
    server = ListenerServer(tmp_path, SECRET, port=0)
    await server.start()
    try:
        body = read_completed()
        # The torn event was never acknowledged: its redelivery is stored.
        for webhook_id in ("msg_t", "msg_u"):
            _, answer = await post(session, server, body, signed_headers(SECRET, webhook_id, body))
            assert answer["status"] == "stored"
    finally:
        await server.stop()
    assert stored_ids(tmp_path) == ["msg_t", "msg_u"]
    assert len(list(day_dir.glob("log-*.jsonl"))) == 2


def write_day(store: Path, day: str, ids: list[str], name: str = "1") -> Path:
    day_dir = store / "events" / f"date={day}"
    day_dir.mkdir(parents=True, exist_ok=True)
    received = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    data = b"".join(encode_record(i, received, read_completed()) for i in ids)
    (day_dir / f"log-{day.replace('-', '')}T120000000000Z-{name}.jsonl").write_bytes(data)
    return day_dir


def test_compaction_is_idempotent_and_crash_safe(tmp_path: Path) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    today = datetime.now(UTC).date().isoformat()
    day_dir = write_day(tmp_path, yesterday, ["a", "b", "c"])
    write_day(tmp_path, yesterday, ["c", "d"], name="2")  # a redelivery across two segments
    write_day(tmp_path, today, ["e"])
    before = load_events(tmp_path)

    assert compact(tmp_path) == {yesterday: 4}  # today is open: left as is
    assert [p.name for p in day_dir.iterdir()] == ["part-00000.parquet"]
    assert len(list((tmp_path / "events" / f"date={today}").glob("log-*.jsonl"))) == 1
    after = load_events(tmp_path)
    assert after.equals(before.drop_duplicates("event_id").reset_index(drop=True))
    assert compact(tmp_path) == {}  # nothing left to do

    # A crash after the rename, before the segments went: part and segment overlap.
    write_day(tmp_path, yesterday, ["b", "f"], name="3")
    assert sorted(load_events(tmp_path)["event_id"]) == ["a", "b", "c", "d", "e", "f"]
    assert compact_day(day_dir) == 5
    assert compact_day(day_dir) == 0
    assert sorted(load_events(tmp_path)["event_id"]) == ["a", "b", "c", "d", "e", "f"]
    # The compacted ids still de-duplicate after a restart.
    log = EventLog(tmp_path)
    log.load()
    assert log.known_ids == 6


async def test_a_failing_disk_fails_the_request_and_the_health(
    listener: ListenerServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(listener.events, "_write_batch", broken)
    body = read_completed()
    status, answer = await post(session, listener, body, signed_headers(SECRET, "msg_f", body))
    assert (status, answer["reason"]) == (503, "unavailable")
    assert listener.failed.is_set()
    async with session.get(listener.url + "/healthz") as response:
        assert response.status == 503


async def test_the_secret_never_reaches_logs_or_files(
    tmp_path: Path, session: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(run_id="t", fmt="json", level=logging.DEBUG)
    server = ListenerServer(tmp_path, SECRET, port=0)
    await server.start()
    try:
        body = read_completed()
        await post(session, server, body, signed_headers(SECRET, "msg_s", body))
        await post(session, server, body, signed_headers(SECRET, "msg_s", body))
        await post(session, server, body, signed_headers(OTHER_SECRET, "msg_z", body))
        await post(
            session,
            server,
            body,
            {**signed_headers(SECRET, "msg_y", body), "webhook-signature": SECRET},
        )
    finally:
        await server.stop()
    err = capsys.readouterr().err
    assert "webhook rejected" in err
    key = SECRET.removeprefix("whsec_")
    assert key not in err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_cli_needs_a_whsec_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.delenv("CODAT_WEBHOOK_SECRET", raising=False)
    result = runner.invoke(app, ["listen", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "CODAT_WEBHOOK_SECRET" in result.output
    monkeypatch.setenv("CODAT_WEBHOOK_SECRET", "hunter2-not-svix")
    result = runner.invoke(app, ["listen", "--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "whsec_" in result.output
    assert "hunter2" not in result.output
    assert not (tmp_path / "events").exists()


def test_cli_compact_only(tmp_path: Path) -> None:
    write_day(tmp_path, "2026-01-02", ["a", "b"])
    result = CliRunner().invoke(app, ["listen", "--store", str(tmp_path), "--compact-only"])
    assert result.exit_code == 0, result.output
    assert "compacted 2026-01-02: 2 events" in result.output


async def test_the_listener_compacts_closed_days_itself(tmp_path: Path) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    write_day(tmp_path, yesterday, ["a", "b"])
    server = ListenerServer(
        tmp_path, SECRET, port=0, options=ListenerOptions(compact_interval_seconds=0.05)
    )
    await server.start()
    try:
        day_dir = tmp_path / "events" / f"date={yesterday}"
        assert [p.name for p in day_dir.iterdir()] == ["part-00000.parquet"]  # at start
        write_day(tmp_path, yesterday, ["c"], name="late")  # e.g. a clock stepped back
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not list(day_dir.glob("log-*")):
                break
        assert sorted(load_events(tmp_path)["event_id"]) == ["a", "b", "c"]
        assert not list(day_dir.glob("log-*"))  # hourly (here: 50 ms) compaction
        assert server.events.is_known("a")
        # While it runs, nobody else compacts the store.
        result = CliRunner().invoke(app, ["listen", "--store", str(tmp_path), "--compact-only"])
        assert result.exit_code == 2
        assert "a listener is running" in result.output
    finally:
        await server.stop()


async def test_a_graceful_stop_acknowledges_only_what_it_stored(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = ListenerServer(tmp_path, SECRET, port=0)
    await server.start()
    body = read_completed()

    async def one(i: int) -> str | None:
        try:
            status, _ = await post(session, server, body, signed_headers(SECRET, f"g{i}", body))
        except aiohttp.ClientError:
            return None
        return f"g{i}" if status == 200 else None

    sends = [asyncio.create_task(one(i)) for i in range(60)]
    await asyncio.sleep(0.02)
    await server.stop()
    acked = {i for i in await asyncio.gather(*sends) if i is not None}
    assert acked <= set(stored_ids(tmp_path))
    assert len(stored_ids(tmp_path)) == len(set(stored_ids(tmp_path)))


async def test_too_many_events_waiting_for_the_disk_get_503(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = ListenerServer(tmp_path, SECRET, port=0, options=ListenerOptions(max_in_flight=0))
    await server.start()
    try:
        body = read_completed()
        status, answer = await post(session, server, body, signed_headers(SECRET, "o1", body))
    finally:
        await server.stop()
    assert (status, answer["reason"]) == (503, "overloaded")
    assert not server.failed.is_set()
    assert stored_ids(tmp_path) == []


def test_the_dedup_window_is_bounded(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    write_day(tmp_path, (today - timedelta(days=10)).isoformat(), ["old"])
    write_day(tmp_path, (today - timedelta(days=1)).isoformat(), ["recent"])
    log = EventLog(tmp_path, dedup_days=3)
    log.load()
    assert log.is_known("recent")
    assert not log.is_known("old")  # outside the window: not held in memory
    log._remember(today + timedelta(days=3), ["later"])  # days pass while running
    assert log.is_known("later")
    assert not log.is_known("recent")
    assert log.known_ids == 1
