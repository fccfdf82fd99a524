"""The collector against the real sandbox over loopback: frames, request counts, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.collector import (
    collect,
    collect_sync,
    collect_to_store,
    parse_shard,
    reads_settings_tonight,
    shard_of,
)
from auditor.constants import FAILED_AFTER_SUCCESS_STATUSES, IN_PROGRESS_STATUSES, source_type_of
from auditor.sandbox import (
    CompanyRecord,
    Fleet,
    SandboxServer,
    generate_fleet,
)
from auditor.snapshot import SCHEMAS, conform
from auditor.store import load_snapshot

FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)
AT = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
FLEET_NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


def connect(server: SandboxServer, **kwargs: Any) -> CodatClient:
    return CodatClient(
        server.api_key,
        base_url=server.base_url,
        retry=kwargs.pop("retry", FAST),
        rate_limit=kwargs.pop("rate_limit", NO_LIMIT),
        **kwargs,
    )


def _in_progress(record: CompanyRecord) -> list[dict[str, Any]]:
    return [
        v
        for v in record.data_status.values()
        if isinstance(v, dict) and v.get("currentStatus") in IN_PROGRESS_STATUSES
    ]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(120, seed=11, now=FLEET_NOW)


async def test_frames_match_the_fleet(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    server = sandbox_server(fleet)
    async with connect(server) as client:
        snap = await collect(client, snapshot_at=AT, snapshot_id="t1")

    assert snap.snapshot_id == "t1"
    for name, frame in snap.frames().items():
        assert list(frame.columns) == list(SCHEMAS[name])
        pd.testing.assert_frame_equal(frame, conform(frame, SCHEMAS[name]))
    status = snap.status
    assert isinstance(status["data_type"].dtype, pd.CategoricalDtype)
    assert isinstance(status["platform"].dtype, pd.CategoricalDtype)
    assert str(status["last_successful_sync"].dtype) == "datetime64[ns, UTC]"
    assert (status["snapshot_at"] == pd.Timestamp(AT)).all()

    # Every company once in the companies frame; one row per connection.
    companies = snap.companies
    assert set(companies["company_id"]) == {r.id for r in fleet}
    expected_rows = sum(max(1, len(r.connections)) for r in fleet)
    assert len(companies) == expected_rows

    by_company = {cid: g for cid, g in status.groupby("company_id", observed=True)}
    readable = [r for r in fleet if r.data_status_error is None]
    assert readable
    assert len(readable) < len(fleet)
    for record in readable:
        entries = {k: v for k, v in record.data_status.items() if v is not None}
        rows = by_company.get(record.id)
        if not entries:
            assert rows is None
            continue
        assert rows is not None
        assert sorted(rows["data_type"].astype(str)) == sorted(entries)
        for row in rows.itertuples(index=False):
            entry = entries[str(row.data_type)]
            assert (None if pd.isna(row.current_status) else row.current_status) == entry.get(
                "currentStatus"
            )
            sync = entry.get("lastSuccessfulSync")
            if sync is None:
                assert pd.isna(row.last_successful_sync)
            else:
                assert row.last_successful_sync == pd.Timestamp(sync)
            assert row.source_type == source_type_of(str(row.data_type))
            # The connection serving the type has the type's source type.
            conns = [c for c in record.connections if c.get("sourceType") == row.source_type]
            if conns:
                assert row.connection_id in {c["id"] for c in conns}
                conn = next(c for c in conns if c["id"] == row.connection_id)
                assert row.platform == conn["platformName"]
                if any(c.get("status") == "Linked" for c in conns):
                    assert conn["status"] == "Linked"
            else:
                assert pd.isna(row.connection_id)

    # Companies whose dataStatus the sandbox refuses are in the errors frame.
    failing = {r.id: r for r in fleet if r.data_status_error is not None}
    errs = snap.errors.set_index("company_id")
    for cid, record in failing.items():
        assert cid in errs.index
        row = errs.loc[cid]
        assert row["status_code"] == record.data_status_error["statusCode"]  # type: ignore[index]
        assert row["endpoint"] == "get-company-data-status"
        assert row["attempts"] >= 1
    assert set(errs.index) == set(failing)


async def test_in_progress_types_are_timed(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    server = sandbox_server(fleet)
    async with connect(server) as client:
        snap = await collect(client, snapshot_at=AT)
    running = snap.status.loc[snap.status["current_status"].isin(IN_PROGRESS_STATUSES)]
    assert len(running) > 0
    with_id = running.loc[running["latest_sync_id"].notna()]
    assert with_id["latest_sync_requested"].notna().all()
    ops = {op["id"]: op for r in fleet for op in r.pull_operations}
    for row in with_id.itertuples(index=False):
        assert row.latest_sync_requested == pd.Timestamp(ops[row.latest_sync_id]["requested"])
    errored = snap.status.loc[
        snap.status["current_status"].isin(FAILED_AFTER_SUCCESS_STATUSES)
        & snap.status["latest_sync_id"].notna()
    ]
    # In-progress types, plus the error pull operations fetched for their text.
    assert set(snap.pull_operations["dataset_id"]) == set(with_id["latest_sync_id"]) | set(
        errored["latest_sync_id"]
    )
    # Nothing in progress elsewhere: no requested time (but the sync errors fetched).
    assert (
        snap.status.loc[
            ~snap.status["current_status"].isin(IN_PROGRESS_STATUSES)
            & ~snap.status["latest_sync_id"].isin(errored["latest_sync_id"]),
            "latest_sync_requested",
        ]
        .isna()
        .all()
    )


async def test_about_one_request_per_company(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    server = sandbox_server(fleet)
    n = len(fleet)
    async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
        await collect(client, snapshot_at=AT, page_size=50, pull_operations=False)
    by = server.stats.by_endpoint
    assert by["get-company-data-status"] == n
    assert by["list-companies"] == math.ceil(n / 50)
    assert by["get-profile-syncSettings"] == 1
    # Company sync settings: tonight's slice only, about one company in seven.
    tonight = sum(1 for r in fleet if reads_settings_tonight(r.id, AT, 7))
    assert by["get-company-syncSettings"] == tonight
    assert 0 < tonight < n / 4
    assert (server.stats.total - tonight) / n <= 1.05  # 120 + 3 pages + 1 settings

    # With pull operations: at most one more request per company with a sync running, plus
    # one per sync error (an empty store: every incident is new) within the budget.
    server.stats.reset()
    async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
        snap = await collect(client, snapshot_at=AT, error_details_budget=2)
    running = sum(1 for r in fleet if r.data_status_error is None and _in_progress(r))
    errors = sum(len(_errored(r)) for r in fleet if r.data_status_error is None)
    fetched = min(2, errors)
    extra = by_pull = server.stats.by_endpoint
    pulls = by_pull.get("get-pull-operation", 0) + by_pull.get("list-pull-operations", 0)
    assert pulls == running + fetched, extra
    assert server.stats.total == n + 2 + running + fetched + tonight
    assert snap.meta["error_details_fetched"] == fetched
    assert snap.meta["error_details_over_budget"] == errors - fetched


async def test_malformed_entry_keeps_the_others(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    base = next(r for r in fleet if r.data_status_error is None and len(r.data_status) > 5)
    broken = dict(base.data_status)
    bad_type = next(iter(broken))
    broken[bad_type] = {**broken[bad_type], "lastSuccessfulSync": "not a date"}
    broken["bills"] = "nonsense"
    record = CompanyRecord(company=base.company, data_status=broken)
    server = sandbox_server(Fleet([record], now=FLEET_NOW))
    async with connect(server) as client:
        snap = await collect(client, snapshot_at=AT)
    # The entry with an unreadable time is kept, that time null and its raw text kept;
    # only the entry that is not an object is lost (one error row).
    good = {k for k, v in broken.items() if v is not None and k != "bills"}
    assert set(snap.status["data_type"].astype(str)) == good
    row = snap.status.loc[snap.status["data_type"].astype(str) == bad_type].iloc[0]
    assert pd.isna(row["last_successful_sync"])
    assert row["last_successful_sync_raw"] == "not a date"
    assert row["unreadable_fields"] == "lastSuccessfulSync"
    assert len(snap.errors) == 1
    assert snap.errors["error"].str.contains("unreadable dataStatus entry 'bills'").all()
    assert set(snap.companies["company_id"]) == {base.id}
    assert snap.meta["malformed_fields"] == {"data_status.lastSuccessfulSync": 1}
    assert snap.meta["skipped_records"] == {"data_status": 1}


async def test_sharding_splits_the_fleet(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    server = sandbox_server(fleet)
    seen: list[str] = []
    async with connect(server) as client:
        for k in range(3):
            part = await collect(client, snapshot_at=AT, shard=(k, 3))
            ids = list(part.companies["company_id"].unique())
            assert all(shard_of(i, 3) == k for i in ids)
            seen += ids
    assert sorted(seen) == sorted(r.id for r in fleet)
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError, match="K/N"):
        parse_shard("3")
    with pytest.raises(ValueError, match="0 <= K < N"):
        parse_shard("3/3")


def test_sync_wrapper_and_settings(
    sandbox_server: Callable[..., SandboxServer], small_fleet: Fleet
) -> None:
    server = sandbox_server(small_fleet)
    snap = collect_sync(connect(server), snapshot_at=AT)
    assert len(snap.sync_settings) == len(small_fleet.sync_settings["settings"])
    assert snap.sync_settings["company_id"].isna().all()
    assert snap.sync_settings["sync_schedule_hours"].notna().any()
    # The fleet-file company with a dataStatusError: recorded, with Codat's error text.
    failing = [r for r in small_fleet if r.data_status_error is not None]
    assert failing
    for record in failing:
        row = snap.errors.loc[snap.errors["company_id"] == record.id].iloc[0]
        err = record.data_status_error
        assert err is not None
        assert row["status_code"] == err["statusCode"]
        assert row["error"] == err["error"]
        assert row["endpoint"] == "get-company-data-status"
        assert row["attempts"] == FAST.max_attempts
        assert row["company_name"] == record.company["name"]
    assert not snap.status["company_id"].isin([r.id for r in failing]).any()


async def test_second_night_reuses_known_pull_operations(
    sandbox_server: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """A sync still in progress with last night's ``latestSyncId`` (stuck) costs no request:
    its ``requested`` time comes from the previous snapshot's ``pull_operations``."""
    fleet = generate_fleet(200, seed=11, now=FLEET_NOW)
    clock = [FLEET_NOW]
    server = sandbox_server(fleet, clock=lambda: clock[0])
    nights = [FLEET_NOW, FLEET_NOW + timedelta(days=1)]

    def running(at: datetime) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for i, r in enumerate(fleet):
            rec = fleet.record_at(i, at)
            ids = {str(v["latestSyncId"]) for v in _in_progress(rec) if v.get("latestSyncId")}
            if r.data_status_error is None and ids:
                out[r.id] = ids
        return out

    first, second = running(nights[0]), running(nights[1])
    still = {c: ids & first.get(c, set()) for c, ids in second.items()}
    reusable = sum(len(v) for v in still.values())
    need_request = sum(1 for c, ids in second.items() if ids - still[c])
    assert reusable > 0  # the fleet has stuck syncs
    assert need_request < len(second)

    runs = []
    for at in nights:
        clock[0] = at
        server.stats.reset()
        async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
            runs.append(
                await collect_to_store(
                    client, tmp_path, snapshot_at=at, progress="off", error_details_budget=0
                )
            )
        by = server.stats.by_endpoint
        pulls = by.get("get-pull-operation", 0) + by.get("list-pull-operations", 0)
        expected = len(first) if at == nights[0] else need_request
        assert pulls == expected, by
        assert runs[-1].requests == server.stats.total

    assert runs[0].pull_operations_reused == 0
    assert runs[1].pull_operations_reused == reusable
    snap = load_snapshot(tmp_path, runs[1].snapshot_id)
    assert snap.meta["meta"]["pull_operations_reused"] == reusable  # type: ignore[index]
    # Every running sync is timed, reused or fetched, with the fleet's own requested time.
    status = snap.status
    rows = status.loc[
        status["current_status"].isin(IN_PROGRESS_STATUSES) & status["latest_sync_id"].notna()
    ]
    assert len(rows) == sum(len(v) for v in second.values())
    ops = {
        op["id"]: op["requested"]
        for i in range(len(fleet))
        for op in fleet.record_at(i, nights[1]).pull_operations
    }
    for row in rows.itertuples(index=False):
        assert row.latest_sync_requested == pd.Timestamp(ops[row.latest_sync_id])
    # Carried into tonight's pull_operations, so the night after can reuse them too.
    assert set(snap.pull_operations["dataset_id"]) == set(rows["latest_sync_id"])

    # Without reuse, every company with a running sync costs a request again.
    clock[0] = nights[1] + timedelta(hours=1)
    server.stats.reset()
    async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
        again = await collect_to_store(
            client,
            tmp_path,
            snapshot_at=clock[0],
            progress="off",
            reuse_pull_operations=False,
            error_details_budget=0,
        )
    assert again.pull_operations_reused == 0
    by = server.stats.by_endpoint
    pulls = by.get("get-pull-operation", 0) + by.get("list-pull-operations", 0)
    assert pulls == len(running(clock[0]))


