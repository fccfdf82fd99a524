"""The generated fleet and fleet files: determinism, realism, round trip, clear errors."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditor.constants import (
    ALL_DATA_TYPES,
    ALL_STATUSES,
    FAILED_AFTER_SUCCESS_STATUSES,
    IN_PROGRESS_STATUSES,
    source_type_of,
)
from auditor.sandbox import (
    CompanyRecord,
    Fleet,
    FleetFileError,
    default_sync_settings,
    generate_fleet,
    load_fleet,
)

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _dump(fleet: Fleet) -> str:
    return json.dumps(fleet.to_dict(), sort_keys=True)


def test_generation_is_deterministic() -> None:
    a = generate_fleet(120, seed=7, now=NOW)
    b = generate_fleet(120, seed=7, now=NOW)
    assert _dump(a) == _dump(b)
    assert _dump(generate_fleet(120, seed=8, now=NOW)) != _dump(a)


def test_now_only_shifts_timestamps() -> None:
    a = generate_fleet(30, seed=2, now=NOW)
    b = generate_fleet(30, seed=2, now=NOW + timedelta(days=3))
    ra, rb = a.records[5], b.records[5]
    assert ra.company["id"] == rb.company["id"]
    for data_type, entry in ra.data_status.items():
        other = rb.data_status[data_type]
        assert entry["currentStatus"] == other["currentStatus"]
        if "lastSuccessfulSync" in entry:
            shift = _time(other["lastSuccessfulSync"]) - _time(entry["lastSuccessfulSync"])
            assert shift == timedelta(days=3)


def test_generated_records_are_consistent() -> None:
    fleet = generate_fleet(300, seed=1, now=NOW)
    assert len(set(fleet.company_ids)) == 300
    for record in fleet:
        ops = {op["id"]: op for op in record.pull_operations}
        requested = [op["requested"] for op in record.pull_operations]
        assert requested == sorted(requested, reverse=True)  # newest first
        sources = {c["sourceType"] for c in record.connections}
        for data_type, entry in record.data_status.items():
            assert entry["dataType"] == data_type
            assert entry["currentStatus"] in ALL_STATUSES
            latest = ops[entry["latestSyncId"]]
            assert latest["status"] == entry["currentStatus"]
            assert latest["dataType"] == data_type
            if "lastSuccessfulSync" in entry:
                assert _time(entry["lastSuccessfulSync"]) <= NOW
                success = ops[entry["latestSuccessfulSyncId"]]
                assert success["status"] == "Complete"
                assert success["completed"] == entry["lastSuccessfulSync"]
            if entry["currentStatus"] in IN_PROGRESS_STATUSES:
                assert "completed" not in latest
            conn = next(c for c in record.connections if c["id"] == latest["connectionId"])
            assert conn["sourceType"] == source_type_of(data_type) in sources


def _problems(fleet: Fleet) -> Counter[str]:
    """Count, per kind of problem the audit rules look for, the companies that have it."""
    seen: Counter[str] = Counter()
    schedule = {s["dataType"]: s["syncSchedule"] for s in fleet.sync_settings["settings"]}
    expected = {s["dataType"] for s in fleet.sync_settings["settings"] if s["fetchOnFirstLink"]}
    for record in fleet:
        kinds: set[str] = set()
        if record.data_status_error is not None:
            kinds.add("not-collected")
        statuses = record.connections
        linked = {c["sourceType"] for c in statuses if c["status"] == "Linked"}
        if any(c["status"] == "Deauthorized" for c in statuses):
            kinds.add("needs-relink")
        if not statuses:
            kinds.add("no-connection")
        if any(c["status"] == "PendingAuth" for c in statuses):
            kinds.add("pending-auth")
        if any(c["status"] == "Unlinked" for c in statuses):
            kinds.add("unlinked")
        ops = {op["id"]: op for op in record.pull_operations}
        newest: datetime | None = None
        groups: dict[str, list[datetime]] = {}
        for data_type, entry in record.data_status.items():
            status = entry["currentStatus"]
            last = entry.get("lastSuccessfulSync")
            if status == "AuthError":
                kinds.add("needs-relink")
            if status == "NotSupported":
                kinds.add("not-supported")
            if status in FAILED_AFTER_SUCCESS_STATUSES:
                kinds.add("failed-after-success" if last else "first-sync-failed")
            if status in IN_PROGRESS_STATUSES:
                age = NOW - _time(ops[entry["latestSyncId"]]["requested"])
                if age > timedelta(hours=24):
                    kinds.add("stuck-sync-error")
                elif age > timedelta(hours=6):
                    kinds.add("stuck-sync-warning")
                if any(c["integrationKey"] == "pqsw" for c in record.connections):
                    kinds.add("stuck-on-premise")
            if last:
                moment = _time(last)
                newest = moment if newest is None or moment > newest else newest
                if NOW - moment > timedelta(hours=4 * schedule[data_type]):
                    kinds.add("stale-error")
                elif NOW - moment > timedelta(hours=2 * schedule[data_type]):
                    kinds.add("stale-warning")
                if data_type in ("invoices", "payments", "customers", "creditNotes"):
                    groups.setdefault("ar", []).append(moment)
        if groups.get("ar") and max(groups["ar"]) - min(groups["ar"]) > timedelta(hours=6):
            kinds.add("cross-type-skew")
        if "Accounting" in linked:
            missing = [
                t
                for t in expected
                if t not in record.data_status and not t.startswith(("banking-", "commerce-"))
            ]
            if missing:
                kinds.add("never-synced")
            if newest is not None and NOW - newest > timedelta(days=30):
                kinds.add("token-expiry-error")
            elif newest is not None and NOW - newest > timedelta(days=25):
                kinds.add("token-expiry-warning")
        if record.sync_settings is not None:
            kinds.add("company-sync-settings")
        seen.update(kinds)
    return seen


def test_500_companies_show_every_kind_of_problem() -> None:
    fleet = generate_fleet(500, seed=1, now=NOW)
    seen = _problems(fleet)
    for kind in (
        "not-collected", "needs-relink", "no-connection", "pending-auth", "unlinked",
        "not-supported", "failed-after-success", "first-sync-failed", "stuck-sync-error",
        "stuck-sync-warning", "stuck-on-premise", "stale-error", "stale-warning",
        "cross-type-skew", "never-synced", "token-expiry-error", "token-expiry-warning",
        "company-sync-settings",
    ):  # fmt: skip
        assert seen[kind] > 0, f"no company with {kind}: {dict(seen)}"
    # ... and the fleet is mostly healthy: most data types Complete, most companies fresh
    statuses = Counter(e["currentStatus"] for r in fleet for e in r.data_status.values())
    assert statuses["Complete"] / sum(statuses.values()) > 0.75
    assert seen["stale-error"] < 0.35 * len(fleet)
    platforms = Counter(c["platformName"] for r in fleet for c in r.connections)
    assert {"Xero", "QuickBooks Online", "QuickBooks Desktop", "Sage Intacct", "Oracle NetSuite",
            "FreeAgent", "Plaid", "Shopify"} <= set(platforms)  # fmt: skip
    assert platforms["Xero"] > platforms["FreeAgent"]
    extra = sum(1 for r in fleet if len(r.connections) > 1)
    assert 0.1 * len(fleet) < extra < 0.4 * len(fleet)


def test_sync_settings_are_realistic() -> None:
    settings = default_sync_settings()
    by_type = {s["dataType"]: s for s in settings["settings"]}
    assert set(by_type) == set(ALL_DATA_TYPES)
    schedules = Counter(s["syncSchedule"] for s in by_type.values())
    assert schedules[24] > schedules[168] > 0
    assert not by_type["transfers"]["fetchOnFirstLink"]
    assert by_type["invoices"]["fetchOnFirstLink"]


def test_100k_companies_generate_in_seconds() -> None:
    start = time.perf_counter()
    fleet = generate_fleet(100_000, seed=3, now=NOW)
    elapsed = time.perf_counter() - start
    assert len(fleet) == 100_000
    assert elapsed < 20, f"generation took {elapsed:.1f} s"
    start = time.perf_counter()
    for i in range(0, 100_000, 1000):
        assert fleet.records[i].id == fleet.company_ids[i]
    assert time.perf_counter() - start < 5


def test_fleet_file_round_trip(tmp_path: Path) -> None:
    fleet = generate_fleet(40, seed=5, now=NOW)
    path = fleet.to_file(tmp_path / "fleet.json")
    loaded = load_fleet(path)
    assert loaded.now == NOW
    assert loaded.company_ids == fleet.company_ids
    assert _dump(loaded) == _dump(fleet)
    again = loaded.to_file(tmp_path / "again.json")
    assert again.read_text() == path.read_text()


def test_crafted_fleet_from_records(tmp_path: Path) -> None:
    record = CompanyRecord(
        company={"id": "c1", "name": "One", "dataConnections": []},
        data_status={"invoices": {"dataType": "invoices"}},  # a quirk, kept verbatim
    )
    fleet = Fleet([record])
    loaded = load_fleet(fleet.to_file(tmp_path / "one.json"))
    assert loaded.get("c1") == record
    assert loaded.get("nope") is None
    assert loaded.sync_settings == default_sync_settings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "top level must be an object"),
        ({}, "'companies' must be a list"),
        ({"companies": [1]}, r"companies\[0\]: expected an object"),
        ({"companies": [{"company": {}}]}, r"companies\[0\]: 'company.id'"),
        (
            {"companies": [{"company": {"id": "a"}, "dataStatus": []}]},
            "'dataStatus' must be an object",
        ),
        (
            {"companies": [{"company": {"id": "a"}, "dataStatusError": {"statusCode": 200}}]},
            "HTTP error status",
        ),
        (
            {"companies": [{"company": {"id": "a"}}, {"company": {"id": "a"}}]},
            "duplicate company id 'a'",
        ),
        ({"companies": [], "now": "yesterday"}, "'now' is not an ISO-8601 time"),
    ],
)
def test_bad_fleet_files_say_what_is_wrong(tmp_path: Path, data: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FleetFileError, match=message) as caught:
        load_fleet(path)
    assert str(path) in str(caught.value)


def test_unreadable_fleet_files(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="cannot read"):
        load_fleet(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"companies": [\n')
    with pytest.raises(FleetFileError, match=r"not valid JSON \(line 2"):
        load_fleet(broken)
