"""Benchmark: the whole audit of 100,000 companies x 43 data types.

Builds a synthetic snapshot with vectorised numpy, stores it with the store's own writer
(``auditor.store.write_snapshot``), stores a previous night's findings, then, in a fresh
process, reads the snapshot back and audits it. Two fleets:

* ``realistic`` (default): the problem rates of a real fleet audited nightly (about 2 % of
  company x data type rows flagged, about 10 % of companies with an error finding; the rates
  follow the generated sandbox fleet: errors clustered in a few troubled companies, 1 % of
  companies weeks behind, 0.5 % of connections Deauthorized, 0.5 % of companies not collected);
* ``--stress``: the earlier, badly broken fleet (about 9 % of rows flagged, 4 % of companies
  weeks behind, 2.5 % of types failing or in progress), kept to show how the audit grows with
  the number of findings.

Prints (best of ``--repeat`` runs of each; the minimum is the least disturbed by the other
processes on the machine):

* ``read (store)``   seconds of ``auditor.store.load_snapshot``: the read the real pipeline does
  (``auditor run`` / ``auditor audit`` / ``auditor.load_snapshot``);
* ``read (pyarrow)`` seconds of a bare ``pandas.read_parquet`` of the same files (no
  canonical form): the fastest possible read, the stricter denominator;
* ``audit``          seconds of ``auditor.engine.audit`` (all rules, provider incidents,
  snoozes, the ledger against the previous night read from Parquet, the final sort);
* both ratios (goal <= 3), CPU times, peak RSS (goal <= 3 GB), findings and rows.

Usage::

    .venv/bin/python benchmarks/bench_audit.py [--companies 100000] [--stress] [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.constants import ALL_DATA_TYPES, source_type_of
from auditor.snapshot import SCHEMAS, Snapshot, conform

AS_OF = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)
SNAPSHOT_ID = "bench"
PLATFORMS = np.array(
    ["Xero", "QuickBooks Online", "Sage Business Cloud", "NetSuite", "FreeAgent",
     "QuickBooks Desktop", "Sage 50 (UK)", "Zoho Books"]
)
PLATFORM_WEIGHTS = np.array([0.35, 0.3, 0.1, 0.07, 0.06, 0.05, 0.04, 0.03])
STATUSES = np.array(
    ["Complete", "NotSupported", "FetchError", "AuthError", "Queued", "Fetching",
     "PermissionsError", "RateLimitError", "MapError", "Mystery"]
)
CONNECTION_STATUSES = np.array(["Linked", "Deauthorized", "PendingAuth", "Unlinked"])


@dataclass(frozen=True)
class FleetProfile:
    """How broken the synthetic fleet is."""

    name: str
    #: Status weights (in STATUSES order) of calm companies and of troubled ones.
    status_weights: tuple[float, ...]
    troubled_share: float
    troubled_status_weights: tuple[float, ...]
    connection_weights: tuple[float, ...]
    behind_share: float  # companies weeks behind
    lagging_share: float  # single data types lagging
    no_status_share: float
    never_share: float
    stuck_mean_hours: float  # mean age of an in-progress sync's request
    error_company_divisor: int  # 1 in N companies not collected
    #: Tonight's audit runs this long after the snapshot was taken.
    audit_delay: timedelta


STRESS = FleetProfile(
    name="stress",
    status_weights=(0.925, 0.05, 0.008, 0.004, 0.005, 0.003, 0.002, 0.001, 0.001, 0.001),
    troubled_share=0.0,
    troubled_status_weights=(),
    connection_weights=(0.93, 0.03, 0.02, 0.02),
    behind_share=0.04,
    lagging_share=0.01,
    no_status_share=0.01,
    never_share=0.01,
    stuck_mean_hours=8.0,
    error_company_divisor=500,
    audit_delay=timedelta(days=1),  # as measured before: every age one day older
)
REALISTIC = FleetProfile(
    name="realistic",
    status_weights=(0.9479, 0.05, 0.0006, 0.0001, 0.001, 0.0008, 0.0001, 0.0001, 0.00005,
                    0.00005),
    troubled_share=0.035,
    troubled_status_weights=(0.84, 0.05, 0.05, 0.01, 0.01, 0.01, 0.015, 0.01, 0.005, 0.0),
    connection_weights=(0.955, 0.005, 0.03, 0.01),
    behind_share=0.01,
    lagging_share=0.0015,
    no_status_share=0.005,
    never_share=0.003,
    stuck_mean_hours=4.0,
    error_company_divisor=200,
    audit_delay=timedelta(hours=1),  # the nightly job audits right after collecting
)
PROFILES = {p.name: p for p in (REALISTIC, STRESS)}


def _weights(values: tuple[float, ...]) -> np.ndarray:
    w = np.array(values, dtype="float64")
    out: np.ndarray = w / w.sum()
    return out


def build(n_companies: int, seed: int = 7, profile: FleetProfile = STRESS) -> Snapshot:
    """A synthetic snapshot, built column by column with numpy."""
    rng = np.random.default_rng(seed)
    n_types = len(ALL_DATA_TYPES)
    ids = np.char.add("c", np.char.zfill(np.arange(n_companies).astype(str), 7))
    names = np.char.add(ids, " Ltd")
    platform_idx = rng.choice(len(PLATFORMS), size=n_companies, p=PLATFORM_WEIGHTS)
    conn_status = rng.choice(
        CONNECTION_STATUSES, size=n_companies, p=_weights(profile.connection_weights)
    )
    conn_ids = np.char.add(ids, "-acc")
    now = pd.Timestamp(AS_OF)

    companies = pd.DataFrame(
        {
            "company_id": ids,
            "company_name": names,
            "company_created": now - pd.to_timedelta(rng.integers(30, 900, n_companies), "D"),
            "connection_id": conn_ids,
            "platform": PLATFORMS[platform_idx],
            "integration_key": np.char.lower(np.char.replace(PLATFORMS[platform_idx], " ", ""))
            .astype("U4"),
            "source_type": "Accounting",
            "connection_status": conn_status,
            "link_url": np.char.add("https://link.codat.io/companies/", ids),
            "connection_created": now - pd.to_timedelta(rng.integers(1, 900, n_companies), "D"),
            "snapshot_at": now,
        }
    )

    rows = n_companies * n_types
    company_of_row = np.repeat(np.arange(n_companies), n_types)
    type_codes = np.tile(np.arange(n_types), n_companies)
    status_codes = rng.choice(len(STATUSES), size=rows, p=_weights(profile.status_weights))
    if profile.troubled_share > 0:
        # Trouble clusters: a few companies fail on many data types at once.
        troubled = (rng.random(n_companies) < profile.troubled_share)[company_of_row]
        trouble_codes = rng.choice(
            len(STATUSES), size=rows, p=_weights(profile.troubled_status_weights)
        )
        status_codes = np.where(troubled, trouble_codes, status_codes)
    no_status = rng.random(rows) < profile.no_status_share
    # A company's data types sync together: a per-company age (most within the last day, a
    # tail of companies weeks behind) plus a few minutes of jitter per type; a few types lag.
    company_age = np.where(
        rng.random(n_companies) < 1 - profile.behind_share,
        rng.exponential(6.0, n_companies),
        rng.exponential(300.0, n_companies),
    )
    age_hours = company_age[company_of_row] + rng.exponential(0.2, rows)
    lagging = rng.random(rows) < profile.lagging_share
    age_hours = np.where(lagging, age_hours + rng.exponential(100.0, rows), age_hours)
    never = no_status | (rng.random(rows) < profile.never_share)
    lss = pd.to_datetime(
        np.where(never, np.datetime64("NaT"),
                 np.datetime64(now.tz_localize(None)) - (age_hours * 3.6e12).astype(
                     "timedelta64[ns]")),
        utc=True,
    )
    status_cat = pd.Categorical.from_codes(
        np.where(no_status, -1, status_codes), categories=list(STATUSES)
    )
    in_progress = np.isin(status_codes, [4, 5]) & ~no_status
    requested = pd.to_datetime(
        np.where(in_progress,
                 np.datetime64(now.tz_localize(None))
                 - (rng.exponential(profile.stuck_mean_hours, rows) * 3.6e12).astype(
                     "timedelta64[ns]"),
                 np.datetime64("NaT")),
        utc=True,
    )
    sync_ids = pd.array(np.char.add("op-", np.arange(rows).astype(str)), dtype="string")
    status = pd.DataFrame(
        {
            "company_id": pd.array(ids[company_of_row], dtype="string"),
            "company_name": pd.array(names[company_of_row], dtype="string"),
            "platform": pd.Categorical.from_codes(platform_idx[company_of_row],
                                                  categories=list(PLATFORMS)),
            "integration_key": "xxxx",
            "source_type": pd.Categorical(
                np.array([source_type_of(t) for t in ALL_DATA_TYPES])[type_codes]
            ),
            "connection_id": pd.array(conn_ids[company_of_row], dtype="string"),
            "connection_status": pd.Categorical(conn_status[company_of_row]),
            "data_type": pd.Categorical.from_codes(type_codes, categories=list(ALL_DATA_TYPES)),
            "current_status": status_cat,
            "last_successful_sync": lss,
            "latest_sync_id": sync_ids,
            "latest_successful_sync_id": sync_ids,
            "latest_sync_requested": requested,
            "snapshot_at": now,
        }
    )
    n_errors = max(1, n_companies // profile.error_company_divisor)
    err_ids = rng.choice(ids, size=n_errors, replace=False)
    errors = pd.DataFrame(
        {
            "company_id": err_ids,
            "company_name": np.char.add(err_ids, " Ltd"),
            "endpoint": np.char.add(np.char.add("/companies/", err_ids), "/dataStatus"),
            "status_code": 503,
            "error": "Service Unavailable",
            "correlation_id": "corr",
            "attempts": 5,
            "snapshot_at": now,
        }
    )
    status = status.loc[~status["company_id"].isin(err_ids)]
    fetch = {"invoices", "bills", "payments", "customers", "suppliers", "accountTransactions",
             "balanceSheet", "profitAndLoss", "bankAccounts", "bankTransactions", "company"}
    sync_settings = pd.DataFrame(
        {
            "company_id": None,
            "data_type": list(ALL_DATA_TYPES),
            "fetch_on_first_link": [t in fetch for t in ALL_DATA_TYPES],
            "sync_schedule_hours": 24.0,
            "sync_order": range(n_types),
            "is_locked": False,
        }
    )
    frames = {
        "status": status,
        "companies": companies,
        "errors": errors,
        "sync_settings": sync_settings,
    }
    conformed = {name: conform(frame, SCHEMAS[name]) for name, frame in frames.items()}
    return Snapshot(snapshot_id=SNAPSHOT_ID, snapshot_at=AS_OF, **conformed)


def read_pyarrow(store: Path) -> Snapshot:
    """The snapshot's Parquet files read with a bare ``pandas.read_parquet`` (no canonical)."""
    from auditor.store import resolve_snapshot_dir

    path = resolve_snapshot_dir(store, SNAPSHOT_ID)
    frames = {}
    for name in SCHEMAS:
        files = sorted((path / name).glob("*.parquet"))
        if name == "sync_settings":
            files = sorted(path.glob("sync_settings/*.parquet"))
        if files:
            frames[name] = pd.concat(
                [pd.read_parquet(f, engine="pyarrow") for f in files], ignore_index=True
            )
    return Snapshot(snapshot_id=SNAPSHOT_ID, snapshot_at=AS_OF, **frames)