def _errored(record: CompanyRecord) -> dict[str, str]:
    """``{dataType: latestSyncId}`` of the record's data types in a (non-auth) sync error."""
    return {
        t: str(v["latestSyncId"])
        for t, v in record.data_status.items()
        if isinstance(v, dict)
        and v.get("currentStatus") in FAILED_AFTER_SUCCESS_STATUSES
        and v.get("latestSyncId")
    }


async def test_error_text_is_fetched_for_new_incidents_only_within_the_budget(
    sandbox_server: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """Night 1 fetches the error pull operations up to the budget; night 2 carries those of
    incidents still open (no request) and fetches only the new ones (and those left over)."""
    fleet = generate_fleet(200, seed=11, now=FLEET_NOW)
    clock = [FLEET_NOW]
    server = sandbox_server(fleet, clock=lambda: clock[0])
    nights = [FLEET_NOW, FLEET_NOW + timedelta(days=1)]
    errored = [
        {r.id: e for i, r in enumerate(fleet) if r.data_status_error is None
         and (e := _errored(fleet.record_at(i, at)))}
        for at in nights
    ]  # fmt: skip
    total = [sum(len(v) for v in night.values()) for night in errored]
    assert total[0] > 3
    budget = total[0] - 2
    runs, snaps = [], []
    for at in nights:
        clock[0] = at
        async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
            run = await collect_to_store(
                client, tmp_path, snapshot_at=at, progress="off", error_details_budget=budget
            )
        runs.append(run)
        snaps.append(load_snapshot(tmp_path, run.snapshot_id))
    meta = [s.meta["meta"] for s in snaps]
    assert meta[0]["error_details_fetched"] == budget  # type: ignore[index]
    assert meta[0]["error_details_over_budget"] == 2  # type: ignore[index]
    assert meta[0]["error_details_carried"] == 0  # type: ignore[index]
    first_ops = snaps[0].pull_operations.set_index("dataset_id")
    fetched = set(first_ops.index) & {i for e in errored[0].values() for i in e.values()}
    assert len(fetched) == budget
    assert first_ops.loc[sorted(fetched), "error_message"].notna().all()
    # Night 2: an incident open on night 1 with its text is carried, not fetched again.
    still_open = sum(
        1
        for c, types in errored[1].items()
        for t in types
        if t in errored[0].get(c, {}) and errored[0][c][t] in fetched
    )
    assert meta[1]["error_details_carried"] >= still_open  # type: ignore[index]
    assert (
        meta[1]["error_details_fetched"] + meta[1]["error_details_carried"]  # type: ignore[index]
        + meta[1]["error_details_over_budget"]  # type: ignore[index]
        == total[1]
    )
    assert meta[1]["error_details_fetched"] <= total[1] - still_open  # type: ignore[index]
async def test_company_sync_settings_are_read_on_a_rolling_slice_and_carried(
    sandbox_server: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """Each night reads the own settings of one slice of companies (1/N); the other
    companies' latest known overrides come from the previous snapshot with their read_at."""
    fleet = generate_fleet(300, seed=11, now=FLEET_NOW)
    overriding = {r.id for r in fleet if r.sync_settings is not None}
    assert len(overriding) >= 4
    clock = [FLEET_NOW]
    server = sandbox_server(fleet, clock=lambda: clock[0])
    nights = [FLEET_NOW + timedelta(days=d) for d in range(3)]
    every = 2
    runs = []
    for at in nights:
        clock[0] = at
        server.stats.reset()
        async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
            runs.append(
                await collect_to_store(
                    client,
                    tmp_path,
                    snapshot_at=at,
                    progress="off",
                    company_settings_every_days=every,
                )
            )
        tonight = {r.id for r in fleet if reads_settings_tonight(r.id, at, every)}
        assert server.stats.by_endpoint.get("get-company-syncSettings", 0) == len(tonight)
        assert runs[-1].company_settings_read == len(tonight)
        assert 0 < len(tonight) < len(fleet)
        snap = load_snapshot(tmp_path, runs[-1].snapshot_id)
        settings = snap.sync_settings
        own = settings.loc[settings["company_id"].notna()]
        read_on = own.groupby("company_id")["read_at"].agg(["min", "max"])
        assert (read_on["min"] == read_on["max"]).all()  # one read time per company
        known = {
            r.id
            for r in fleet
            if r.id in overriding
            and any(reads_settings_tonight(r.id, n, every) for n in nights if n <= at)
        }
        assert set(own["company_id"]) == known
        for cid, row in read_on.iterrows():
            last = max(n for n in nights if n <= at and reads_settings_tonight(str(cid), n, every))
            assert row["max"] == pd.Timestamp(last)
        assert runs[-1].company_settings_carried == len(known - tonight)
        client_rows = settings.loc[settings["company_id"].isna()]
        assert (client_rows["read_at"] == pd.Timestamp(at)).all()
        assert client_rows["months_to_sync"].notna().sum() == 3  # the statements
    # By the second night every overriding company is known, each read within 2 nights.
    assert runs[0].company_settings_carried == 0
    assert runs[2].company_settings_carried > 0


async def test_company_settings_every_night_or_never(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    server = sandbox_server(fleet)
    async with connect(server, retry=RetryPolicy(max_attempts=1)) as client:
        every = await collect(client, snapshot_at=AT, company_settings_every_days=1)
        by = dict(server.stats.by_endpoint)
        server.stats.reset()
        never = await collect(client, snapshot_at=AT, company_settings_every_days=0)
    assert by["get-company-syncSettings"] == len(fleet)
    assert "get-company-syncSettings" not in server.stats.by_endpoint
    overriding = {r.id for r in fleet if r.sync_settings is not None}
    assert overriding
    assert set(every.sync_settings["company_id"].dropna()) == overriding
    assert never.sync_settings["company_id"].notna().sum() == 0
    # The history fields come through: e.g. a company fetching 12 months of statements.
    own = every.sync_settings.loc[every.sync_settings["company_id"].notna()]
    assert own["months_to_sync"].isin([12, 24]).any()


def test_every_company_is_in_exactly_one_slice_of_n_nights() -> None:
    ids = [f"company-{i}" for i in range(2000)]
    for every in (1, 3, 7):
        nights = [AT + timedelta(days=d) for d in range(every)]
        reads = {cid: sum(reads_settings_tonight(cid, n, every) for n in nights) for cid in ids}
        assert set(reads.values()) == {1}
    week = [AT + timedelta(days=d) for d in range(7)]
    sizes = [sum(reads_settings_tonight(c, n, 7) for c in ids) for n in week]
    assert min(sizes) > 2000 / 7 * 0.8  # about one in seven a night
    assert not any(reads_settings_tonight(c, AT, 0) for c in ids[:50])  # 0: never
    # Not lined up with the shards: a 7-shard machine reads part of its companies each night.
    shard0 = [c for c in ids if shard_of(c, 7) == 0]
    assert all(0 < sum(reads_settings_tonight(c, AT + timedelta(days=d), 7) for c in shard0)
               < len(shard0) for d in range(7))  # fmt: skip
