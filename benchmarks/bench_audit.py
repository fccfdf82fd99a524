"""Benchmark: the whole audit of 100,000 companies x 43 data types.

Builds a synthetic snapshot with vectorised numpy (a realistic mix of statuses, ages, platforms,
connections, in-progress syncs, collection errors), writes its frames to Parquet with pyarrow,
then, in a fresh process, reads the snapshot back and audits it. Prints:

* ``read``  seconds to read the snapshot's Parquet files into the Snapshot frames;
* ``audit`` seconds of the whole audit (all rules, provider incidents, snoozes, ledger against a
  previous night's findings);
* ``ratio`` audit / read (goal <= 3), wall time, best of ``--repeat`` runs of each (the
  minimum is the least disturbed by other processes); CPU times are printed too;
* ``peak RSS`` of the measuring process (goal <= 3 GB).

Usage::

    .venv/bin/python benchmarks/bench_audit.py [--companies 100000] [--dir /tmp/bench-audit]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.constants import ALL_DATA_TYPES, source_type_of
from auditor.snapshot import SCHEMAS, Snapshot, conform

AS_OF = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)
PLATFORMS = np.array(
    ["Xero", "QuickBooks Online", "Sage Business Cloud", "NetSuite", "FreeAgent",
     "QuickBooks Desktop", "Sage 50 (UK)", "Zoho Books"]
)
PLATFORM_WEIGHTS = np.array([0.35, 0.3, 0.1, 0.07, 0.06, 0.05, 0.04, 0.03])
STATUSES = np.array(
    ["Complete", "NotSupported", "FetchError", "AuthError", "Queued", "Fetching",
     "PermissionsError", "RateLimitError", "MapError", "Mystery"]
)
STATUS_WEIGHTS = np.array(
    [0.925, 0.05, 0.008, 0.004, 0.005, 0.003, 0.002, 0.001, 0.001, 0.001]
)


def build(n_companies: int, seed: int = 7) -> Snapshot:
    """A synthetic snapshot, built column by column with numpy."""
    rng = np.random.default_rng(seed)
    n_types = len(ALL_DATA_TYPES)
    ids = np.char.add("c", np.char.zfill(np.arange(n_companies).astype(str), 7))
    names = np.char.add(ids, " Ltd")
    platform_idx = rng.choice(len(PLATFORMS), size=n_companies, p=PLATFORM_WEIGHTS)
    conn_status = rng.choice(
        np.array(["Linked", "Deauthorized", "PendingAuth", "Unlinked"]),
        size=n_companies,
        p=[0.93, 0.03, 0.02, 0.02],
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
    status_codes = rng.choice(len(STATUSES), size=rows, p=STATUS_WEIGHTS)
    no_status = rng.random(rows) < 0.01
    # A company's data types sync together: a per-company age (most within the last day, a
    # tail of companies weeks behind) plus a few minutes of jitter per type; a few types lag.
    company_age = np.where(
        rng.random(n_companies) < 0.96,
        rng.exponential(6.0, n_companies),
        rng.exponential(300.0, n_companies),
    )
    age_hours = company_age[company_of_row] + rng.exponential(0.2, rows)
    lagging = rng.random(rows) < 0.01
    age_hours = np.where(lagging, age_hours + rng.exponential(100.0, rows), age_hours)
    never = no_status | (rng.random(rows) < 0.01)
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
                 - (rng.exponential(8.0, rows) * 3.6e12).astype("timedelta64[ns]"),
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
    n_errors = max(1, n_companies // 500)
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
    return Snapshot(snapshot_id="bench", snapshot_at=AS_OF, **conformed)


def write(snapshot: Snapshot, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in snapshot.frames().items():
        frame.to_parquet(directory / f"{name}.parquet", engine="pyarrow", index=False)


def read(directory: Path) -> Snapshot:
    frames = {
        name: pd.read_parquet(directory / f"{name}.parquet", engine="pyarrow")
        for name in SCHEMAS
    }
    return Snapshot(snapshot_id="bench", snapshot_at=AS_OF, **frames)


def measure(directory: Path, repeat: int) -> None:
    """Read then audit, in this (fresh) process; print the best of ``repeat`` runs of each."""
    from auditor.engine import audit

    read_times, audit_times, read_cpu, audit_cpu = [], [], [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        snapshot = read(directory)
        read_times.append(time.perf_counter() - start)
        read_cpu.append(time.process_time() - cpu)
        # Last night's findings, read from Parquet as the store would.
        previous = pd.read_parquet(directory / "previous_findings.parquet")
        start, cpu = time.perf_counter(), time.process_time()
        result = audit(snapshot, as_of=AS_OF + timedelta(days=1), previous=previous)
        audit_times.append(time.perf_counter() - start)
        audit_cpu.append(time.process_time() - cpu)
        del snapshot
    read_s, audit_s = min(read_times), min(audit_times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # KiB -> GiB
    counts = result.findings["rule"].value_counts().to_dict()
    print(f"status rows        {rows_of(directory):,}")
    print(f"findings           {len(result.findings):,}  resolved {len(result.resolved):,}")
    print(f"  by rule          {counts}")
    print(f"read (Parquet)     {read_s:.2f} s  (best of {repeat}: {_fmt(read_times)})")
    print(f"audit              {audit_s:.2f} s  (best of {repeat}: {_fmt(audit_times)})")
    print(f"ratio audit/read   {audit_s / read_s:.2f}   (goal <= 3; wall time, best of each)")
    print(
        f"CPU time           read {min(read_cpu):.2f} s, audit {min(audit_cpu):.2f} s, "
        f"ratio {min(audit_cpu) / min(read_cpu):.2f}  (pyarrow reads with several threads)"
    )
    print(f"peak RSS           {peak:.2f} GiB  (goal <= 3)")


def rows_of(directory: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(directory / "status.parquet").metadata.num_rows)


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-audit"))
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the best of")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory: Path = args.dir / str(args.companies)
    if args.measure:
        measure(directory, args.repeat)
        return
    start = time.perf_counter()
    snapshot = build(args.companies)
    write(snapshot, directory)
    from auditor.engine import audit

    # Last night: tonight's findings minus 10% (new tonight) plus 5% that are gone (resolved).
    previous = audit(snapshot, as_of=AS_OF).findings
    rng = np.random.default_rng(1)
    kept = previous.loc[rng.random(len(previous)) >= 0.10]
    gone = previous.sample(frac=0.05, random_state=2)
    gone = gone.assign(incident_key=gone["incident_key"] + "|gone")
    previous = pd.concat([kept, gone], ignore_index=True)
    previous.to_parquet(directory / "previous_findings.parquet", index=False)
    print(f"built and wrote {args.companies:,} companies in {time.perf_counter() - start:.1f} s")
    del snapshot, previous
    subprocess.run(
        [sys.executable, __file__, "--measure", "--companies", str(args.companies),
         "--dir", str(args.dir), "--repeat", str(args.repeat)],
        check=True,
    )


if __name__ == "__main__":
    main()