def measure(directory: Path, repeat: int) -> None:
    """Read then audit, in this (fresh) process; print the best of ``repeat`` runs of each."""
    from auditor.engine import audit
    from auditor.ledger import previous_tables
    from auditor.store import load_snapshot

    store = directory / "store"
    as_of = AS_OF + PROFILES[directory.name.rsplit("-", 1)[0]].audit_delay
    # Last night's findings, read from Parquet as the store would give them (not timed).
    previous = previous_tables(pd.read_parquet(directory / "previous_findings.parquet"))
    raw_times, store_times, audit_times, store_cpu, audit_cpu = [], [], [], [], []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        raw = read_pyarrow(store)
        raw_times.append(time.perf_counter() - start)
        del raw
        start, cpu = time.perf_counter(), time.process_time()
        snapshot = load_snapshot(store, SNAPSHOT_ID)
        store_times.append(time.perf_counter() - start)
        store_cpu.append(time.process_time() - cpu)
        del result
        start, cpu = time.perf_counter(), time.process_time()
        result = audit(snapshot, as_of=as_of, previous=previous)
        audit_times.append(time.perf_counter() - start)
        audit_cpu.append(time.process_time() - cpu)
        del snapshot
    assert result is not None
    raw_s, store_s, audit_s = min(raw_times), min(store_times), min(audit_times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # KiB -> GiB
    f = result.findings
    rows = rows_of(store)
    per_company = f.loc[f["company_id"].notna()]
    flagged_rows = len(per_company)
    error_companies = per_company.loc[per_company["severity"] == "error", "company_id"].nunique()
    n_companies = int(directory.name.split("-")[-1])
    counts = f["rule"].value_counts().to_dict()
    print(f"fleet              {directory.name}")
    print(f"status rows        {rows:,}")
    print(f"findings           {len(f):,}  ({100 * flagged_rows / rows:.1f} % of rows; "
          f"{100 * error_companies / n_companies:.1f} % of companies have an error finding)"
          f"  resolved {len(result.resolved):,}")
    print(f"  by rule          {counts}")
    print(f"read (store)       {store_s:.2f} s  (best of {repeat}: {_fmt(store_times)})")
    print(f"read (pyarrow)     {raw_s:.2f} s  (best of {repeat}: {_fmt(raw_times)})")
    print(f"audit              {audit_s:.2f} s  (best of {repeat}: {_fmt(audit_times)})")
    print(f"ratio audit/read   {audit_s / store_s:.2f} vs the store read, "
          f"{audit_s / raw_s:.2f} vs bare pyarrow  (goal <= 3; wall time, best of each)")
    print(f"CPU time           store read {min(store_cpu):.2f} s, audit {min(audit_cpu):.2f} s")
    print(f"peak RSS           {peak:.2f} GiB  (goal <= 3)")


def rows_of(store: Path) -> int:
    import pyarrow.parquet as pq

    from auditor.store import resolve_snapshot_dir

    path = resolve_snapshot_dir(store, SNAPSHOT_ID)
    return sum(
        int(pq.ParquetFile(f).metadata.num_rows) for f in (path / "status").glob("*.parquet")
    )


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def prepare(n_companies: int, profile: FleetProfile, directory: Path) -> None:
    """Build the fleet, store it, and store a previous night's findings next to it."""
    from auditor.engine import audit
    from auditor.store import write_snapshot

    start = time.perf_counter()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    snapshot = build(n_companies, profile=profile)
    write_snapshot(directory / "store", snapshot)
    # Last night: tonight's findings a day earlier, minus 10% (new tonight) plus 5% that are
    # gone (resolved tonight).
    previous = audit(snapshot, as_of=AS_OF + profile.audit_delay).findings
    previous = previous.assign(
        as_of=previous["as_of"] - timedelta(days=1),
        first_seen=previous["first_seen"] - timedelta(days=1),
    )
    rng = np.random.default_rng(1)
    kept = previous.loc[rng.random(len(previous)) >= 0.10]
    gone = previous.sample(frac=0.05, random_state=2)
    gone = gone.assign(incident_key=gone["incident_key"] + "|gone")
    previous = pd.concat([kept, gone], ignore_index=True)
    previous.to_parquet(directory / "previous_findings.parquet", index=False)
    (directory / "built").write_text(date.today().isoformat())
    print(f"built and stored {n_companies:,} companies ({profile.name}) "
          f"in {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--stress", action="store_true",
                        help="the badly broken fleet (about 9 %% of rows flagged)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-audit"))
    parser.add_argument("--repeat", type=int, default=5, help="runs to take the best of")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the fleet built by an earlier run, if any")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    profile = STRESS if args.stress else REALISTIC
    directory: Path = args.dir / f"{profile.name}-{args.companies}"
    if not args.measure:
        if not (args.reuse and (directory / "built").exists()):
            prepare(args.companies, profile, directory)
        command = [sys.executable, __file__, "--measure", "--companies", str(args.companies),
                   "--dir", str(args.dir), "--repeat", str(args.repeat)]
        subprocess.run(command + (["--stress"] if args.stress else []), check=True)
        return
    measure(directory, args.repeat)


if __name__ == "__main__":
    main()
