"""history-window end to end: the sandbox's company overrides, collected on the rolling
slice, give company findings; a client-level problem is one fleet-level finding however the
audit is partitioned."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest

from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.collector import collect
from auditor.config import AuditConfig
from auditor.engine import audit
from auditor.sandbox import Fleet, SandboxServer, generate_fleet
from auditor.sandbox._generate import HISTORY_VARIANTS
from auditor.snapshot import Snapshot

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
ONLY = AuditConfig.model_validate({"rules": {"select": ["history-window"]}})


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(600, seed=5, now=NOW)


def _collected(sandbox_server: Callable[..., SandboxServer], fleet: Fleet) -> Snapshot:
    server = sandbox_server(fleet)

    async def run() -> Snapshot:
        async with CodatClient(
            server.api_key,
            base_url=server.base_url,
            retry=RetryPolicy(max_attempts=1),
            rate_limit=RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None),
        ) as client:
            return await collect(client, snapshot_at=NOW, company_settings_every_days=1)

    return asyncio.run(run())


def _variants(fleet: Fleet) -> dict[str, int]:
    return {
        cid: i % HISTORY_VARIANTS
        for i, cid in enumerate(fleet.company_ids)
        if fleet.get(cid).sync_settings is not None  # type: ignore[union-attr]
    }


def test_sandbox_overrides_give_company_findings_and_a_client_problem_one_fleet_finding(
    sandbox_server: Callable[..., SandboxServer], fleet: Fleet
) -> None:
    snapshot = _collected(sandbox_server, fleet)
    findings = audit(snapshot, ONLY, as_of=NOW, chunk_size=50).findings
    assert findings["company_id"].notna().all()  # the client's settings are uniform
    variants = _variants(fleet)
    assert set(variants.values()) == set(range(HISTORY_VARIANTS))
    by_company = findings.groupby("company_id")
    flagged = set(by_company.groups)
    assert flagged <= set(variants)
    assert not {c for c in flagged if variants[c] == 0}  # schedule-only overrides are fine
    statements = findings.loc[findings["group"].isna()]
    assert set(statements["company_id"]) == {c for c, v in variants.items() if v == 1} & flagged
    assert statements["message"].str.contains("fetches 12 months").all()
    groups = findings.loc[findings["group"].notna()]
    assert set(groups["company_id"]) == {c for c, v in variants.items() if v in (2, 3)} & flagged
    assert set(groups["group"]) == {"accounts-receivable"}
    assert set(groups["data_type"]) == {"invoices"}
    assert groups["message"].str.contains("syncFromWindow 12|syncFromUtc").all()
    assert {variants[c] for c in flagged} == {1, 2, 3}

    # A client-level problem: one fleet-level finding, whatever the partitions.
    settings = snapshot.sync_settings.copy()
    client = settings["company_id"].isna() & (settings["data_type"] == "profitAndLoss")
    settings.loc[client, "months_to_sync"] = 12
    broken = Snapshot(
        snapshot_id=snapshot.snapshot_id,
        snapshot_at=snapshot.snapshot_at,
        status=snapshot.status,
        companies=snapshot.companies,
        errors=snapshot.errors,
        pull_operations=snapshot.pull_operations,
        sync_settings=settings,
    )
    whole = audit(broken, ONLY, as_of=NOW).findings
    chunked = audit(broken, ONLY, as_of=NOW, chunk_size=37).findings
    for findings in (whole, chunked):
        fleet_level = findings.loc[findings["company_id"].isna()]
        assert fleet_level["data_type"].astype(str).tolist() == ["profitAndLoss"]
        assert "client's sync settings" in fleet_level["message"].iloc[0]
    key = ["company_id", "data_type", "group"]
    pd.testing.assert_frame_equal(
        whole[key].astype(str).sort_values(key).reset_index(drop=True),
        chunked[key].astype(str).sort_values(key).reset_index(drop=True),
    )
