"""A streamed audit (one company-complete partition of the store at a time) gives exactly the
findings, resolved incidents and report facts of the audit of the whole snapshot in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from auditor.pipeline import AuditRun, audit_store
from auditor.snapshot import SCHEMAS, conform
from auditor.store import SnapshotWriter, iter_partitions, load_snapshot, partition_count
from auditor.testing.snapshots import AS_OF, SNAPSHOT_ID, STRESS, synthetic_snapshot

BATCH = 25  # companies per stored batch (part)
COMPANIES = 125


def _fleet_error(at: pd.Timestamp) -> pd.DataFrame:
    """A fleet-wide collection error (no company): kept in every partition, reported once."""
    return pd.DataFrame(
        {
            "company_id": [None],
            "company_name": [None],
            "endpoint": ["/companies"],
            "status_code": [503],
            "error": ["Service Unavailable"],
            "correlation_id": ["corr"],
            "attempts": [5],
            "snapshot_at": [at],
        }
    )


def _store(
    root: Path, night: int, *, repeat_company: bool = False, companies: int = COMPANIES
) -> Path:
    """A stored STRESS fleet, written ``BATCH`` companies a part as the collector writes it;
    ``night`` > 0: a later night (another seed, a day later)."""
    at = AS_OF + timedelta(days=night)
    sid = f"{SNAPSHOT_ID}-{night}"
    writer = SnapshotWriter.open(root, snapshot_id=sid, snapshot_at=at)
    profile = None
    for i, first in enumerate(range(0, companies, BATCH)):
        part = synthetic_snapshot(BATCH, seed=10 * night + i, profile=STRESS,
                                  first_company=first)
        frames = part.frames()
        for name in ("status", "companies"):
            frames[name] = frames[name].assign(snapshot_at=pd.Timestamp(at))
        if i == 2:
            frames["errors"] = pd.concat(
                [frames["errors"], _fleet_error(pd.Timestamp(at))], ignore_index=True
            )
        if repeat_company and i == 1:  # company c0000000 again, in a later batch
            first_part = synthetic_snapshot(1, seed=99, profile=STRESS)
            for name in ("status", "companies"):
                frames[name] = pd.concat([frames[name], first_part.frames()[name]],
                                         ignore_index=True)
        writer.write_batch({k: conform(f, SCHEMAS[k]) for k, f in frames.items()})
        profile = part.sync_settings
    assert profile is not None
    writer.write_profile_settings(profile)
    assert writer.finish({})
    return root


def _audit(store: Path, night: int, partition_companies: int | None) -> AuditRun:
    return audit_store(
        store,
        which=f"{SNAPSHOT_ID}-{night}",
        as_of=AS_OF + timedelta(days=night, hours=4),
        partition_companies=partition_companies,
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                  check_categorical=False)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    whole = tmp_path_factory.mktemp("whole")
    streamed = tmp_path_factory.mktemp("streamed")
    for night in (0, 1):
        _store(whole, night)
        _store(streamed, night)
    return whole, streamed


def test_partitions_are_the_stored_batches_grouped(stores: tuple[Path, Path]) -> None:
    store = stores[0]
    parts = list(iter_partitions(store, f"{SNAPSHOT_ID}-0", companies=60))
    # 5 batches of 25 companies, grouped into runs of at most 60: 2+2+1 batches.
    assert [len(p.companies) for p in parts] == [50, 50, 25]
    assert partition_count(store, f"{SNAPSHOT_ID}-0", companies=60) == 3
    whole = load_snapshot(store, f"{SNAPSHOT_ID}-0")
    for name in ("status", "companies", "pull_operations"):
        _same(whole.frames()[name].astype(str),
              pd.concat([p.frames()[name] for p in parts], ignore_index=True).astype(str))
    for p in parts:  # the fleet-wide error and the client-level settings in each partition
        assert p.errors["company_id"].isna().sum() == 1
        assert p.sync_settings["company_id"].isna().sum() == len(
            whole.sync_settings.loc[whole.sync_settings["company_id"].isna()]
        )


def test_streamed_audit_gives_the_findings_of_the_whole_snapshot(
    stores: tuple[Path, Path],
) -> None:
    whole_store, streamed_store = stores
    for night in (0, 1):  # the second night exercises the ledger (ongoing, new, resolved)
        whole = _audit(whole_store, night, None)
        streamed = _audit(streamed_store, night, 60)
        assert len(whole.snapshot.status) > 0
        assert streamed.snapshot.status.empty  # streamed: never held whole
        assert len(whole.result.findings) > 50
        _same(whole.result.findings, streamed.result.findings)
        _same(whole.result.resolved, streamed.result.resolved)
        assert whole.result.rule_failures == streamed.result.rule_failures
        assert replace(whole.fleet, events=None) == replace(streamed.fleet, events=None)
        assert whole.fleet.events is not None
        assert streamed.fleet.events is not None
        assert whole.fleet.events.state == streamed.fleet.events.state
        # The fleet freshness figure adds up over partitions, and the ranked actions (with
        # the pull operation ids they quote) are the same.
        assert whole.result.freshness is not None
        assert whole.result.freshness.monitored > 0
        assert whole.result.freshness == streamed.result.freshness
        key = ["incident_key"]
        _same(whole.result.covered.sort_values(key), streamed.result.covered.sort_values(key))
        assert whole.actions is not None
        assert streamed.actions is not None
        assert whole.actions["pull_operation_id"].notna().any()
        _same(whole.actions, streamed.actions)
    assert (whole.result.findings["state"].astype(str) == "ongoing").any()
    assert len(whole.result.resolved) > 0
    rules = set(whole.result.findings["rule"].astype(str))
    assert {"not-collected", "stale", "cross-type-skew"} <= rules, rules


def test_a_company_in_two_batches_is_audited_whole(tmp_path: Path) -> None:
    """Partitions that are not company-complete are never trusted: the whole snapshot is
    audited instead (same findings as with streaming off)."""
    a, b = tmp_path / "a", tmp_path / "b"
    _store(a, 0, repeat_company=True, companies=2 * BATCH)
    _store(b, 0, repeat_company=True, companies=2 * BATCH)
    streamed = _audit(a, 0, BATCH)
    whole = _audit(b, 0, None)
    assert len(streamed.snapshot.status) > 0  # fell back to the whole snapshot
    _same(whole.result.findings, streamed.result.findings)
