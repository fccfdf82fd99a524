"""Synthetic snapshots: a whole fleet's sync status, as the collector would store it, built
with numpy in a second or two for 100,000 companies. For tests of the audit and for the audit
benchmark (``benchmarks/bench_audit.py``); no Codat, no sandbox server needed.

Two profiles say how broken the fleet is: :data:`REALISTIC` (the problem rates of a real fleet
audited nightly) and :data:`STRESS` (a badly broken one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from auditor.constants import ALL_DATA_TYPES, source_type_of
from auditor.platforms import ACCOUNTING_PLATFORMS
from auditor.snapshot import SCHEMAS, Snapshot, conform

__all__ = [
    "AS_OF",
    "PROFILES",
    "REALISTIC",
    "SNAPSHOT_ID",
    "STRESS",
    "FleetProfile",
    "synthetic_snapshot",
]

#: When the synthetic fleet was snapshotted.
AS_OF: Final = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)
SNAPSHOT_ID: Final = "bench"
#: The accounting platforms of the generated sandbox fleet, with its shares.
PLATFORMS = np.array([p.name for p in ACCOUNTING_PLATFORMS])
PLATFORM_KEYS = np.array([p.key for p in ACCOUNTING_PLATFORMS])
PLATFORM_WEIGHTS = np.array([p.weight for p in ACCOUNTING_PLATFORMS]) / sum(
    p.weight for p in ACCOUNTING_PLATFORMS
)
STATUSES = np.array(
    [
        "Complete",
        "NotSupported",
        "FetchError",
        "AuthError",
        "Queued",
        "Fetching",
        "PermissionsError",
        "RateLimitError",
        "MapError",
        "Mystery",
    ]
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
    status_weights=(0.9479, 0.05, 0.0006, 0.0001, 0.001, 0.0008, 0.0001, 0.0001, 0.00005, 0.00005),
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


def synthetic_snapshot(
    n_companies: int,
    seed: int = 7,
    profile: FleetProfile = STRESS,
    *,
    first_company: int = 0,
) -> Snapshot:
    """A synthetic snapshot of ``n_companies`` companies x every data type, built column by
    column with numpy (deterministic for a seed); ``profile`` says how broken the fleet is.

    ``first_company`` numbers the companies from there (``c0100000`` ...), so that a large
    fleet can be built and stored one slice at a time (``benchmarks/memory_growth.py``)."""
    rng = np.random.default_rng(seed)
    n_types = len(ALL_DATA_TYPES)
    numbers = np.arange(first_company, first_company + n_companies)
    ids = np.char.add("c", np.char.zfill(numbers.astype(str), 7))
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
            "integration_key": PLATFORM_KEYS[platform_idx],
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
        np.where(
            never,
            np.datetime64("NaT"),
            np.datetime64(now.tz_localize(None)) - (age_hours * 3.6e12).astype("timedelta64[ns]"),
        ),
        utc=True,
    )
    status_cat = pd.Categorical.from_codes(
        np.where(no_status, -1, status_codes).astype("int64"), categories=pd.Index(STATUSES)
    )
    in_progress = np.isin(status_codes, [4, 5]) & ~no_status
    requested = pd.to_datetime(
        np.where(
            in_progress,
            np.datetime64(now.tz_localize(None))
            - (rng.exponential(profile.stuck_mean_hours, rows) * 3.6e12).astype("timedelta64[ns]"),
            np.datetime64("NaT"),
        ),
        utc=True,
    )
    first_row = first_company * n_types
    sync_ids = pd.array(
        np.char.add("op-", np.arange(first_row, first_row + rows).astype(str)), dtype="string"
    )
    status = pd.DataFrame(
        {
            "company_id": pd.array(ids[company_of_row], dtype="string"),
            "company_name": pd.array(names[company_of_row], dtype="string"),
            "platform": pd.Categorical.from_codes(
                platform_idx[company_of_row].astype("int64"), categories=pd.Index(PLATFORMS)
            ),
            "integration_key": "xxxx",
            "source_type": pd.Categorical(
                np.array([source_type_of(t) for t in ALL_DATA_TYPES])[type_codes]
            ),
            "connection_id": pd.array(conn_ids[company_of_row], dtype="string"),
            "connection_status": pd.Categorical(conn_status[company_of_row]),
            "data_type": pd.Categorical.from_codes(
                type_codes.astype("int64"), categories=pd.Index(ALL_DATA_TYPES)
            ),
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
    fetch = {
        "invoices",
        "bills",
        "payments",
        "customers",
        "suppliers",
        "accountTransactions",
        "balanceSheet",
        "profitAndLoss",
        "bankAccounts",
        "bankTransactions",
        "company",
    }
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
    return Snapshot(
        snapshot_id=SNAPSHOT_ID,
        snapshot_at=AS_OF,
        status=conform(status, SCHEMAS["status"]),
        companies=conform(companies, SCHEMAS["companies"]),
        errors=conform(errors, SCHEMAS["errors"]),
        sync_settings=conform(sync_settings, SCHEMAS["sync_settings"]),
    )
