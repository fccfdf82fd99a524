"""The snapshot store: real Parquet files, manifest last, resume after SIGKILL, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest

from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.collector import collect, collect_to_store
from auditor.findings import conform_findings
from auditor.result import AuditResult
from auditor.sandbox import Fleet, SandboxOptions, SandboxServer, generate_fleet
from auditor.snapshot import FRAME_NAMES, SCHEMAS, Snapshot
from auditor.store import (
    SnapshotNotFoundError,
    SnapshotWriter,
    history,
    list_snapshots,
    load_findings,
    load_snapshot,
    prune,
    write_findings,
    write_snapshot,
)

FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)
AT = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
FLEET_NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


def connect(server: SandboxServer) -> CodatClient:
    return CodatClient(server.api_key, base_url=server.base_url, retry=FAST, rate_limit=NO_LIMIT)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(90, seed=5, now=FLEET_NOW)


@pytest.fixture(scope="module")
def reference(fleet: Fleet) -> Snapshot:
    """The fleet collected in memory, in one go (the truth the store must reproduce)."""
    with SandboxServer(fleet) as server:
        return _collect(server)


def _collect(server: SandboxServer, **kwargs: Any) -> Snapshot:
    import asyncio

    async def run() -> Snapshot:
        async with connect(server) as client:
            return await collect(client, snapshot_at=AT, **kwargs)

    return asyncio.run(run())


#: Row keys per frame: frames of different runs (shards, resumes) compare in this order.
KEYS = {
    "status": ["company_id", "data_type"],
    "companies": ["company_id", "connection_id"],
    "errors": ["company_id", "endpoint", "error"],
    "pull_operations": ["company_id", "dataset_id"],
    "sync_settings": ["company_id", "data_type"],
}


def ordered(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame.sort_values(KEYS[name], na_position="first").reset_index(drop=True)


def assert_same_frames(left: Snapshot, right: Snapshot, *, sort: bool = False) -> None:
    for name in FRAME_NAMES:
        a, b = left.frames()[name], right.frames()[name]
        if sort:
            a, b = ordered(a, name), ordered(b, name)
        pd.testing.assert_frame_equal(a, b, obj=name)


def test_write_then_load_round_trips(tmp_path: Path, reference: Snapshot) -> None:
    snap = replace(reference, snapshot_id="night-1")
    path = write_snapshot(tmp_path, snap)
    assert path == tmp_path / "snapshot_date=2024-05-01" / "night-1"
    assert (path / "manifest.json").exists()
    back = load_snapshot(tmp_path, "latest")
    assert back.snapshot_id == "night-1"
    assert back.snapshot_at == AT
    assert_same_frames(snap, back)
    assert back.meta["companies"] == snap.companies["company_id"].nunique()
    listed = list_snapshots(tmp_path)
    assert listed["snapshot_id"].tolist() == ["night-1"]
    assert bool(listed["complete"].iloc[0])
    with pytest.raises(ValueError, match="already complete"):
        write_snapshot(tmp_path, snap)


def test_other_readers_read_the_files_as_is(tmp_path: Path, reference: Snapshot) -> None:
    path = write_snapshot(tmp_path, replace(reference, snapshot_id="night-1"))
    for name in ("status", "companies"):
        frame = reference.frames()[name]
        glob = str(path / name / "*.parquet")
        rows, ids = duckdb.sql(
            f"SELECT count(*), count(DISTINCT company_id) FROM read_parquet('{glob}')"
        ).fetchall()[0]
        assert rows == len(frame)
        assert ids == frame["company_id"].nunique()
        assert pl.read_parquet(glob).height == len(frame)
        assert len(pd.read_parquet(path / name)) == len(frame)
    # Types survive: timestamps with a zone, categories as dictionary strings.
    described = duckdb.sql(
        f"DESCRIBE SELECT * FROM read_parquet('{path / 'status' / '*.parquet'}')"
    ).fetchall()
    kinds = {row[0]: row[1] for row in described}
    # DuckDB adds the hive partition column of the path (snapshot_date=...).
    assert [k for k in kinds if k != "snapshot_date"] == list(SCHEMAS["status"])
    assert kinds["last_successful_sync"].startswith("TIMESTAMP WITH TIME ZONE")
    assert kinds["data_type"] == "VARCHAR"
    # The join keys are categoricals in memory and plain strings on disk: other tools join
    # status to companies without casts, and load_snapshot reads them back as categoricals.
    assert kinds["company_id"] == kinds["connection_id"] == "VARCHAR"
    status_glob, companies_glob = (str(path / n / "*.parquet") for n in ("status", "companies"))
    joined = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{status_glob}') s "
        f"JOIN (SELECT DISTINCT company_id FROM read_parquet('{companies_glob}')) c "
        "USING (company_id)"
    ).fetchall()[0][0]
    assert joined == len(reference.status)
    pl_status = pl.read_parquet(status_glob)
    assert pl_status.schema["company_id"] == pl.String
    assert pl_status.join(
        pl.read_parquet(companies_glob).select("company_id").unique(), on="company_id"
    ).height == len(reference.status)
    assert isinstance(reference.status["company_id"].dtype, pd.CategoricalDtype)
    stale = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{path / 'status' / '*.parquet'}') "
        "WHERE last_successful_sync < TIMESTAMPTZ '2024-04-01 00:00:00+00'"
    ).fetchall()[0]
    expected = reference.status["last_successful_sync"] < pd.Timestamp("2024-04-01", tz="UTC")
    assert stale[0] == int(expected.sum())


def test_snapshot_without_manifest_is_never_read(tmp_path: Path, reference: Snapshot) -> None:
    write_snapshot(tmp_path, replace(reference, snapshot_id="done"))
    writer = SnapshotWriter.open(tmp_path, snapshot_id="half", snapshot_at=AT + timedelta(hours=1))
    half = reference.partition(reference.companies["company_id"].unique()[:10])
    writer.write_batch(half.frames())
    writer.close()
    assert load_snapshot(tmp_path).snapshot_id == "done"
    with pytest.raises(SnapshotNotFoundError, match="not complete"):
        load_snapshot(tmp_path, "half")
    listed = list_snapshots(tmp_path).set_index("snapshot_id")
    assert not bool(listed.loc["half", "complete"])
    assert bool(listed.loc["done", "complete"])


def test_shards_merge_into_the_unsharded_snapshot(
    tmp_path: Path, fleet: Fleet, reference: Snapshot
) -> None:
    import asyncio

    with SandboxServer(fleet) as server:

        async def run(k: int) -> bool:
            async with connect(server) as client:
                result = await collect_to_store(
                    client,
                    tmp_path,
                    snapshot_at=AT,
                    snapshot_id="sharded",
                    shard=(k, 3),
                    batch_size=7,
                    progress="off",
                )
            return result.complete

        assert asyncio.run(run(2)) is False
        with pytest.raises(SnapshotNotFoundError):
            load_snapshot(tmp_path, "sharded")
        assert asyncio.run(run(0)) is False
        assert asyncio.run(run(1)) is True
    merged = load_snapshot(tmp_path, "sharded")
    assert_same_frames(reference, merged, sort=True)
    assert merged.meta["shards"] == 3


def _snapshot_cmd(server: SandboxServer, store: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CODAT_API_KEY": server.api_key}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from auditor.cli import main; main()",
            "snapshot",
            "--base-url",
            server.base_url,
            "--store",
            str(store),
            "--rate-limit",
            "0",
            "--progress",
            "log",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _committed_companies(store: Path, snapshot_id: str) -> int:
    parts = list(store.glob(f"snapshot_date=*/{snapshot_id}/companies/part-*.parquet"))
    return len(parts)


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tmp_path: Path) -> None:
    generated = generate_fleet(240, seed=9, now=FLEET_NOW)
    # Without unreadable companies, so that retries do not blur the request count.
    fleet = Fleet([r for r in generated if r.data_status_error is None], now=FLEET_NOW)
    # A previous, complete night: what readers must see while tonight's run is going.
    with SandboxServer(fleet) as fast:
        previous = _collect(fast)
    write_snapshot(tmp_path, replace(previous, snapshot_id="yesterday"))

    with SandboxServer(fleet, SandboxOptions(latency_ms=25)) as server:
        proc = _snapshot_cmd(
            server, tmp_path, "--snapshot-id", "tonight", "--batch-size", "10",
            "--concurrency", "4",
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while _committed_companies(tmp_path, "tonight") < 3:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no batch was written"
                time.sleep(0.05)
            # Mid-run: the reader sees the previous complete snapshot only.
            assert load_snapshot(tmp_path, "latest").snapshot_id == "yesterday"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        written = _committed_companies(tmp_path, "tonight")
        assert 3 <= written < 24, "the run was not killed mid-way"
        assert load_snapshot(tmp_path, "latest").snapshot_id == "yesterday"

        served_before = server.stats.by_endpoint.get("get-company-data-status", 0)
        resumed = _snapshot_cmd(server, tmp_path, "--resume", "--concurrency", "8")
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err.decode()
        assert b"complete" in out
        assert server.api_key.encode() not in out + err
        served = server.stats.by_endpoint["get-company-data-status"] - served_before
    tonight = load_snapshot(tmp_path, "latest")
    assert tonight.snapshot_id == "tonight"
    # Only the companies not yet written were collected again...
    done_before = tonight.meta["meta"]["companies_skipped"]
    assert done_before >= 30
    assert served == len(fleet) - done_before
    # ... and the snapshot has every company exactly once.
    ids = tonight.companies.drop_duplicates(["company_id", "connection_id"])
    assert len(ids) == len(tonight.companies)
    assert set(tonight.companies["company_id"]) == {r.id for r in fleet}
    assert not tonight.status.duplicated(["company_id", "data_type"]).any()
    expected = ordered(previous.status, "status").drop(columns="snapshot_at")
    got = ordered(tonight.status, "status").drop(columns="snapshot_at")
    pd.testing.assert_frame_equal(expected, got)
    assert tonight.errors.empty
    assert previous.errors.empty


def _findings(snapshot_id: str, rows: list[tuple[str, bool]]) -> AuditResult:
    frame = conform_findings(
        pd.DataFrame(
            {
                "rule": ["stale"] * len(rows),
                "severity": [s for s, _ in rows],
                "company_id": [f"c{i}" for i in range(len(rows))],
                "snoozed": [z for _, z in rows],
            }
        )
    )
    return AuditResult(snapshot_id=snapshot_id, as_of=AT, findings=frame)


def test_findings_history_and_prune(tmp_path: Path, reference: Snapshot) -> None:
    small = reference.partition(reference.companies["company_id"].unique()[:5])
    for day in range(4):
        at = AT + timedelta(days=day)
        write_snapshot(tmp_path, replace(small, snapshot_id=f"n{day}", snapshot_at=at))
    assert load_findings(tmp_path) is None
    write_findings(tmp_path, _findings("n0", [("error", False), ("warning", False)]))
    write_findings(tmp_path, _findings("n1", [("error", False), ("error", True)]))
    write_findings(tmp_path, _findings("n2", [("warning", False)]))

    latest = load_findings(tmp_path, "latest")
    assert latest is not None
    assert latest["severity"].tolist() == ["warning"]
    previous = load_findings(tmp_path, "previous")
    assert previous is not None
    assert len(previous) == 2
    before = load_findings(tmp_path, "latest", before="n2")
    assert before is not None
    assert len(before) == 2
    assert load_findings(tmp_path, "n3") is None

    hist = history(tmp_path, days=30)
    assert list(hist.columns) == ["snapshot_date", "snapshot_id", "severity", "count"]
    counts = {(r.snapshot_id, r.severity): r.count for r in hist.itertuples()}
    assert counts[("n1", "error")] == 1  # the snoozed one does not count
    assert counts[("n1", "warning")] == 0
    assert counts[("n2", "warning")] == 1
    assert len(history(tmp_path, days=1)) == 2  # only the latest night with findings

    deleted = prune(tmp_path, keep_days=1, as_of=AT + timedelta(days=3))
    assert sorted(p.name for p in deleted) == ["n0", "n1"]
    assert list_snapshots(tmp_path)["snapshot_id"].tolist() == ["n2", "n3"]
    # The latest complete snapshot survives any pruning.
    prune(tmp_path, keep_days=0, as_of=AT + timedelta(days=30))
    assert list_snapshots(tmp_path)["snapshot_id"].tolist() == ["n3"]
    manifest = json.loads(next(tmp_path.glob("*/n3/manifest.json")).read_text())
    assert manifest["snapshot_id"] == "n3"


def test_manifest_counts_distinct_companies_part_by_part(
    tmp_path: Path, reference: Snapshot
) -> None:
    """The manifest's company count is read one part at a time (hashes of the ids, not the
    ids of the whole fleet); a company written in two parts is still counted once."""
    ids = reference.companies["company_id"].unique()
    first, second = reference.partition(ids[:10]), reference.partition(ids[5:15])
    writer = SnapshotWriter.open(tmp_path, snapshot_id="twice", snapshot_at=AT)
    writer.write_batch(first.frames())
    writer.write_batch(second.frames())  # ids[5:10] come twice
    assert writer.finish()
    snap = load_snapshot(tmp_path, "twice")
    assert snap.meta["companies"] == 15 == snap.companies["company_id"].nunique()

    writer = SnapshotWriter.open(tmp_path / "b", snapshot_id="once", snapshot_at=AT)
    writer.write_batch(reference.partition(ids[:10]).frames())
    writer.write_batch(reference.partition(ids[10:25]).frames())
    assert writer.finish()
    assert load_snapshot(tmp_path / "b", "once").meta["companies"] == 25
