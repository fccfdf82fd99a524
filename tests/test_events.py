"""What the audit does with webhook events (``auditor.events``): the window reader, the
``validation-warning`` rule end to end, connection events in the report and the digest, the
ledger's incidents between two nights, the rate-limit notice, and a corrupt or missing log.

The event logs are written by the real listener (``ListenerServer`` on loopback, signed
deliveries) or, for the reader's edge cases, with the listener's own framing
(``encode_record``)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pandas as pd
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import AuditConfig
from auditor.engine import audit
from auditor.events import (
    EVENTS_SCHEMA,
    EventWindow,
    connection_timelines,
    prune_events,
    read_event_window,
)
from auditor.ledger import connection_incidents
from auditor.listen import ListenerServer, signed_headers
from auditor.listen.eventlog import encode_record
from auditor.pipeline import audit_store
from auditor.report import build_digest
from auditor.report._events import build_events_view
from auditor.snapshot import Snapshot, conform
from auditor.store import write_snapshot

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOSTILE = '<img src=x onerror=alert(1)>\u202e\r\nBcc: evil@example.test\x1b[2J'


def read_completed(
    company: str, data_type: str, issues: list[dict[str, object]], n: int = 0
) -> str:
    return json.dumps(
        {
            "id": f"rc-{company}-{data_type}-{n}",
            "eventType": "read.completed",
            "generatedDate": "2026-11-30T23:59:00.000Z",
            "payload": {
                "referenceCompany": {"id": company, "name": "Toft stores"},
                "dataTypes": [
                    {
                        "connectionId": "k1",
                        "dataType": data_type,
                        "recordsModified": True,
                        "status": "Complete",
                        "issues": issues,
                    }
                ],
            },
        }
    )


def connection_event(company: str, kind: str, at: str, status: str) -> str:
    return json.dumps(
        {
            "id": f"{kind}-{at}",
            "eventType": f"connection.{kind}",
            "generatedDate": at,
            "payload": {
                "referenceCompany": {"id": company, "name": "Acme Ltd"},
                "connection": {"id": "k1", "status": status, "platformName": "Xero"},
            },
        }
    )


def rate_limit(kind: str, at: str, expiry: str) -> str:
    return json.dumps(
        {
            "id": f"rl-{kind}",
            "eventType": f"client.rateLimit.{kind}",
            "generatedDate": at,
            "payload": {"dailyQuota": 12000, "quotaRemaining": 0, "expiryDate": expiry},
        }
    )


WARNING = {
    "type": "warning.validation",
    "message": "Something doesn't look right about these invoices. " + HOSTILE,
    "links": {
        "logs": "https://api.codat.io/companies/c1/sync/743e/validation",
        "portal": "https://app.codat.io/companies/c1/pull-history",
    },
}


async def deliver(store: Path, bodies: list[str], batch: str = "msg") -> None:
    """Post ``bodies`` to a real listener writing into ``store``; each must be stored
    (``batch`` prefixes the webhook ids: the listener drops an id it has seen)."""
    server = ListenerServer(store, SECRET, port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for n, body in enumerate(bodies):
                headers = signed_headers(SECRET, f"{batch}_{n}", body)
                async with session.post(server.url + "/webhooks/codat", data=body,
                                        headers=headers) as response:  # fmt: skip
                    assert response.status == 200, await response.text()
    finally:
        await server.stop()


def night(snapshot_id: str, at: datetime, *, failed: tuple[str, ...] = ()) -> Snapshot:
    synced = at - timedelta(hours=2)
    ids = ["c1", "c2"]
    status = pd.DataFrame(
        {
            "company_id": ids,
            "company_name": ["Acme Ltd", "Beta Ltd"],
            "platform": ["Xero", "Xero"],
            "source_type": ["Accounting", "Accounting"],
            "connection_id": ["k1", "k2"],
            "connection_status": ["Linked", "Linked"],
            "data_type": ["invoices", "invoices"],
            "current_status": ["Complete", "Complete"],
            "last_successful_sync": [synced, synced],
            "snapshot_at": [at, at],
        }
    )
    status = status.loc[~status["company_id"].isin(failed)]
    companies = pd.DataFrame(
        {
            "company_id": ids,
            "company_name": ["Acme Ltd", "Beta Ltd"],
            "connection_id": ["k1", "k2"],
            "platform": ["Xero", "Xero"],
            "source_type": ["Accounting", "Accounting"],
            "connection_status": ["Linked", "Linked"],
            "link_url": ["https://link.codat.io/k1", "https://link.codat.io/k2"],
            "snapshot_at": [at, at],
        }
    )
    errors = pd.DataFrame(
        {
            "company_id": list(failed),
            "endpoint": ["get-company-data-status"] * len(failed),
            "status_code": [429] * len(failed),
            "error": ["Too Many Requests"] * len(failed),
            "attempts": [5] * len(failed),
            "snapshot_at": [at] * len(failed),
        }
    )
    return Snapshot(snapshot_id, at, status=status, companies=companies, errors=errors).conformed()


def rules(result_frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return result_frame.loc[result_frame["rule"].astype("string").eq(name).fillna(False)]


async def test_events_reach_the_rule_the_report_the_digest_and_the_ledger(tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    start = datetime.now(UTC).replace(microsecond=0)
    # Night 0, before any event.
    first = night("night0", start - timedelta(hours=3))
    write_snapshot(store, first)
    audit_store(store, which="night0", as_of=start - timedelta(hours=3))

    await deliver(
        store,
        [
            read_completed("c1", "invoices", [WARNING]),
            connection_event("c1", "disconnected", "2026-11-30T14:02:00Z", "Deauthorized"),
            connection_event("c1", "reconnected", "2026-11-30T16:40:00Z", "Linked"),
            rate_limit("reached", "2026-11-30T21:15:00Z", "2026-12-01T00:00:00Z"),
            read_completed("c2", "invoices", []),
        ],
    )
    # Night 1: c2 could not be collected (quota); the events explain it.
    at = datetime.now(UTC) + timedelta(seconds=1)
    write_snapshot(store, night("night1", at, failed=("c2",)))
    run = audit_store(store, which="night1", as_of=at + timedelta(seconds=1), out_dir=out)

    warning = rules(run.result.findings, "validation-warning")
    assert len(warning) == 1
    row = warning.iloc[0]
    assert (row["code"], row["severity"], row["company_id"], row["data_type"]) == (
        "FA403", "warning", "c1", "invoices",
    )  # fmt: skip
    message = str(row["message"])
    assert "Something doesn't look right about these invoices." in message
    assert "Validation logs: https://api.codat.io/companies/c1/sync/743e/validation" in message
    for bad in ("\r", "\n", "\u202e", "\x1b"):
        assert bad not in message

    resolved = run.result.resolved
    relink = rules(resolved, "needs-relink")
    assert len(relink) == 1
    assert relink.iloc[0]["connection_id"] == "k1"
    story = str(relink.iloc[0]["message"])
    assert "disconnected at 2026-11-30 14:02 UTC" in story
    assert "reconnected at 2026-11-30 16:40 UTC" in story

    html = (out / "report.html").read_text(encoding="utf-8")
    shown = re.sub(r"<[^>]+>", "", html)  # what a reader sees
    assert "Codat events since the previous audit" in shown
    assert "disconnected at 14:02 on 30 Nov, reconnected at 16:40 on 30 Nov" in shown
    assert "Codat reported the rate limit reached at 2026-11-30 21:15 UTC (reset at " \
           "2026-12-01 00:00 UTC)." in shown  # the notice about c2, not collected
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\u202e" not in html

    digest = build_digest(run.result, fleet=run.fleet)
    plain = digest.get_body(("plain",))
    assert plain is not None
    text = str(plain.get_content())
    assert "Codat events since the previous audit (1 connection)" in text
    assert "Acme Ltd (Xero, c1): disconnected at 14:02, reconnected at 16:40" in text
    assert "Codat reported the rate limit reached at 2026-11-30 21:15 UTC" in text

    # Night 2, no event since night 1: the warning is not "resolved" (no read seen), and the
    # connection incident is not told again.
    at2 = at + timedelta(seconds=5)
    write_snapshot(store, night("night2", at2))
    run2 = audit_store(store, which="night2", as_of=at2)
    assert rules(run2.result.resolved, "validation-warning").empty
    carried = rules(run2.result.findings, "validation-warning")
    assert carried["state"].astype(str).tolist() == ["ongoing"]
    assert rules(run2.result.resolved, "needs-relink").empty

    # Night 3: a clean read of c1's bills only. It says nothing of its invoices, whose
    # warning is carried over (not re-checked), never "resolved".
    await _after(at2)  # the next window starts at the previous audit's as_of
    await deliver(store, [read_completed("c1", "bills", [])], batch="night3")
    at3 = datetime.now(UTC) + timedelta(seconds=1)
    write_snapshot(store, night("night3", at3))
    run3 = audit_store(store, which="night3", as_of=at3 + timedelta(seconds=1))
    assert rules(run3.result.resolved, "validation-warning").empty
    kept = rules(run3.result.findings, "validation-warning")
    assert kept["data_type"].astype(str).tolist() == ["invoices"]
    assert kept["carried_over"].tolist() == [True]

    # Night 4: a clean read of the invoices themselves resolves it.
    await _after(at3 + timedelta(seconds=1))
    await deliver(store, [read_completed("c1", "invoices", [], n=4)], batch="night4")
    at4 = datetime.now(UTC) + timedelta(seconds=1)
    write_snapshot(store, night("night4", at4))
    run4 = audit_store(store, which="night4", as_of=at4 + timedelta(seconds=1))
    assert rules(run4.result.findings, "validation-warning").empty
    assert len(rules(run4.result.resolved, "validation-warning")) == 1


async def _after(moment: datetime) -> None:
    """Wait until the wall clock (the listener's receive time) is past ``moment``."""
    await asyncio.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0) + 0.05)


