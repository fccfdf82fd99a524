"""The demo: the whole pipeline against the embedded sandbox, one or several nights.

:func:`run_demo` starts a :class:`~auditor.sandbox.SandboxServer` on a free loopback port
and, for each night, moves the sandbox clock to that night, snapshots the fleet over HTTP
into ``OUT/store`` (emptied first), audits it (the incident ledger compares with the night
before) and, on every night but the last, queues refreshes for what was flagged (``auditor refresh
--apply``), so the next night shows which problems were fixed. The last night's report,
CSVs and digest (``demo.eml``) are written to ``OUT``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from auditor.codat import CodatClient, RateLimitPolicy
from auditor.collector import ProgressMode, collect_to_store
from auditor.config import AuditConfig
from auditor.engine import SnoozesArg
from auditor.pipeline import AuditRun, audit_store
from auditor.remediation import apply_refreshes, plan_refreshes
from auditor.report import build_digest, write_eml
from auditor.sandbox import Fleet, SandboxOptions, SandboxServer, generate_fleet
from auditor.store import write_refreshes

__all__ = ["DemoOutcome", "run_demo"]

log = logging.getLogger("auditor.demo")


@dataclass
class DemoOutcome:
    """What the demo produced: one audit per night (oldest first) and the files."""

    out: Path
    store: Path
    nights: list[AuditRun] = field(default_factory=list)
    requests: int = 0
    refreshes_queued: int = 0
    eml: Path | None = None


class _Clock:
    """A settable sandbox clock: the demo moves it from night to night."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _fresh_store(store: Path) -> None:
    """Each demo starts from an empty store: its fleet is generated anew, so last run's nights
    would only confuse the ledger. Refuses to delete a directory that is not a store."""
    if not store.exists():
        return
    entries = list(store.iterdir())
    if any(not (e.name.startswith("snapshot_date=") or e.name.startswith(".")) for e in entries):
        raise FileExistsError(
            f"{store} exists and does not look like a snapshot store; choose another --out"
        )
    shutil.rmtree(store)


def run_demo(
    out: Path,
    *,
    as_of: datetime,
    companies: int = 500,
    seed: int = 1,
    nights: int = 1,
    fleet: Fleet | None = None,
    config: AuditConfig | None = None,
    snoozes: SnoozesArg = None,
    refresh_share: float = 0.5,
    progress: ProgressMode = "auto",
    on_night: Callable[[int, AuditRun], None] | None = None,
) -> DemoOutcome:
    """Run ``nights`` nights ending at ``as_of`` against a sandbox; reports go to ``out``.

    ``refresh_share`` of each night's refresh plan is sent (the rest is left for ops), so a
    multi-night demo shows resolved incidents as well as ongoing ones.
    """
    config = config or AuditConfig()
    store = out / "store"
    _fresh_store(store)
    first = as_of - timedelta(days=nights - 1)
    served = fleet if fleet is not None else generate_fleet(companies, seed, first)
    clock = _Clock(first)
    outcome = DemoOutcome(out=out, store=store)
    with SandboxServer(served, options=SandboxOptions(clock=clock)) as server:

        def client() -> CodatClient:
            return CodatClient(
                server.api_key,
                base_url=server.base_url,
                rate_limit=RateLimitPolicy(requests_per_minute=None),
            )

        async def collect(night_at: datetime) -> None:
            async with client() as c:
                await collect_to_store(c, store, snapshot_at=night_at, progress=progress)

        async def refresh(night_at: datetime, run: AuditRun) -> int:
            plan = plan_refreshes(run.result.findings, run.snapshot)
            async with client() as c:
                done = await apply_refreshes(
                    c, plan.head(int(len(plan) * refresh_share)), now=night_at
                )
            write_refreshes(store, run.snapshot.snapshot_id, done)
            return int(done["outcome"].eq("queued").sum())

        for night in range(nights):
            night_at = first + timedelta(days=night)
            clock.now = night_at
            asyncio.run(collect(night_at))
            last = night == nights - 1
            run = audit_store(
                store,
                config=config,
                as_of=night_at,
                snoozes=snoozes,
                out_dir=out if last else None,
            )
            outcome.nights.append(run)
            if on_night is not None:
                on_night(night, run)
            if not last:
                outcome.refreshes_queued += asyncio.run(refresh(night_at, run))
        outcome.requests = server.stats.total
    final = outcome.nights[-1]
    assert final.reports is not None
    msg = build_digest(
        final.result,
        display_tz=config.timezone,
        fleet=final.fleet,
        report_paths=final.reports,
        now=as_of,
    )
    outcome.eml = write_eml(msg, out / "demo.eml")
    return outcome
