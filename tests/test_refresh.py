"""``auditor refresh`` against the sandbox: dry run, --apply, already-in-progress, AuthError
never queued, and the next snapshot shows whether the queued syncs worked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.codat import CodatClient, RateLimitPolicy
from auditor.collector import collect_to_store
from auditor.pipeline import audit_store
from auditor.remediation import plan_refreshes, refresh_outcomes
from auditor.rules._shared import REMEDY_BY_STATUS
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet
from auditor.snapshot import Snapshot
from auditor.store import load_findings, load_refreshes, load_snapshot

QUEUE_ENDPOINTS = ("refresh-data-type", "refresh-company-data")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def collect(server: SandboxServer, store: Path, at: datetime) -> None:
    async def go() -> None:
        async with CodatClient(
            server.api_key,
            base_url=server.base_url,
            rate_limit=RateLimitPolicy(requests_per_minute=None),
        ) as client:
            await collect_to_store(client, store, snapshot_at=at, progress="off")

    asyncio.run(go())


def posts(server: SandboxServer) -> int:
    by = server.stats.by_endpoint
    return sum(by.get(e, 0) for e in QUEUE_ENDPOINTS)


@pytest.fixture
def audited(tmp_path: Path, fleet_now: datetime) -> tuple[SandboxServer, Path, Clock]:
    clock = Clock(fleet_now)
    server = SandboxServer(generate_fleet(80, seed=2, now=fleet_now), SandboxOptions(clock=clock))
    server.start()
    store = tmp_path / "store"
    collect(server, store, fleet_now)
    audit_store(store, as_of=fleet_now)
    yield server, store, clock
    server.close()


def test_refresh_dry_run_then_apply_then_outcomes(
    audited: tuple[SandboxServer, Path, Clock], fleet_now: datetime
) -> None:
    server, store, clock = audited
    runner = CliRunner()
    snap = load_snapshot(store)
    findings = load_findings(store)
    assert findings is not None
    plan = plan_refreshes(findings, snap, max_requests=1000)
    assert len(plan) > 0

    # Types in AuthError (or on a Deauthorized connection) are never planned.
    bad = snap.status.loc[
        snap.status["current_status"].astype("string").eq("AuthError")
        | snap.status["connection_status"].astype("string").eq("Deauthorized"),
        ["company_id", "data_type"],
    ].astype("string")
    queued_types = plan.loc[plan["action"].eq("queue"), ["company_id", "data_type"]].astype(
        "string"
    )
    assert len(bad) > 0
    assert queued_types.merge(bad, on=["company_id", "data_type"]).empty

    # Dry run: prints the plan and its request count, sends nothing.
    before = posts(server)
    dry = runner.invoke(app, ["refresh", "--store", str(store)])
    assert dry.exit_code == 0, dry.output
    assert f"{len(plan)} requests" in dry.output
    assert "dry run" in dry.output
    assert posts(server) == before

    # --apply sends exactly the plan.
    env = {"CODAT_API_KEY": server.api_key}
    apply = ["--apply", "--base-url", server.base_url, "--as-of", fleet_now.isoformat()]
    applied = runner.invoke(app, ["refresh", "--store", str(store), *apply], env=env)
    assert applied.exit_code == 0, applied.output
    assert posts(server) - before == len(plan)
    assert f"sent {len(plan)} requests:" in applied.output, applied.output

    # Again while those syncs still run: already running, not an error.
    again = runner.invoke(app, ["refresh", "--store", str(store), *apply], env=env)
    assert again.exit_code == 0, again.output
    per_type = int(plan["action"].eq("queue").sum())
    assert f"{per_type} already running" in again.output or "already running" in again.output
    assert " 0 failed" in again.output

    # The next night's snapshot says whether each refresh worked.
    later = fleet_now + timedelta(hours=1)
    clock.now = later
    collect(server, store, later)
    nxt = load_snapshot(store)
    assert nxt.snapshot_at == later
    refreshes = load_refreshes(store, before=nxt.snapshot_id)
    assert refreshes is not None
    assert set(refreshes["outcome"]) <= {"queued", "already-running"}
    outcomes = refresh_outcomes(refreshes, nxt)
    assert not outcomes.empty
    assert not outcomes["result"].eq("unknown").any()
    # What we queued ourselves ran to an end (a refresh cannot fix every trouble, e.g. an
    # offline connector); syncs that were already running (stuck ones) may still be running.
    ours = outcomes["action"].eq("queue") & outcomes["outcome"].eq("queued")
    per_type = outcomes.loc[ours, "result"].value_counts()
    assert set(per_type.index) <= {"worked", "failed"}, per_type
    assert per_type.get("worked", 0) >= 0.5 * per_type.sum(), per_type
    worked = outcomes.loc[outcomes["result"].eq("worked")]
    assert (worked["last_successful_sync"] >= worked["requested_at"]).all()
    assert isinstance(outcomes, pd.DataFrame)


def test_refresh_cap_and_rule_selection(audited: tuple[SandboxServer, Path, Clock]) -> None:
    _, store, _ = audited
    runner = CliRunner()
    capped = runner.invoke(app, ["refresh", "--store", str(store), "--max-requests", "3"])
    assert capped.exit_code == 0, capped.output
    assert "3 requests" in capped.output
    only = runner.invoke(app, ["refresh", "--store", str(store), "--rule", "failed-after-success"])
    assert only.exit_code == 0, only.output
    assert "(failed-after-success)" in only.output


def test_refresh_without_audit_or_key_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["refresh", "--store", str(tmp_path / "nothing")])
    assert empty.exit_code == 2
    assert "no complete snapshot" in empty.output


# --- planning and judging on a hand-made snapshot -----------------------------------------

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
SETTINGS = {"invoices": True, "bills": True, "payments": True, "customers": True, "journals": False}


def _snapshot(
    statuses: dict[str, dict[str, str]],
    *,
    at: datetime = T0,
    synced: datetime | None = None,
    overrides: dict[str, dict[str, bool]] | None = None,
) -> Snapshot:
    """Companies (one Linked Accounting connection each) x {data type: status}."""
    status_rows = []
    company_rows = []
    for company, types in statuses.items():
        company_rows.append(
            {
                "company_id": company,
                "company_name": company.title(),
                "connection_id": f"conn-{company}",
                "source_type": "Accounting",
                "connection_status": "Linked",
            }
        )
        for data_type, current in types.items():
            status_rows.append(
                {
                    "company_id": company,
                    "company_name": company.title(),
                    "source_type": "Accounting",
                    "connection_id": f"conn-{company}",
                    "connection_status": "Linked",
                    "data_type": data_type,
                    "current_status": current,
                    "last_successful_sync": synced or at - timedelta(days=9),
                }
            )
    settings_rows: list[dict[str, object]] = [
        {"company_id": None, "data_type": t, "fetch_on_first_link": on}
        for t, on in SETTINGS.items()
    ]
    for company, own in (overrides or {}).items():
        settings_rows += [
            {"company_id": company, "data_type": t, "fetch_on_first_link": on}
            for t, on in own.items()
        ]
    return Snapshot(
        snapshot_id="s",
        snapshot_at=at,
        status=pd.DataFrame(status_rows),
        companies=pd.DataFrame(company_rows),
        sync_settings=pd.DataFrame(settings_rows),
    ).conformed()


def _findings(flagged: dict[str, dict[str, str]]) -> pd.DataFrame:
    rows = [
        {
            "company_id": company,
            "company_name": company.title(),
            "data_type": data_type,
            "rule": rule,
            "severity": "error" if rule == "failed-after-success" else "warning",
            "age_hours": 200.0,
        }
        for company, types in flagged.items()
        for data_type, rule in types.items()
    ]
    return pd.DataFrame(rows)


COMPLETE4 = {"invoices": "Complete", "bills": "Complete", "payments": "Complete"}


def test_data_all_only_when_it_covers_every_flagged_type() -> None:
    snap = _snapshot(
        {
            # journals is flagged but has fetchOnFirstLink false: data/all would miss it
            "a": {**COMPLETE4, "journals": "Complete", "customers": "Complete"},
            # every flagged type is fetchOnFirstLink: one data/all
            "b": {**COMPLETE4, "customers": "Complete", "journals": "Complete"},
            # the company's own setting turns journals on: data/all covers it
            "d": {**COMPLETE4, "journals": "Complete"},
        },
        overrides={"d": {"journals": True, "customers": False}},
    )
    stale = {t: "stale" for t in ("invoices", "bills", "payments")}
    findings = _findings(
        {"a": {**stale, "journals": "stale"}, "b": stale, "d": {**stale, "journals": "stale"}}
    )
    plan = plan_refreshes(findings, snap)
    by = {c: g for c, g in plan.groupby("company_id")}
    assert set(by["a"]["action"]) == {"queue"}
    assert sorted(by["a"]["data_type"]) == ["bills", "invoices", "journals", "payments"]
    assert list(by["a"]["queued_types"]) == list(by["a"]["data_type"])
    assert list(by["b"]["action"]) == ["all"]
    assert by["b"]["queued_types"].iloc[0] == "bills,customers,invoices,payments"
    assert list(by["d"]["action"]) == ["all"]
    assert by["d"]["queued_types"].iloc[0] == "bills,invoices,journals,payments"
    # all_fraction still applies: 3 of the 4 types data/all would queue is not > 0.8 of them
    strict = plan_refreshes(findings, snap, all_fraction=0.8)
    assert set(strict.loc[strict["company_id"].eq("b"), "action"]) == {"queue"}


def test_rate_limit_error_is_never_queued_not_even_by_data_all() -> None:
    snap = _snapshot(
        {
            "c": {"invoices": "Complete", "bills": "RateLimitError", "payments": "Complete"},
            "e": {"invoices": "RateLimitError"},
        }
    )
    findings = _findings(
        {
            "c": {"invoices": "stale", "payments": "stale", "bills": "failed-after-success"},
            "e": {"invoices": "failed-after-success"},
        }
    )
    plan = plan_refreshes(findings, snap)
    # c: bills is left to Codat's next attempt; a data/all would queue it, so per type
    assert list(plan["action"]) == ["queue", "queue"]
    assert sorted(plan["data_type"]) == ["invoices", "payments"]
    assert "e" not in set(plan["company_id"])
    assert "wait for its next attempt" in REMEDY_BY_STATUS["RateLimitError"]
    assert "queue a new sync" not in REMEDY_BY_STATUS["RateLimitError"]


def test_outcomes_judge_only_the_types_a_request_queued() -> None:
    before = _snapshot({"b": {**COMPLETE4, "customers": "Complete", "journals": "Complete"}})
    plan = plan_refreshes(
        _findings({"b": {t: "stale" for t in ("invoices", "bills", "payments")}}), before
    )
    assert list(plan["action"]) == ["all"]
    sent = plan.assign(
        outcome="queued", dataset_id=None, status_code=None, error=None, requested_at=T0
    )
    later = T0 + timedelta(hours=2)
    # Everything data/all queued synced; journals (not queued by data/all) now fails.
    after = _snapshot(
        {"b": {**COMPLETE4, "customers": "Complete", "journals": "FetchError"}},
        at=later,
        synced=later - timedelta(minutes=5),
    )
    journals = after.status["data_type"].astype("string").eq("journals")
    after.status.loc[journals, "last_successful_sync"] = pd.Timestamp(T0 - timedelta(days=9))
    outcomes = refresh_outcomes(sent, after)
    assert sorted(outcomes["data_type"]) == ["bills", "customers", "invoices", "payments"]
    assert set(outcomes["result"]) == {"worked"}
    # A data/all recorded before queued_types existed: judged on every type, as before.
    legacy = refresh_outcomes(sent.drop(columns=["queued_types"]), after)
    assert "failed" in set(legacy["result"])
    assert len(legacy) == 5


async def test_refreshes_past_the_daily_quota_are_not_sent_not_failed() -> None:
    """Once the quota stops the client, the rest of the plan is 'not-sent' (one reason)."""
    from datetime import UTC, datetime

    import pandas as pd

    from auditor.codat import CodatQuotaExhaustedError
    from auditor.remediation import apply_refreshes

    class Spent:
        calls = 0

        async def refresh_all(self, company_id: str) -> None:
            self.calls += 1
            raise CodatQuotaExhaustedError(
                "the daily quota is spent; it resets at 00:00 UTC", resets_at=None
            )

        async def refresh_data_type(self, *args: object, **kwargs: object) -> None:
            await self.refresh_all("x")

    plan = pd.DataFrame(
        {"company_id": ["c1", "c2"], "action": ["all", "queue"], "data_type": [None, "bills"],
         "connection_id": [None, "k"], "rules": ["stale", "stale"],
         "queued_types": ["invoices", "bills"]}
    )
    out = await apply_refreshes(Spent(), plan, now=datetime(2024, 5, 2, tzinfo=UTC))  # type: ignore[arg-type]
    assert out["outcome"].tolist() == ["not-sent", "not-sent"]
    assert out["error"].str.contains("quota").all()