def _write_segment(store: Path, day: str, lines: list[bytes]) -> Path:
    folder = store / "events" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "log-20261130T000000000000Z-1.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_a_damaged_line_makes_the_audit_incomplete_never_all_clear(tmp_path: Path) -> None:
    store = tmp_path / "store"
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    good = encode_record("m1", at, read_completed("c1", "invoices", [WARNING]))
    damaged = bytearray(encode_record("m2", at, read_completed("c1", "bills", [])))
    damaged[20] ^= 0x01  # the CRC no longer matches
    _write_segment(store, "2026-11-30", [good, bytes(damaged)])
    window = read_event_window(store, since=at - timedelta(hours=1), until=at + timedelta(hours=1))
    assert window.state == "unreadable"
    assert "1 damaged line" in window.detail

    write_snapshot(store, night("n1", at + timedelta(hours=1)))
    run = audit_store(store, which="n1", as_of=at + timedelta(hours=1))
    assert run.result.incomplete
    assert any("webhook event log" in m for m in run.result.missing_inputs)
    assert rules(run.result.findings, "validation-warning").empty


def test_a_torn_tail_is_not_damage(tmp_path: Path) -> None:
    store = tmp_path / "store"
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    good = encode_record("m1", at, read_completed("c1", "invoices", [WARNING]))
    torn = encode_record("m2", at, read_completed("c1", "bills", []))[:40]
    _write_segment(store, "2026-11-30", [good, torn])
    window = read_event_window(store, since=at - timedelta(hours=1), until=at + timedelta(hours=1))
    assert window.state == "on"
    assert window.torn_tails == 1
    assert window.events["data_type"].astype(str).tolist() == ["invoices"]
    assert list(window.events.columns) == list(EVENTS_SCHEMA)
    assert window.events.iloc[0]["issue_type"] == "warning.validation"
    assert bool(window.events.iloc[0]["records_modified"]) is True


