"""Issue 12 at the collector: a hostile fleet costs fields and records, never the night; a
refused key (401) mid-run stops the run, commits nothing as complete, and exits 2.

Items 2, 3, 4, 12 and 16, end to end into a real store (and the CLI for item 12).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hostile_codat import API_KEY, FakeCodat, LoopbackServer, good_status

from auditor.codat import (
    CodatAuthError,
    CodatClient,
    Company,
    Connection,
    DataStatus,
    RateLimitPolicy,
    RetryPolicy,
)
from auditor.collector import BatchBuilder, collect, collect_to_store
from auditor.engine import audit
from auditor.report import write_reports
from auditor.snapshot import STATUS_SCHEMA
from auditor.store import list_snapshots, load_snapshot

AT = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
ONE_TRY = RetryPolicy(max_attempts=1)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)


def client_for(fake: FakeCodat) -> CodatClient:
    return CodatClient(
        API_KEY,
        base_url="http://codat.test",
        retry=ONE_TRY,
        rate_limit=NO_LIMIT,
        transport=fake.transport(),
    )


def hostile_fleet() -> FakeCodat:
    companies: list[Any] = [
        {
            "id": "min-times",
            "name": "Min Ltd",
            "created": "0001-01-01T00:00:00",
            "lastSync": "0001-01-01T00:00:00Z",
            "dataConnections": [
                {
                    "id": "conn-min",
                    "platformName": "Xero",
                    "sourceType": "Accounting",
                    "status": "Linked",
                    "created": "0001-01-01T00:00:00",
                    "lastSync": "9999-12-31T23:59:59.9999999Z",
                }
            ],
        },
        {"id": "surrogate", "name": "Caf\ud800 Ltd", "dataConnections": []},
        {"id": "name-int", "name": 7, "created": "soon"},
        {"id": "name-list", "name": [1], "created": ""},
        {
            "id": "bad-conn",
            "name": None,
            "dataConnections": [
                {"id": "c-status", "status": 3, "platformName": "Sage", "sourceType": "Accounting"},
                {"id": "c-platform", "status": "Linked", "platformName": 5},
                {"id": None, "status": "Linked"},
            ],
        },
        {"id": "..", "name": "Dots"},
        {"id": ".", "name": "Dot"},
        {"id": None, "name": "nobody"},
        {"id": 12, "name": "int id"},
        "garbage",
    ]
    statuses: dict[str, Any] = {
        "min-times": {
            "invoices": good_status("invoices", lastSuccessfulSync="0001-01-01T00:00:00"),
            "bills": good_status("bills", lastSuccessfulSync="9999-12-31T23:59:59.9999999Z"),
            "customers": good_status("customers", lastSuccessfulSync="yesterday"),
            "suppliers": good_status("suppliers", lastSuccessfulSync="2026-11-18T03:00:00-05:00"),
        },
        "surrogate": {"invoices": good_status("invoices", currentStatus="Comp\udc00lete")},
        "name-int": {"invoices": good_status()},
        "name-list": {"invoices": good_status(currentStatus=17)},
        "bad-conn": {"invoices": good_status(), "payments": "not an entry"},
        "..": {"invoices": good_status()},
        ".": {"invoices": good_status()},
    }
    return FakeCodat(companies=companies, statuses=statuses)


async def test_a_hostile_fleet_is_snapshotted_whole_into_the_store(tmp_path: Path) -> None:
    fake = hostile_fleet()
    async with client_for(fake) as client:
        run = await collect_to_store(client, tmp_path, snapshot_at=AT, progress="off")
    assert run.complete
    snap = load_snapshot(tmp_path, run.snapshot_id)
    companies = snap.companies.set_index("connection_id", drop=False)

    # Every identifiable company is there, once per connection (item 3).
    assert sorted(set(snap.companies["company_id"])) == sorted(
        ["min-times", "surrogate", "name-int", "name-list", "bad-conn", "..", "."]
    )
    assert run.companies_collected == 7
    # Out-of-range times are missing values, not a dead snapshot (item 2).
    row = companies.loc["conn-min"]
    assert pd.isna(row["company_created"])
    assert pd.isna(row["company_last_sync"])
    assert pd.isna(row["connection_created"])
    assert pd.isna(row["connection_last_sync"])
    assert row["platform"] == "Xero"
    # Malformed non-essential fields are missing; connections without an id are dropped.
    by_company = snap.companies.set_index("company_id")
    assert pd.isna(by_company.loc["name-int", "company_name"])
    assert pd.isna(by_company.loc["name-int", "company_created"])
    assert pd.isna(by_company.loc["name-list", "company_created"])
    assert set(snap.companies.loc[snap.companies["company_id"] == "bad-conn", "connection_id"]) == {
        "c-status",
        "c-platform",
    }
    assert pd.isna(companies.loc["c-status", "connection_status"])
    assert companies.loc["c-status", "platform"] == "Sage"
    assert pd.isna(companies.loc["c-platform", "platform"])
    # Lone surrogates became U+FFFD once, and the store could write them (item 4).
    assert by_company.loc["surrogate", "company_name"] == "Caf\ufffd Ltd"

    status = snap.status.assign(
        company_id=snap.status["company_id"].astype(str),
        data_type=snap.status["data_type"].astype(str),
    ).set_index(["company_id", "data_type"])
    for data_type, raw in [
        ("invoices", "0001-01-01T00:00:00"),
        ("bills", "9999-12-31T23:59:59.9999999Z"),
        ("customers", "yesterday"),
    ]:
        entry = status.loc[("min-times", data_type)]
        assert pd.isna(entry["last_successful_sync"])
        assert entry["last_successful_sync_raw"] == raw
        assert entry["unreadable_fields"] == "lastSuccessfulSync"
        assert entry["current_status"] == "Complete"
    ok = status.loc[("min-times", "suppliers")]
    assert ok["last_successful_sync"] == pd.Timestamp("2026-11-18T08:00:00Z")
    assert pd.isna(ok["last_successful_sync_raw"])
    assert pd.isna(ok["unreadable_fields"])
    assert status.loc[("surrogate", "invoices"), "current_status"] == "Comp\ufffdlete"
    bad_status = status.loc[("name-list", "invoices")]
    assert pd.isna(bad_status["current_status"])
    assert bad_status["unreadable_fields"] == "currentStatus"
    assert pd.isna(bad_status["last_successful_sync_raw"])
    # Company ids made of dots were asked about under their own path (item 16).
    assert status.loc[("..", "invoices"), "current_status"] == "Complete"
    assert status.loc[(".", "invoices"), "current_status"] == "Complete"
    assert "/companies/%2E%2E/dataStatus" in fake.raw_paths
    assert "/companies/%2E/dataStatus" in fake.raw_paths
    assert not any(p in ("/dataStatus", "/companies/dataStatus") for p in fake.raw_paths)
    # The entry that is not an object is the one error row.
    assert snap.errors["company_id"].tolist() == ["bad-conn"]

    # Counted, in the run and in the manifest.
    expected_malformed = {
        "company.created": 2,
        "company.lastSync": 1,
        "company.name": 2,
        "connection.created": 1,
        "connection.lastSync": 1,
        "connection.platformName": 1,
        "connection.status": 1,
        "data_status.currentStatus": 1,
        "data_status.lastSuccessfulSync": 3,
    }
    expected_skipped = {"company": 3, "connection": 1, "data_status": 1}
    assert dict(run.malformed_fields) == expected_malformed
    assert dict(run.skipped_records) == expected_skipped
    meta: Any = snap.meta["meta"]
    assert meta["malformed_fields"] == expected_malformed
    assert meta["skipped_records"] == expected_skipped


async def test_a_hostile_snapshot_audits_and_reports(tmp_path: Path) -> None:
    # Null names, null times and the new columns go through every rule and the reports.
    async with client_for(hostile_fleet()) as client:
        snap = await collect(client, snapshot_at=AT)
    result = audit(snap, as_of=AT)
    assert set(result.findings["company_id"].dropna()) <= set(snap.company_ids)
    paths = write_reports(result, tmp_path)
    assert paths.report_html.exists()


def test_the_status_schema_documents_the_unreadable_columns() -> None:
    assert STATUS_SCHEMA["unreadable_fields"] == "str"
    assert STATUS_SCHEMA["last_successful_sync_raw"] == "str"


def test_frame_builder_turns_out_of_range_times_into_missing_values() -> None:
    # Models built without validation (model_construct) skip the parser's range check: the
    # frames still never fail on such a time.
    far = datetime(1, 1, 1, tzinfo=UTC)
    company = Company.model_construct(
        id="c1",
        name="n",
        created=far,
        last_sync=datetime(9999, 12, 31, tzinfo=UTC),
        data_connections=[
            Connection.model_construct(
                id="k", status="Linked", created=far, last_sync=None, source_type=None
            )
        ],
    )
    status = DataStatus.model_construct(
        data_type="invoices", current_status="Complete", last_successful_sync=far
    )
    builder = BatchBuilder(AT)
    builder.add_company(company, {"invoices": status})
    frames = builder.build()
    assert frames["companies"]["company_created"].isna().all()
    assert frames["companies"]["company_last_sync"].isna().all()
    assert frames["companies"]["connection_created"].isna().all()
    assert frames["status"]["last_successful_sync"].isna().all()
    assert str(frames["status"]["last_successful_sync"].dtype) == "datetime64[ns, UTC]"


# ----------------------------------------------------------- a 401 mid-run (item 12)


def revoked_after(n_ok: int, companies: int = 60) -> FakeCodat:
    ids = [f"co-{i:03d}" for i in range(companies)]

    def hook(company_id: str, calls: int) -> tuple[int, Any] | None:
        if calls > n_ok:
            return 401, {"statusCode": 401, "error": "Unauthorized", "service": "PublicApi"}
        return None

    return FakeCodat(
        companies=[{"id": i, "name": i} for i in ids],
        statuses={i: {"invoices": good_status()} for i in ids},
        status_hook=hook,
    )


async def test_a_401_mid_run_stops_the_run_and_commits_nothing_complete(tmp_path: Path) -> None:
    fake = revoked_after(5)
    async with client_for(fake) as client:
        with pytest.raises(CodatAuthError) as info:
            await collect_to_store(
                client, tmp_path, snapshot_at=AT, progress="off", concurrency=4, batch_size=2
            )
    assert info.value.status_code == 401
    snaps = list_snapshots(tmp_path)
    assert not snaps["complete"].any()  # resumable, never read as a night's snapshot
    assert list_snapshots(tmp_path, include_incomplete=False).empty
    # Every worker stopped: at most one request each after the first refusal.
    assert fake.status_calls <= 5 + 4


async def test_a_401_mid_run_in_memory_raises_too() -> None:
    fake = revoked_after(3)
    async with client_for(fake) as client:
        with pytest.raises(CodatAuthError):
            await collect(client, snapshot_at=AT, concurrency=3)


async def test_a_403_on_one_company_still_costs_only_that_company() -> None:
    fake = revoked_after(10**6, companies=5)
    fake.status_hook = lambda cid, calls: (
        (403, {"statusCode": 403, "error": "Forbidden"}) if cid == "co-002" else None
    )
    async with client_for(fake) as client:
        snap = await collect(client, snapshot_at=AT)
    assert snap.errors["company_id"].tolist() == ["co-002"]
    assert snap.errors["status_code"].tolist() == [403]
    assert len(snap.status) == 4


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "CODAT_"))}
    env["CODAT_API_KEY"] = API_KEY
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", ["snapshot", "run"])
def test_a_401_mid_run_exits_2(command: str, tmp_path: Path) -> None:
    fake = revoked_after(5)
    store = tmp_path / "store"
    with LoopbackServer(fake=fake) as server:
        if command == "snapshot":
            args = ["snapshot", "--store", str(store), "--base-url", server.base_url]
        else:
            config = tmp_path / "auditor.toml"
            config.write_text('[email]\nto = ["ops@example.com"]\n', encoding="utf-8")
            args = [
                "run",
                "--config",
                str(config),
                "--store",
                str(store),
                "--out",
                str(tmp_path / "out"),
                "--base-url",
                server.base_url,
                "--as-of",
                "2024-05-01T06:00:00Z",
                "--dry-run",
            ]
        proc = run_cli(*args, "--progress", "off")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refused the API key" in proc.stderr
    assert API_KEY not in proc.stdout + proc.stderr
    assert list_snapshots(store, include_incomplete=False).empty
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.html"))


def test_an_integer_beyond_int64_becomes_missing_not_an_error() -> None:
    """Found by the parsing property test: a pull operation's ``progress`` of 2**64 - 1 made
    the frame conversion raise (uint64 cannot be cast to int64)."""
    import pandas as pd

    from auditor.snapshot import PULL_OPERATIONS_SCHEMA, conform

    frame = pd.DataFrame(
        {"company_id": ["a", "b", "c", "d"], "progress": [2**64 - 1, 50, 2**63, 1.5]}
    )
    out = conform(frame, PULL_OPERATIONS_SCHEMA)
    assert out["progress"].tolist() == [pd.NA, 50, pd.NA, pd.NA]
