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
from typing import Final

from auditor.codat import CodatClient, RateLimitPolicy
from auditor.collector import ProgressMode, collect_to_store
from auditor.config import AuditConfig
from auditor.engine import SnoozesArg
from auditor.listen.background import BackgroundListener
from auditor.pipeline import AuditRun, audit_store
from auditor.remediation import apply_refreshes, plan_refreshes
from auditor.report import build_digest, write_eml
from auditor.sandbox import Fleet, SandboxOptions, SandboxServer, generate_fleet
from auditor.store import write_refreshes

__all__ = ["DEMO_MARKER", "DemoOutcome", "DemoRefusedError", "run_demo"]

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
    #: Webhooks the sandbox posted (by event type) and what the listener did with them.
    webhooks: dict[str, int] = field(default_factory=dict)
    listener: dict[str, int] = field(default_factory=dict)


class _Clock:
    """A settable sandbox clock: the demo moves it from night to night."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


#: The file ``auditor demo`` leaves in each directory it creates; it deletes or rewrites only a
#: directory that carries it.
DEMO_MARKER: Final = ".auditor-demo"


class DemoRefusedError(ValueError):
    """``--out`` (or its ``store``) is not the demo's own: nothing was changed."""


def _check_ours(directory: Path, *, hidden_ok: bool) -> None:
    """Raise :class:`DemoRefusedError` unless ``directory`` is missing, empty (``hidden_ok``:
    or holds only hidden files, such as ``.gitkeep``) or carries :data:`DEMO_MARKER`."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise DemoRefusedError(f"{directory} exists and is not a directory; choose another --out")
    if (directory / DEMO_MARKER).is_file():
        return
    entries = [e for e in directory.iterdir() if not (hidden_ok and e.name.startswith("."))]
    if entries:
        raise DemoRefusedError(
            f"{directory} exists and was not made by auditor demo (no {DEMO_MARKER} file); "
            "nothing was changed: choose another --out, or remove it yourself"
        )


def _mark(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text(
        "Made by `auditor demo`, which deletes and rewrites this directory on its next run.\n",
        encoding="utf-8",
    )


def _fresh_store(out: Path, store: Path) -> None:
    """Each demo starts from an empty store: its fleet is generated anew, so last run's nights
    would only confuse the ledger. Deletes only what an earlier demo made (its
    :data:`DEMO_MARKER`); checks ``out`` and ``store`` before changing either."""
    _check_ours(out, hidden_ok=True)
    _check_ours(store, hidden_ok=False)
    _mark(out)
    if store.exists():
        shutil.rmtree(store)
    _mark(store)


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
    webhooks: bool = True,
    webhook_step_hours: int = 12,
) -> DemoOutcome:
    """Run ``nights`` nights ending at ``as_of`` against a sandbox; reports go to ``out``.

    ``refresh_share`` of each night's refresh plan is sent (the rest is left for ops), so a
    multi-night demo shows resolved incidents as well as ongoing ones.

    ``webhooks``: a listener (in-process, on a free loopback port, with a one-off signing
    secret) writes into the store's event log, and the sandbox posts its Svix-signed webhooks
    to it as the clock moves through each day in ``webhook_step_hours`` steps, so the
    events of a day land before that night's snapshot (their ``received_at`` is sandbox time).
    """
    config = config or AuditConfig()
    store = out / "store"
    _fresh_store(out, store)
    first = as_of - timedelta(days=nights - 1)
    served = fleet if fleet is not None else generate_fleet(companies, seed, first)
    clock = _Clock(first)
    outcome = DemoOutcome(out=out, store=store)
    listener = BackgroundListener(store, clock=clock) if webhooks else None
    options = SandboxOptions(clock=clock)
    if listener is not None:
        listener.start()
        options = SandboxOptions(
            clock=clock,
            webhook_url=listener.url,
            webhook_secret=listener.secret,
            webhook_step_minutes=webhook_step_hours * 60,
        )
    try:
        _nights(served, options, clock, listener, outcome, first=first, nights=nights,
                config=config, snoozes=snoozes, refresh_share=refresh_share,
                progress=progress, on_night=on_night, step_hours=webhook_step_hours)  # fmt: skip
    finally:
        if listener is not None:
            outcome.listener = listener.stop()
    final = outcome.nights[-1]
    assert final.reports is not None
    msg = build_digest(
        final.result,
        display_tz=config.timezone,
        fleet=final.fleet,
        report_paths=final.reports,
        now=as_of,
        actions=final.actions,
        refreshes=final.refreshes,
        connections=final.snapshot.companies,
    )
    outcome.eml = write_eml(msg, out / "demo.eml")
    return outcome


def _nights(
    served: Fleet,
    options: SandboxOptions,
    clock: _Clock,
    listener: BackgroundListener | None,
    outcome: DemoOutcome,
    *,
    first: datetime,
    nights: int,
    config: AuditConfig,
    snoozes: SnoozesArg,
    refresh_share: float,
    progress: ProgressMode,
    on_night: Callable[[int, AuditRun], None] | None,
    step_hours: int,
) -> None:
    store = outcome.store
    out = outcome.out
    with SandboxServer(served, options=options) as server:

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
            if night and listener is not None:  # the day's webhooks, in steps
                moment = night_at - timedelta(days=1)
                while moment + timedelta(hours=step_hours) < night_at:
                    moment += timedelta(hours=step_hours)
                    clock.now = moment
                    server.flush_webhooks()
                clock.now = night_at - timedelta(minutes=1)
                server.flush_webhooks()
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
        if server.webhook_stats is not None:
            outcome.webhooks = dict(server.webhook_stats.events)