def test_an_unreadable_parquet_part_is_loud(tmp_path: Path) -> None:
    store = tmp_path / "store"
    folder = store / "events" / "date=2026-11-30"
    folder.mkdir(parents=True)
    (folder / "part-00000.parquet").write_bytes(b"PAR1 not really")
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    window = read_event_window(store, since=at, until=at + timedelta(hours=1))
    assert window.state == "unreadable"
    assert "could not be read" in window.detail


def test_the_window_is_half_open_and_bounded(tmp_path: Path) -> None:
    store = tmp_path / "store"
    base = datetime(2026, 11, 30, 12, tzinfo=UTC)
    lines = [
        encode_record(f"m{h}", base + timedelta(hours=h), read_completed(f"c{h}", "invoices", []))
        for h in range(4)
    ]
    _write_segment(store, "2026-11-30", lines)
    window = read_event_window(
        store, since=base + timedelta(hours=1), until=base + timedelta(hours=3)
    )
    assert window.events["company_id"].tolist() == ["c1", "c2"]


def test_no_event_log_is_off_unless_expected(tmp_path: Path) -> None:
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert read_event_window(tmp_path, since=at, until=at).state == "off"
    store = tmp_path / "store"
    write_snapshot(store, night("n1", at))
    config = AuditConfig.model_validate({"events": {"expected": True}})
    out = tmp_path / "out"
    run = audit_store(store, which="n1", as_of=at, config=config, out_dir=out)
    assert not run.result.incomplete
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "No event log" in html
    plain = audit_store(store, which="n1", as_of=at, out_dir=tmp_path / "o2")
    assert plain.fleet.events is not None
    assert plain.fleet.events.state == "off"
    assert "No event log" not in (tmp_path / "o2" / "report.html").read_text(encoding="utf-8")


