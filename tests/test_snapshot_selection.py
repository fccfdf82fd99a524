"""One way to pick a night: ``auditor.store.select_snapshot`` and everything that uses it
(the store's readers, the Python API, the pipeline and ``auditor audit --snapshot``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import auditor
from auditor.cli import app
from auditor.findings import empty_findings
from auditor.result import AuditResult
from auditor.snapshot import Snapshot
from auditor.store import (
    SnapshotNotFoundError,
    SnapshotWriter,
    load_findings,
    load_snapshot,
    select_snapshot,
    select_snapshots,
    write_findings,
    write_snapshot,
)

AT = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Four empty nights: n0 (day 1), n1a and n1b (day 2), n2 (day 3, audited: n0, n1a)."""
    root = tmp_path / "store"
    nights = [("n0", AT), ("n1a", AT + timedelta(days=1)), ("n1b", AT + timedelta(days=1, hours=3))]
    nights.append(("n2", AT + timedelta(days=2)))
    for snapshot_id, at in nights:
        write_snapshot(root, Snapshot(snapshot_id=snapshot_id, snapshot_at=at))
    for snapshot_id in ("n0", "n1a"):
        write_findings(
            root,
            AuditResult(snapshot_id=snapshot_id, as_of=AT, findings=empty_findings()),
        )
    return root


def test_latest_previous_date_and_id(store: Path) -> None:
    assert select_snapshot(store).snapshot_id == "n2"
    assert select_snapshot(store, "previous").snapshot_id == "n1b"
    assert select_snapshot(store, "2024-05-02").snapshot_id == "n1b"  # latest of that day
    assert select_snapshot(store, "n1a").snapshot_id == "n1a"
    ref = select_snapshot(store, "n0")
    assert ref.snapshot_date == "2024-05-01"
    assert ref.snapshot_at == AT
    assert ref.has_findings
    assert ref.path.name == "n0"


def test_audited_and_before(store: Path) -> None:
    assert select_snapshot(store, audited=True).snapshot_id == "n1a"
    assert select_snapshot(store, "previous", audited=True).snapshot_id == "n0"
    assert select_snapshot(store, before="n1b").snapshot_id == "n1a"
    assert select_snapshot(store, audited=True, before="n1a").snapshot_id == "n0"
    assert [s.snapshot_id for s in select_snapshots(store, before="n2")] == ["n0", "n1a", "n1b"]
    assert [s.snapshot_id for s in select_snapshots(store, audited=True)] == ["n0", "n1a"]


def test_errors_name_what_the_store_holds(store: Path, tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFoundError, match=r"'1999-01-01'.*4 complete snapshots: n0"):
        select_snapshot(store, "1999-01-01")
    with pytest.raises(SnapshotNotFoundError, match="n2 has not been audited yet"):
        select_snapshot(store, "n2", audited=True)
    with pytest.raises(SnapshotNotFoundError, match="no complete snapshot in"):
        select_snapshot(tmp_path / "empty")
    with pytest.raises(SnapshotNotFoundError, match="before the latest one"):
        select_snapshot(store, "previous", before="n1a")
    with pytest.raises(ValueError, match="invalid snapshot"):
        select_snapshot(store, "../etc")
    SnapshotWriter.open(store, snapshot_id="half", snapshot_at=AT + timedelta(days=3)).close()
    with pytest.raises(SnapshotNotFoundError, match="not complete"):
        select_snapshot(store, "half")
    assert select_snapshot(store).snapshot_id == "n2"  # an unfinished night is never picked


def test_every_reader_picks_the_same_night(store: Path) -> None:
    for which in ("latest", "previous", "2024-05-02", "n0"):
        expected = select_snapshot(store, which).snapshot_id
        assert load_snapshot(store, which).snapshot_id == expected
        assert auditor.load_snapshot(store, which).snapshot_id == expected
    for which in ("latest", "previous", "2024-05-02"):
        assert load_findings(store, which) is not None
        assert len(auditor.load_findings(store, which)) == 0
    assert load_findings(store, "2024-05-03") is None  # n2: not audited
    with pytest.raises(auditor.FindingsNotFoundError, match="not been audited"):
        auditor.load_findings(store, "n2")


def test_audit_command_takes_every_selector(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["audit", "--store", str(store), "--as-of", "2024-05-04T06:00:00Z"]
    for which, audited in (("previous", "n1b"), ("2024-05-01", "n0"), ("latest", "n2")):
        out = tmp_path / f"out-{which}"
        # --overwrite: these nights were audited before at another as-of (issue 12: a re-audit
        # keeps the night's own audit unless asked), and the check is which night is written.
        result = runner.invoke(
            app, [*base, "--snapshot", which, "--out", str(out), "--overwrite"]
        )
        assert result.exit_code == 0, result.output
        meta = json.loads((select_snapshot(store, audited).path / "findings.json").read_text())
        assert meta["as_of"] == "2024-05-04T06:00:00+00:00"
        assert (out / "report.html").exists()
    missing = runner.invoke(app, [*base, "--snapshot", "1999-01-01"])
    assert missing.exit_code == 2
    assert "4 complete snapshots" in missing.output


def test_snapshot_option_refuses_a_bad_selector(store: Path) -> None:
    bad = CliRunner().invoke(app, ["audit", "--store", str(store), "--snapshot", "../x"])
    assert bad.exit_code == 2
    assert "latest, previous, a date YYYY-MM-DD or a snapshot id" in bad.output
