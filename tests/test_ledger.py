"""The incident ledger over synthetic nights: new -> ongoing -> resolved -> regressed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from auditor.engine import audit
from auditor.ledger import incident_keys, previous_tables
from auditor.result import AuditResult
from auditor.snapshot import ERRORS_SCHEMA, STATUS_SCHEMA, Snapshot, conform

NIGHT1 = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)


def _night(as_of: datetime, failing: set[str]) -> Snapshot:
    """Companies c1..c3; those in ``failing`` have invoices in FetchError."""
    status = pd.DataFrame(
        [
            {
                "company_id": c,
                "company_name": c,
                "platform": "Xero",
                "connection_id": f"{c}-k",
                "connection_status": "Linked",
                "data_type": "invoices",
                "current_status": "FetchError" if c in failing else "Complete",
                "last_successful_sync": as_of - timedelta(hours=2),
            }
            for c in ("c1", "c2", "c3")
        ]
    )
    return Snapshot(f"s-{as_of:%d}", as_of, status=conform(status, STATUS_SCHEMA))


def _states(result: AuditResult) -> dict[str, tuple[str, int]]:
    f = result.findings
    return {
        c: (str(s), int(n))
        for c, s, n in zip(f["company_id"], f["state"], f["nights_open"], strict=True)
    }


def test_new_ongoing_resolved_regressed() -> None:
    nights = [NIGHT1 + timedelta(days=i) for i in range(4)]
    failing = [{"c1", "c2"}, {"c1", "c2", "c3"}, {"c2", "c3"}, {"c1", "c2"}]

    r1 = audit(_night(nights[0], failing[0]), as_of=nights[0])
    assert _states(r1) == {"c1": ("new", 1), "c2": ("new", 1)}
    assert r1.resolved.empty
    assert (r1.findings["first_seen"] == pd.Timestamp(nights[0])).all()

    r2 = audit(_night(nights[1], failing[1]), as_of=nights[1],
               previous=previous_tables(r1.findings, [r1.resolved]))
    assert _states(r2) == {"c1": ("ongoing", 2), "c2": ("ongoing", 2), "c3": ("new", 1)}
    first = r2.findings.set_index("company_id")["first_seen"]
    assert first["c1"] == pd.Timestamp(nights[0])
    assert first["c3"] == pd.Timestamp(nights[1])

    r3 = audit(_night(nights[2], failing[2]), as_of=nights[2],
               previous=previous_tables(r2.findings, [r2.resolved]))
    assert _states(r3) == {"c2": ("ongoing", 3), "c3": ("ongoing", 2)}
    assert list(r3.resolved["company_id"]) == ["c1"]
    assert list(r3.resolved["state"]) == ["resolved"]
    assert r3.resolved["as_of"].iloc[0] == pd.Timestamp(nights[1])  # as last seen

    r4 = audit(_night(nights[3], failing[3]), as_of=nights[3],
               previous=previous_tables(r3.findings, [r3.resolved]))
    assert _states(r4) == {"c1": ("regressed", 1), "c2": ("ongoing", 4)}
    assert r4.findings.set_index("company_id").loc["c1", "first_seen"] == pd.Timestamp(nights[0])
    assert list(r4.resolved["company_id"]) == ["c3"]


def test_resolution_memory_beyond_one_night_needs_older_resolved_tables() -> None:
    nights = [NIGHT1 + timedelta(days=i) for i in range(4)]
    r1 = audit(_night(nights[0], {"c1"}), as_of=nights[0])
    r2 = audit(_night(nights[1], set()), as_of=nights[1], previous=r1.findings)
    r3 = audit(_night(nights[2], set()), as_of=nights[2],
               previous=previous_tables(r2.findings, [r2.resolved]))
    only_last_night = audit(_night(nights[3], {"c1"}), as_of=nights[3],
                            previous=previous_tables(r3.findings, [r3.resolved]))
    assert _states(only_last_night) == {"c1": ("new", 1)}
    remembered = audit(_night(nights[3], {"c1"}), as_of=nights[3],
                       previous=previous_tables(r3.findings, [r3.resolved, r2.resolved]))
    assert _states(remembered) == {"c1": ("regressed", 1)}


def test_incident_keys_are_stable_and_readable() -> None:
    r = audit(_night(NIGHT1, {"c1"}), as_of=NIGHT1)
    assert list(r.findings["incident_key"]) == ["failed-after-success|c1|c1-k|invoices"]
    assert list(incident_keys(r.findings)) == list(r.findings["incident_key"])


def test_previous_read_back_from_parquet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r1 = audit(_night(NIGHT1, {"c1", "c2"}), as_of=NIGHT1)
    path = tmp_path / "findings.parquet"
    r1.findings.to_parquet(path)
    night2 = NIGHT1 + timedelta(days=1)
    r2 = audit(_night(night2, {"c2"}), as_of=night2, previous=pd.read_parquet(path))
    assert _states(r2) == {"c2": ("ongoing", 2)}
    assert list(r2.resolved["company_id"]) == ["c1"]


def _unread(as_of: datetime, unread: set[str], failing: set[str]) -> Snapshot:
    """Like :func:`_night`, but the companies in ``unread`` could not be collected."""
    snap = _night(as_of, failing)
    status = snap.status.loc[~snap.status["company_id"].isin(unread)]
    errors = pd.DataFrame(
        [
            {"company_id": c, "endpoint": "dataStatus", "status_code": 503,
             "error": "Service Unavailable", "attempts": 5, "snapshot_at": as_of}
            for c in sorted(unread)
        ]
    )
    return Snapshot(
        snap.snapshot_id, as_of, status=conform(status.reset_index(drop=True), STATUS_SCHEMA),
        errors=conform(errors, ERRORS_SCHEMA),
    )


def test_a_company_not_collected_keeps_its_incidents_open_and_is_judged_when_read() -> None:
    nights = [NIGHT1 + timedelta(days=i) for i in range(4)]
    r1 = audit(_night(nights[0], {"c1", "c2"}), as_of=nights[0])
    # Night 2: c1 cannot be read. Its incident is neither resolved nor forgotten.
    r2 = audit(_unread(nights[1], {"c1"}, {"c2"}), as_of=nights[1],
               previous=previous_tables(r1.findings, [r1.resolved]))
    assert r2.resolved.empty
    f2 = r2.findings
    carried = f2.loc[f2["carried_over"].fillna(False).astype(bool)]
    assert list(carried["company_id"]) == ["c1"]
    assert carried["rule"].astype(str).tolist() == ["failed-after-success"]
    assert carried["state"].astype(str).tolist() == ["ongoing"]
    assert carried["nights_open"].tolist() == [2]
    assert carried["first_seen"].tolist() == [pd.Timestamp(nights[0])]
    # Tonight's own finding about c1 says it could not be read; it is not carried.
    assert set(f2.loc[f2["company_id"] == "c1", "rule"].astype(str)) == {
        "failed-after-success", "not-collected"
    }
    assert not f2.loc[f2["company_id"] == "c2", "carried_over"].fillna(False).any()
    # Night 3: c1 is read again and still failing: ongoing (not regressed, not new).
    r3 = audit(_night(nights[2], {"c1"}), as_of=nights[2],
               previous=previous_tables(r2.findings, [r2.resolved, r1.resolved]))
    assert _states(r3) == {"c1": ("ongoing", 3)}
    assert not r3.findings["carried_over"].fillna(False).any()
    assert set(r3.resolved["company_id"]) == {"c1", "c2"}  # c2 fixed; c1's not-collected gone
    assert set(r3.resolved["rule"].astype(str)) == {"failed-after-success", "not-collected"}
    # Night 4: c1 is fixed: resolved for real.
    r4 = audit(_night(nights[3], set()), as_of=nights[3],
               previous=previous_tables(r3.findings, [r3.resolved]))
    assert r4.findings.empty
    assert r4.resolved["company_id"].tolist() == ["c1"]