def _timeline(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "event_type": [f"connection.{kind}" for _, kind, _ in rows],
            "at": [at for _, _, at in rows],
            "company_id": [c for c, _, _ in rows],
            "company_name": "Acme Ltd",
            "connection_id": "k1",
            "platform": "Xero",
        }
    )
    return connection_timelines(conform(frame, EVENTS_SCHEMA))


@pytest.fixture
def open_relink() -> Iterator[pd.DataFrame]:
    snap = Snapshot("s", datetime(2026, 12, 1, tzinfo=UTC))
    return audit(snap, as_of=datetime(2026, 12, 1, tzinfo=UTC)).resolved


def test_connection_incidents(open_relink: pd.DataFrame) -> None:
    now = datetime(2026, 12, 1, 6, tzinfo=UTC)
    empty = open_relink
    back = _timeline([("c1", "disconnected", "2026-11-30T14:02:00Z"),
                      ("c1", "reconnected", "2026-11-30T16:40:00Z")])  # fmt: skip
    out = connection_incidents(back, empty.iloc[:0], empty, now)
    assert out["incident_key"].tolist() == ["needs-relink|c1|k1|"]
    assert out.iloc[0]["state"] == "resolved"
    assert int(out.iloc[0]["nights_open"]) == 0
    # Disconnected again after reconnecting: tonight's findings tell it, nothing resolved.
    again = _timeline([("c1", "disconnected", "2026-11-30T14:02:00Z"),
                       ("c1", "reconnected", "2026-11-30T16:40:00Z"),
                       ("c1", "disconnected", "2026-11-30T20:00:00Z")])  # fmt: skip
    assert connection_incidents(again, empty.iloc[:0], empty, now).empty
    # Reconnected with no disconnection seen: nothing to tell.
    only_back = _timeline([("c1", "reconnected", "2026-11-30T16:40:00Z")])
    assert connection_incidents(only_back, empty.iloc[:0], empty, now).empty
    # Open last night and resolved tonight: the story is added to that row, no second row.
    was_open = out.assign(message="Connection k1 is Deauthorized.", nights_open=3)
    told = connection_incidents(back, empty.iloc[:0], was_open, now)
    assert len(told) == 1
    assert str(told.iloc[0]["message"]).startswith("Connection k1 is Deauthorized. Between")
    assert "disconnected at 2026-11-30 14:02 UTC" in str(told.iloc[0]["message"])
    # Open tonight under the same key: left to tonight's finding.
    assert connection_incidents(back, out, empty, now).empty


def test_prune_keeps_recent_days_and_what_the_next_audit_has_not_read(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for day in range(20, 31):
        at = datetime(2026, 11, day, 12, tzinfo=UTC)
        _write_segment(store, at.date().isoformat(), [encode_record(f"m{day}", at, "{}")])
    as_of = datetime(2026, 12, 1, 6, tzinfo=UTC)
    gone = prune_events(store, 3, as_of=as_of, keep_from=datetime(2026, 11, 25, 6, tzinfo=UTC))
    assert sorted(p.name for p in gone) == [f"date=2026-11-{d}" for d in range(20, 24)]
    gone = prune_events(store, 0, as_of=as_of)
    assert sorted(p.name for p in gone) == [f"date=2026-11-{d}" for d in range(24, 30)]
    left = sorted(p.name for p in (store / "events").iterdir())
    assert left == ["date=2026-11-30"]  # yesterday is never pruned

    result = CliRunner().invoke(
        app, ["prune", "--keep-days", "0", "--store", str(store), "--as-of", "2026-12-05"]
    )
    assert result.exit_code == 0, result.output
    assert "pruned 1 event log days" in result.output
    assert not any((store / "events").iterdir())


def test_hostile_names_in_connection_events_are_one_line_and_bounded() -> None:
    frame = pd.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "event_type": ["connection.disconnected", "connection.reconnected"],
            "at": ["2026-11-30T14:02:00Z", "2026-11-30T16:40:00Z"],
            "company_id": ["c1\r\nX-Injected: 1", "c1\r\nX-Injected: 1"],
            "company_name": ["<b>Evil</b>\u202e\n" + "x" * 500] * 2,
            "connection_id": ["k1", "k1"],
            "platform": ["Xero\x1b[2J", "Xero\x1b[2J"],
        }
    )
    window = EventWindow("on", events=conform(frame, EVENTS_SCHEMA))
    view = build_events_view(window)
    assert view is not None
    assert len(view.connections) == 1
    shown = view.connections[0]
    for value in (shown.company_id, shown.company_name or "", shown.platform or ""):
        assert not any(ch in value for ch in "\r\n\x1b\u202e")
    assert len(shown.company_name or "") <= 120
    assert [what for what, _ in shown.items] == ["disconnected", "reconnected"]
