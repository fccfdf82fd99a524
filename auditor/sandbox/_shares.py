"""The numbers of the trouble model: shares, mixes, codes and the outage record.

The generator's draws (:mod:`auditor.sandbox._arrays`) and the trouble windows
(:mod:`auditor.sandbox._trouble`) both read them; they live apart so that neither of those
modules imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np

__all__ = [
    "AUTH",
    "AUTH_BROKEN_SHARE",
    "CALM_FACTOR",
    "CELL_MIX",
    "CHRONIC_FAIL",
    "CHRONIC_LAG",
    "CHRONIC_STUCK",
    "COMPANY_MIX",
    "CONN_STATUS",
    "DATA_STATUS_ERROR_SHARE",
    "DEAUTH",
    "DORMANT",
    "ERRORS",
    "FAIL",
    "FIRST_FAIL",
    "FRAGILE_SHARE",
    "HEALTHY",
    "INF",
    "LINKED",
    "MINUTES_PER_DAY",
    "NEVER_SYNCED_NOT_ON_FIRST_LINK",
    "NONE",
    "NS",
    "OFFLINE_CONNECTOR_SHARE",
    "OK",
    "OMIT",
    "OVERRIDE_SHARE",
    "PENDING",
    "RUNNING",
    "STALE",
    "STOP",
    "STUCK",
    "TROUBLED_FACTOR",
    "TROUBLED_SHARE",
    "UNLINKED",
    "Outage",
]


# Connection states of one source per company (codes in the arrays).
NONE, LINKED, PENDING, DEAUTH, UNLINKED = 0, 1, 2, 3, 4
CONN_STATUS: Final[dict[int, str]] = {
    LINKED: "Linked",
    PENDING: "PendingAuth",
    DEAUTH: "Deauthorized",
    UNLINKED: "Unlinked",
}

# Company profiles: healthy, stale by weeks (scheduler stopped), dormant (token at risk).
HEALTHY, STALE, DORMANT = 0, 1, 2

#: Company-level shares (exact counts, shuffled, so small fleets still have every kind).
COMPANY_MIX: Final[dict[str, dict[int, float]]] = {
    "accounting": {
        NONE: 0.02, PENDING: 0.03, DEAUTH: 0.005, UNLINKED: 0.004, LINKED: 0.941
    },
    "banking": {LINKED: 0.13, DEAUTH: 0.002, NONE: 0.868},
    "commerce": {LINKED: 0.08, PENDING: 0.01, DEAUTH: 0.002, NONE: 0.908},
    "profile": {STALE: 0.002, DORMANT: 0.004, HEALTHY: 0.994},
}  # fmt: skip
AUTH_BROKEN_SHARE: Final = 0.002  # Linked, but the token was revoked: AuthError for good
OFFLINE_CONNECTOR_SHARE: Final = 0.08  # of on-premise companies: connector offline for good
DATA_STATUS_ERROR_SHARE: Final = 0.005  # dataStatus unreadable (404 or 500)
OVERRIDE_SHARE: Final = 0.02  # company has its own sync settings
FRAGILE_SHARE: Final = 0.10  # companies whose troubles come back (higher churn)

# Chronic cell (company x data type) troubles.
OK, OMIT, NS, FIRST_FAIL, CHRONIC_FAIL, CHRONIC_STUCK, CHRONIC_LAG = range(7)
#: Per-cell shares for a Linked connection before the factor below (the rest is OK).
CELL_MIX: Final[dict[int, float]] = {
    OMIT: 0.006,
    FIRST_FAIL: 0.003,
    CHRONIC_FAIL: 0.008,
    CHRONIC_STUCK: 0.003,
    CHRONIC_LAG: 0.006,
}
NEVER_SYNCED_NOT_ON_FIRST_LINK: Final = 0.30
#: Share of "troubled" companies; cell trouble rates are multiplied by the factors below.
TROUBLED_SHARE: Final = 0.035
TROUBLED_FACTOR: Final = 3.0
CALM_FACTOR: Final = 0.02

# Churn: events per company and day, their kinds and lengths.
_CHURN_RATE: Final = 0.02  # per company per day (calm companies)
_FRAGILE_FACTOR: Final = 6.0  # fragile companies: this many times more
_LOOKBACK_DAYS: Final = 21  # events older than this have ended (the longest lasts 8 days)
_RELAPSE_SHARE: Final = 0.15  # of events come back a day or so after they ended ...
_FRAGILE_RELAPSE_SHARE: Final = 0.45  # ... and this share for fragile companies
STOP, STUCK, AUTH, FAIL = 0, 1, 2, 3  # window kinds, in order of precedence
_CHURN_KINDS: Final[tuple[tuple[int, float], ...]] = (
    (FAIL, 0.64),
    (STUCK, 0.16),
    (AUTH, 0.10),
    (STOP, 0.10),
)
_OUTAGE_DAY_SHARE: Final = 0.125
_OUTAGE_TYPES: Final[tuple[str, ...]] = (
    "invoices", "bills", "payments", "billPayments", "bankAccounts", "accountTransactions",
    "journalEntries", "customers", "suppliers", "creditNotes",
)  # fmt: skip
MINUTES_PER_DAY: Final = 1440
INF: Final = 1 << 60  # minutes: "for ever" / "since ever"
_TOKEN_LIFETIME_MINUTES: Final = 30 * MINUTES_PER_DAY

ERRORS: Final[tuple[tuple[str, float], ...]] = (
    ("FetchError", 0.60),
    ("MapError", 0.10),
    ("InternalError", 0.08),
    ("ProcessingError", 0.05),
    ("ValidationError", 0.05),
    ("RateLimitError", 0.05),
    ("PermissionsError", 0.04),
    ("PrerequisiteNotMet", 0.03),
)
#: Errors a new sync usually gets past (a refresh fixes them); the others persist.
_TRANSIENT_ERRORS: Final[frozenset[str]] = frozenset(
    {"FetchError", "InternalError", "ProcessingError", "RateLimitError"}
)
_CHURN_ERRORS: Final[tuple[tuple[str, float], ...]] = (
    ("FetchError", 0.60),
    ("RateLimitError", 0.12),
    ("InternalError", 0.10),
    ("MapError", 0.08),
    ("ProcessingError", 0.05),
    ("ValidationError", 0.05),
)
RUNNING: Final[tuple[tuple[str, float], ...]] = (
    ("Queued", 0.30),
    ("Fetching", 0.30),
    ("Mapping", 0.10),
    ("MapQueued", 0.05),
    ("Processing", 0.10),
    ("ProcessingQueued", 0.05),
    ("Validating", 0.05),
    ("ValidationQueued", 0.05),
)

_MASK64: Final = (1 << 64) - 1
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)
_OUTAGE_STREAM: Final = 0x0DA7A6E  # pseudo company number of the fleet-wide outage draws
_AFFECTED_STREAM: Final = 0x5EED0FF  # salt of "is this company hit by that outage"


@dataclass(frozen=True, slots=True)
class Outage:
    """A provider outage of a generated fleet: one platform x data type failing for a while.

    ``share`` of the platform's companies with a Linked accounting connection (and that data
    type syncing normally) get ``status`` on every scheduled sync in ``[start, end)``.
    ``day`` counts days after the fleet's ``now`` (day 0 ends at ``now``).
    """

    day: int
    platform: str
    data_type: str
    status: str
    start: datetime
    end: datetime
    share: float
