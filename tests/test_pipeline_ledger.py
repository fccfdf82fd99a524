"""The stored ledger over four nights: an incident resolved two nights ago that comes back is
``regressed`` (resolution memory reaches back over several audits, not just last night)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from auditor.pipeline import audit_store
from auditor.snapshot import Snapshot
from auditor.store import write_snapshot

START = datetime(2026, 11, 1, 6, tzinfo=UTC)


def night(day: int, invoices_status: str) -> Snapshot:
    at = START + timedelta(days=day)
    synced = at - timedelta(hours=2)
    status = pd.DataFrame(
        {
            "company_id": ["c1", "c1"],
            "company_name": ["Acme Ltd", "Acme Ltd"],
            "platform": ["Xero", "Xero"],
            "source_type": ["Accounting", "Accounting"],
            "connection_id": ["k1", "k1"],
            "connection_status": ["Linked", "Linked"],
            "data_type": ["invoices", "customers"],
            "current_status": [invoices_status, "Complete"],
            "last_successful_sync": [synced, synced],
            "latest_sync_id": [f"s{day}a", f"s{day}b"],
            "latest_successful_sync_id": [f"s{day}a", f"s{day}b"],
            "snapshot_at": [at, at],
        }
    )
    companies = pd.DataFrame(
        {
            "company_id": ["c1"],
            "company_name": ["Acme Ltd"],
            "connection_id": ["k1"],
            "platform": ["Xero"],
            "source_type": ["Accounting"],
            "connection_status": ["Linked"],
            "link_url": ["https://link.example/k1"],
            "snapshot_at": [at],
        }
    )
    return Snapshot(f"night{day}", at, status=status, companies=companies).conformed()


def test_an_incident_back_after_two_quiet_nights_is_regressed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    states = []
    for day, status in enumerate(["FetchError", "Complete", "Complete", "FetchError"]):
        snap = night(day, status)
        write_snapshot(store, snap)
        run = audit_store(store, which=snap.snapshot_id, as_of=snap.snapshot_at)
        flagged = run.result.findings.loc[
            run.result.findings["rule"].astype("string").eq("failed-after-success")
        ]
        states.append(
            (
                flagged["state"].astype("string").tolist(),
                run.result.resolved["rule"].astype("string").tolist(),
            )
        )
    assert states[0] == (["new"], [])
    assert states[1] == ([], ["failed-after-success"])
    assert states[2] == ([], [])
    assert states[3] == (["regressed"], [])
