"""Experiment (issue 16): can the event log make nightly snapshots incremental?

Every night, over ``--nights`` sandbox nights, this takes a **full** snapshot of a generated
fleet over HTTP (as ``auditor snapshot`` does) while the sandbox posts its webhooks to a real
listener on the same store. It then builds the **incremental** snapshot the event log would
allow: re-read only the companies with an event since the previous night plus a rolling slice
(each company once every ``--slice-days`` nights, the collector's own
``reads_settings_tonight`` slice), and carry every other company's rows from the previous
incremental snapshot. The re-read companies' rows are taken from tonight's full snapshot (the
same requests at the same sandbox moment give the same answers), so the only difference
between the two snapshots is what was carried.

Both snapshots are audited at the same ``as_of``; the script prints, per night, whether the
findings are identical, how many only one side has (by rule), and the requests per company
of each (incremental: the listing pages plus the re-read companies' share of the per-company
requests of the full run, an estimate from the full run's own counts).

    python benchmarks/incremental_experiment.py [--companies 300] [--nights 7] [--seed 1]
        [--reread-running]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from auditor.codat import CodatClient, RateLimitPolicy
from auditor.collector import collect_to_store
from auditor.collector._collect import reads_settings_tonight
from auditor.constants import IN_PROGRESS_STATUSES
from auditor.engine import audit
from auditor.listen import load_events
from auditor.listen.background import BackgroundListener
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet
from auditor.snapshot import FRAME_NAMES, Snapshot
from auditor.store import load_snapshot

KEY = ["rule", "severity", "company_id", "data_type"]


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def combine(fresh: Snapshot, carried: Snapshot, at: datetime) -> Snapshot:
    """``fresh``'s frames plus ``carried``'s company rows (fleet-level rows from ``fresh``)."""
    frames = {}
    for name in FRAME_NAMES:
        a, b = getattr(fresh, name), getattr(carried, name)
        if name in ("sync_settings", "errors"):
            b = b[b["company_id"].notna()]
        frames[name] = pd.concat([a, b], ignore_index=True)
    snap = Snapshot(snapshot_id=fresh.snapshot_id, snapshot_at=at, meta=fresh.meta, **frames)
    return snap.conformed()


def keys(findings: pd.DataFrame) -> set[tuple[str, ...]]:
    frame = findings[KEY].astype("string").fillna("")
    return set(frame.itertuples(index=False, name=None))


def _status_of(snap: Snapshot, company: str, data_type: str) -> str:
    st = snap.status
    rows = st[(st["company_id"].astype("string") == company)
              & (st["data_type"].astype("string") == data_type)]  # fmt: skip
    if rows.empty:
        return "no row"
    r = rows.iloc[0]
    return (f"{r['current_status']} latest={r['latest_sync_id']} "
            f"last_ok={r['last_successful_sync']}")  # fmt: skip


def explain(
    night: int,
    only_full: set[tuple[str, ...]],
    only_incr: set[tuple[str, ...]],
    full: Snapshot,
    incr: Snapshot,
) -> list[str]:
    """One line per differing finding: which side has it, and the row each side read."""
    out = []
    for side, found in (("only full", only_full), ("only incr", only_incr)):
        for rule, severity, company, data_type in sorted(found):
            out.append(
                f"night {night} {side}: {rule}/{severity} {company[:8]} {data_type}: "
                f"full [{_status_of(full, company, data_type)}] "
                f"carried [{_status_of(incr, company, data_type)}]"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=300)
    parser.add_argument("--nights", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slice-days", type=int, default=7)
    parser.add_argument(
        "--reread-running",
        action="store_true",
        help="also re-read the companies whose carried rows show a sync in progress (its "
        "completion would be announced, a newer sync superseding it would not)",
    )
    args = parser.parse_args()
    first = datetime(2026, 11, 1, 6, tzinfo=UTC)
    store = Path(tempfile.mkdtemp(prefix="incremental-")) / "store"
    store.mkdir(parents=True)
    clock = Clock(first)
    listener = BackgroundListener(store, clock=clock).start()
    options = SandboxOptions(
        clock=clock,
        webhook_url=listener.url,
        webhook_secret=listener.secret,
        webhook_step_minutes=12 * 60,
    )
    fleet = generate_fleet(args.companies, args.seed, first)
    rows = []
    details: list[str] = []
    unannounced: Counter[str] = Counter()
    started = time.perf_counter()
    with SandboxServer(fleet, options=options) as server:

        async def collect(at: datetime) -> None:
            async with CodatClient(
                server.api_key,
                base_url=server.base_url,
                rate_limit=RateLimitPolicy(requests_per_minute=None),
            ) as client:
                await collect_to_store(client, store, snapshot_at=at, progress="off")

        previous: Snapshot | None = None
        for night in range(args.nights):
            at = first + timedelta(days=night)
            if night:
                for hours in (12,):
                    clock.now = at - timedelta(days=1) + timedelta(hours=hours)
                    server.flush_webhooks()
                clock.now = at - timedelta(minutes=1)
                server.flush_webhooks()
            clock.now = at
            before = dict(server.stats.by_endpoint)
            asyncio.run(collect(at))
            after = server.stats.by_endpoint
            spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            total = sum(spent.values())
            listing = spent.get("list-companies", 0)
            full = load_snapshot(store, "latest")
            ids = set(full.company_ids)
            n = len(ids)
            if previous is None:
                incremental, reread = full, ids
                evented: set[str] = ids
            else:
                events = load_events(store, since=at - timedelta(days=1), until=at)
                evented = set(events["company_id"].dropna().astype(str)) & ids
                sliced = {c for c in ids if reads_settings_tonight(c, at, args.slice_days)}
                new = ids - set(previous.company_ids)
                reread = evented | sliced | new
                if args.reread_running:
                    st = previous.status
                    running = st["current_status"].astype("string").isin(IN_PROGRESS_STATUSES)
                    reread |= set(st.loc[running, "company_id"].astype(str)) & ids
                carried = previous.partition(sorted(ids - reread))
                incremental = combine(full.partition(sorted(reread)), carried, at)
            f_full = audit(full, as_of=at).findings
            f_incr = audit(incremental, as_of=at).findings
            k_full, k_incr = keys(f_full), keys(f_incr)
            only_full, only_incr = k_full - k_incr, k_incr - k_full
            for key in only_full | only_incr:
                unannounced[key[0]] += 1
            details.extend(explain(night + 1, only_full, only_incr, full, incremental))
            per_company = (total - listing) / max(n, 1)
            rows.append(
                {
                    "night": night + 1,
                    "companies": n,
                    "with events": len(evented),
                    "re-read": len(reread),
                    "findings full": len(k_full),
                    "findings incr": len(k_incr),
                    "identical": not (only_full or only_incr),
                    "only full": len(only_full),
                    "only incr": len(only_incr),
                    "by rule": ", ".join(
                        f"{r} {c}"
                        for r, c in Counter(k[0] for k in only_full | only_incr).most_common()
                    ),
                    "req/company full": round(total / max(n, 1), 3),
                    "req/company incr": round((listing + per_company * len(reread)) / n, 3),
                }
            )
            print(" | ".join(f"{k}: {v}" for k, v in rows[-1].items()), flush=True)
            previous = incremental
        stats = server.webhook_stats
    counts = listener.stop()
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    print()
    print(f"webhooks: {dict(stats.events) if stats else {}}; listener: {counts}")
    print(f"findings identical every night: {bool(table['identical'].all())}")
    print(f"differing findings by rule, all nights: {dict(unannounced.most_common())}")
    print("differing findings (what the carried rows said vs tonight's full read):")
    for line in details:
        print("  " + line)
    print(f"elapsed {time.perf_counter() - started:.1f} s; store {store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
