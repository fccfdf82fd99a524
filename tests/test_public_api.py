"""The public API (``import auditor``): its surface, its laziness, and its behaviour on a store.

Like httpx's ``test_exported_members``: the exported names are a fixed, reviewed set, each is
documented, and every CLI command has its function in the API.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import auditor
from auditor.store import write_snapshot

AS_OF = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)

EXPECTED = {
    "CONSISTENCY_COLUMNS",
    "FINDINGS_COLUMNS",
    "RULES",
    "AuditConfig",
    "AuditResult",
    "AuditRun",
    "CodatClient",
    "ConfigError",
    "FindingsNotFoundError",
    "ListenerServer",
    "RateLimitPolicy",
    "Rule",
    "RunFailedError",
    "SandboxServer",
    "Snapshot",
    "SnapshotNotFoundError",
    "Snooze",
    "__version__",
    "apply_refreshes",
    "audit",
    "audit_store",
    "build_digest",
    "collect",
    "collect_to_store",
    "crosses_fail_level",
    "deliver_digests",
    "findings_history",
    "generate_fleet",
    "get_rule",
    "group_consistency",
    "history",
    "list_snapshots",
    "load_config",
    "load_events",
    "load_findings",
    "load_fleet",
    "load_snapshot",
    "load_snoozes",
    "plan_refreshes",
    "prune",
    "run_demo",
    "run_nightly",
    "snapshot_history",
    "write_refreshes",
    "write_reports",
}

#: Each CLI command and the public functions that do its work.
CLI_TO_API = {
    "sandbox": ["SandboxServer", "generate_fleet", "load_fleet"],
    "snapshot": ["collect_to_store", "CodatClient"],
    "audit": ["audit_store", "audit"],
    "demo": ["run_demo"],
    "rules": ["RULES", "get_rule"],
    "run": ["run_nightly"],
    "refresh": ["plan_refreshes", "apply_refreshes", "write_refreshes"],
    "prune": ["prune"],
    "snapshots": ["list_snapshots"],
    "listen": ["ListenerServer", "load_events"],
}


# --- the surface ---------------------------------------------------------------------------


def test_all_is_the_reviewed_set() -> None:
    assert set(auditor.__all__) == EXPECTED
    assert len(auditor.__all__) == len(set(auditor.__all__))


def test_every_exported_member_resolves_and_is_documented() -> None:
    for name in auditor.__all__:
        member = getattr(auditor, name)
        assert member is not None
        assert name in dir(auditor)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__.startswith("auditor."), name
            assert inspect.getdoc(member), f"{name} has no docstring"
    assert isinstance(auditor.__version__, str)


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = auditor.nope  # type: ignore[attr-defined]


def test_every_cli_command_has_its_api() -> None:
    import auditor.cli.commands  # registers the commands
    from auditor.cli._app import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    assert commands == set(CLI_TO_API), "a new CLI command needs its function in the API"
    for names in CLI_TO_API.values():
        for name in names:
            assert name in auditor.__all__


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_import_is_lazy() -> None:
    out = _python("import sys, auditor; print(sorted(m for m in ('pandas', 'pydantic', "
                  "'httpx', 'auditor.api') if m in sys.modules))")
    assert out == "[]"


def test_audit_is_the_function_after_the_engine_is_imported() -> None:
    out = _python(
        "import auditor.pipeline, auditor.engine, auditor\n"
        "from auditor import audit\n"
        "print(audit is auditor.audit, callable(audit), audit.__module__)"
    )
    assert out == "True True auditor.api"


def test_no_export_is_shadowed_by_a_submodule() -> None:
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(auditor.__path__)}
    assert not set(auditor.__all__) & submodules


# --- behaviour on a real store ---------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    return auditor.run_demo(out, as_of=AS_OF, companies=40, nights=2, progress="off").store


def test_load_snapshot_selects_nights(store: Path) -> None:
    latest = auditor.load_snapshot(store)
    previous = auditor.load_snapshot(store, "previous")
    assert latest.snapshot_at == AS_OF
    assert previous.snapshot_at == AS_OF - timedelta(days=1)
    assert auditor.load_snapshot(store, latest.snapshot_id).snapshot_id == latest.snapshot_id
    by_date = auditor.load_snapshot(store, f"{previous.snapshot_at:%Y-%m-%d}")
    assert by_date.snapshot_id == previous.snapshot_id
    only = auditor.load_snapshot(store, frames=("status",))
    assert len(only.status) == len(latest.status)
    assert only.companies.empty
    with pytest.raises(auditor.SnapshotNotFoundError):
        auditor.load_snapshot(store, "1999-01-01")
    with pytest.raises(ValueError, match="unknown frame"):
        auditor.load_snapshot(store, frames=("nope",))


def test_load_findings_and_a_snapshot_never_audited(store: Path, tmp_path: Path) -> None:
    findings = auditor.load_findings(store)
    assert tuple(findings.columns) == auditor.FINDINGS_COLUMNS
    assert (findings["as_of"] == pd.Timestamp(AS_OF)).all()
    resolved = auditor.load_findings(store, kind="resolved")
    assert set(resolved["state"].astype("string")) <= {"resolved"}
    # A snapshot on its own, not audited: a clear error naming the command to run.
    copy = tmp_path / "store"
    snap = auditor.load_snapshot(store)
    write_snapshot(copy, replace(snap, meta={}))
    with pytest.raises(auditor.FindingsNotFoundError, match="auditor audit --store"):
        auditor.load_findings(copy)


def test_audit_reproduces_the_stored_audit_and_chains_nights(store: Path) -> None:
    first = auditor.load_snapshot(store, "previous")
    last = auditor.load_snapshot(store)
    night1 = auditor.audit(first, as_of=first.snapshot_at)
    assert set(night1.findings["state"].astype("string")) <= {"new"}
    night2 = auditor.audit(last, as_of=last.snapshot_at, previous=night1)
    stored = auditor.load_findings(store)
    cols = ["incident_key", "severity", "state", "nights_open"]
    pd.testing.assert_frame_equal(
        night2.findings[cols].astype("string").reset_index(drop=True),
        stored[cols].astype("string").reset_index(drop=True),
    )
    # A stored findings table works as `previous` too.
    stored_previous = auditor.load_findings(store, "previous")
    again = auditor.audit(last, as_of=last.snapshot_at, previous=stored_previous)
    assert len(again.findings) == len(night2.findings)


def test_audit_accepts_frames_and_a_config_file(store: Path, tmp_path: Path) -> None:
    snap = auditor.load_snapshot(store)
    whole = auditor.audit(snap, as_of=AS_OF)
    assert snap.events is not None  # the demo's store has the listener's event log
    from_frames = auditor.audit({**snap.frames(), "events": snap.events}, as_of=AS_OF)
    assert set(from_frames.findings["incident_key"]) == set(whole.findings["incident_key"])
    status_only = auditor.audit({"status": snap.status}, as_of=AS_OF)  # other frames empty
    assert tuple(status_only.findings.columns) == auditor.FINDINGS_COLUMNS
    assert not status_only.findings.empty
    config = tmp_path / "config.toml"
    config.write_text('[rules]\nselect = ["stale"]\n')
    only_stale = auditor.audit(snap, config, as_of=AS_OF)
    assert set(only_stale.findings["rule"].astype("string")) == {"stale"}
    with pytest.raises(ValueError, match="unknown frame"):
        auditor.audit({"statuses": snap.status}, as_of=AS_OF)


def test_history_and_findings_history(store: Path) -> None:
    counts = auditor.history(store, days=30)
    assert list(counts.columns) == ["snapshot_date", "snapshot_id", "severity", "count"]
    assert counts["snapshot_id"].nunique() == 2
    stacked = auditor.findings_history(store, days=30)
    assert list(stacked.columns) == ["snapshot_id", "snapshot_date", *auditor.FINDINGS_COLUMNS]
    assert isinstance(stacked["rule"].dtype, pd.CategoricalDtype)
    open_rows = auditor.findings_history(store, days=30, include_snoozed=False)
    per_night = open_rows.groupby("snapshot_id").size()
    expected = counts.groupby("snapshot_id")["count"].sum()
    assert per_night.to_dict() == expected.astype("int64").to_dict()
    assert auditor.findings_history(store, days=30, as_of=AS_OF - timedelta(days=5)).empty


def test_snapshot_history(store: Path) -> None:
    status = auditor.snapshot_history(store, columns=["company_id", "data_type"])
    assert list(status.columns) == ["snapshot_id", "snapshot_date", "company_id", "data_type"]
    assert status["snapshot_id"].nunique() == 2
    assert isinstance(status["data_type"].dtype, pd.CategoricalDtype)
    companies = auditor.snapshot_history(store, frame="companies", days=1)
    assert companies["snapshot_id"].nunique() == 1
    with pytest.raises(ValueError, match="no column"):
        auditor.snapshot_history(store, columns=["nope"])


def test_group_consistency_agrees_with_the_rule(store: Path) -> None:
    snap = auditor.load_snapshot(store)
    table = auditor.group_consistency(snap)
    assert tuple(table.columns) == auditor.CONSISTENCY_COLUMNS
    assert set(table["group"].astype("string")) <= {"accounts-receivable", "accounts-payable",
                                                     "cash"}
    assert (table["members_synced"] >= 2).all()
    assert (table["consistent_as_of"] <= table["newest_sync"]).all()
    flagged = auditor.audit(snap, as_of=AS_OF).findings
    flagged = flagged.loc[flagged["rule"] == "cross-type-skew"]
    merged = flagged.astype({"group": "string"}).merge(
        table.astype({"group": "string"}), on=["company_id", "group"], how="left"
    )
    assert len(merged) == len(flagged)
    assert (merged["age_hours"] - merged["skew_hours"]).abs().max() < 1e-6 or flagged.empty
    assert (merged["data_type"].astype("string") == merged["oldest_type"]).all()
    nights = auditor.group_consistency(auditor.snapshot_history(store))
    assert nights.columns[0] == "snapshot_id"
    assert nights["snapshot_id"].nunique() == 2
