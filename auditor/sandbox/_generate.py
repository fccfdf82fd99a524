"""A deterministic, realistic generated fleet that lives over sandbox time (``generate_fleet``).

Everything random about a company is drawn up front with numpy, as arrays of one row per
company (or per company x data type), or is a hash of ``(seed, company, day)``; a company's
JSON objects are built only when asked for, **as of a sandbox time**, so that 100,000 companies
take a second or two and little memory. The same ``(companies, seed, now)`` always gives the
same fleet, and the same fleet at the same sandbox time gives the same answers, byte for byte.

Time is counted in whole minutes after the fleet's ``now`` (``t0``); day ``d`` is the 24 h
ending at ``t0 + d`` days (day 0 ends at ``t0``). Each data type of a company syncs on its
schedule (``syncSchedule`` of the sync settings; the company's own setting wins): ticks at
``phase + k x schedule`` with a per-company phase, the weekly types on a per-company weekday,
each sync taking 2-14 minutes (while it runs the type shows it in progress). What goes wrong is
a set of **trouble windows**: ``[start, end)`` x some data types x a kind:

* ``stop``: no sync is run (scheduler lagging or stopped, dormant company, Deauthorized or
  Unlinked connection): the type ages;
* ``stuck``: the first sync in the window never finishes until the window ends (connector
  offline, queue jam); then it completes;
* ``auth`` / ``fail``: every sync in the window ends in AuthError / the window's error.

Windows come from three places:

* **chronic** troubles drawn at generation (start before ``t0``, no end): Deauthorized and
  Unlinked connections, revoked tokens, stale-by-weeks and dormant companies, offline
  on-premise connectors, data types failing for good or whose first sync failed, stuck or
  stalled data types; plus NotSupported per platform and never-synced types;
* **churn**, a hash of ``(seed, company, day)``: each day a small share of companies (more of
  the "fragile" ones, which therefore relapse) gets a data type failing, a sync stuck (the whole
  connector for on-premise platforms), a revoked token, or a scheduler lagging, for half a day
  to a week; then it recovers on the next scheduled sync;
* **provider outages**, a hash of ``(seed, day)``: on about one day in eight one accounting
  platform fails one data type the same way for 30-55 % of its companies, for 14-32 h.

A refresh queued through the sandbox (see :meth:`GeneratedFleet.refresh_outcome`) fixes what
a sync can fix (a lagging or stopped scheduler, a transient error) and not what it cannot
(revoked or Deauthorized credentials, an offline connector, a provider outage, a persistent
mapping or permissions error, an unsupported type).

Integration keys and ids are sandbox values, not Codat's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, overload

import numpy as np
import numpy.typing as npt

from auditor.constants import ALL_DATA_TYPES, source_type_of
from auditor.sandbox._fleet import (
    CompanyRecord,
    Fleet,
    default_sync_settings,
)
from auditor.sandbox._util import uid as _uid

__all__ = ["GeneratedFleet", "Outage", "Platform", "generate_fleet"]


@dataclass(frozen=True, slots=True)
class Platform:
    """An integration the generated fleet uses."""

    name: str
    key: str
    source_type: str
    weight: float
    not_supported: frozenset[str] = frozenset()
    on_premise: bool = False


ACCOUNTING_PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform("Xero", "gbol", "Accounting", 0.30, frozenset({"itemReceipts", "salesOrders"})),
    Platform("QuickBooks Online", "qhyg", "Accounting", 0.27, frozenset({"itemReceipts"})),
    Platform(
        "QuickBooks Desktop",
        "pqsw",
        "Accounting",
        0.07,
        frozenset({"directCosts", "directIncomes", "transfers"}),
        on_premise=True,
    ),
    Platform(
        "Sage Intacct", "knfz", "Accounting", 0.06, frozenset({"itemReceipts", "salesOrders"})
    ),
    Platform("Oracle NetSuite", "akxx", "Accounting", 0.06),
    Platform(
        "FreeAgent",
        "fbrh",
        "Accounting",
        0.05,
        frozenset({"purchaseOrders", "salesOrders", "itemReceipts", "trackingCategories"}),
    ),
    Platform(
        "Sage Business Cloud Accounting",
        "tgff",
        "Accounting",
        0.05,
        frozenset({"itemReceipts", "purchaseOrders", "salesOrders"}),
    ),
    Platform(
        "Microsoft Dynamics 365 Business Central",
        "trji",
        "Accounting",
        0.05,
        frozenset({"directIncomes"}),
    ),
    Platform(
        "Zoho Books", "rwuv", "Accounting", 0.05, frozenset({"itemReceipts", "directIncomes"})
    ),
    Platform("Exact Online", "qudb", "Accounting", 0.04, frozenset({"directIncomes"})),
)
BANKING_PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform("Plaid", "ugxp", "Banking", 0.55, frozenset({"banking-transactionCategories"})),
    Platform("TrueLayer", "hkyx", "Banking", 0.30),
    Platform("Yodlee", "ylgr", "Banking", 0.15),
)
COMMERCE_PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform("Shopify", "shpy", "Commerce", 0.45, frozenset({"commerce-disputes"})),
    Platform("Square", "sqre", "Commerce", 0.25, frozenset({"commerce-productCategories"})),
    Platform("Stripe", "strp", "Commerce", 0.20, frozenset({"commerce-locations"})),
    Platform("Amazon Seller Central", "amzn", "Commerce", 0.10),
)
_PLATFORMS_BY_SOURCE: Final[tuple[tuple[Platform, ...], ...]] = (
    ACCOUNTING_PLATFORMS,
    BANKING_PLATFORMS,
    COMMERCE_PLATFORMS,
)
_SOURCES: Final[tuple[str, ...]] = ("Accounting", "Banking", "Commerce")


# Connection states of one source per company (codes in the arrays).
_NONE, _LINKED, _PENDING, _DEAUTH, _UNLINKED = 0, 1, 2, 3, 4
_CONN_STATUS: Final[dict[int, str]] = {
    _LINKED: "Linked",
    _PENDING: "PendingAuth",
    _DEAUTH: "Deauthorized",
    _UNLINKED: "Unlinked",
}

# Company profiles: healthy, stale by weeks (scheduler stopped), dormant (token at risk).
_HEALTHY, _STALE, _DORMANT = 0, 1, 2

#: Company-level shares (exact counts, shuffled, so small fleets still have every kind).
_COMPANY_MIX: Final[dict[str, dict[int, float]]] = {
    "accounting": {
        _NONE: 0.02, _PENDING: 0.03, _DEAUTH: 0.005, _UNLINKED: 0.004, _LINKED: 0.941
    },
    "banking": {_LINKED: 0.13, _DEAUTH: 0.002, _NONE: 0.868},
    "commerce": {_LINKED: 0.08, _PENDING: 0.01, _DEAUTH: 0.002, _NONE: 0.908},
    "profile": {_STALE: 0.002, _DORMANT: 0.004, _HEALTHY: 0.994},
}  # fmt: skip
_AUTH_BROKEN_SHARE: Final = 0.002  # Linked, but the token was revoked: AuthError for good
_OFFLINE_CONNECTOR_SHARE: Final = 0.08  # of on-premise companies: connector offline for good
_DATA_STATUS_ERROR_SHARE: Final = 0.005  # dataStatus unreadable (404 or 500)
_OVERRIDE_SHARE: Final = 0.02  # company has its own sync settings
_FRAGILE_SHARE: Final = 0.10  # companies whose troubles come back (higher churn)

# Chronic cell (company x data type) troubles.
_OK, _OMIT, _NS, _FIRST_FAIL, _CHRONIC_FAIL, _CHRONIC_STUCK, _CHRONIC_LAG = range(7)
#: Per-cell shares for a Linked connection before the factor below (the rest is OK).
_CELL_MIX: Final[dict[int, float]] = {
    _OMIT: 0.006,
    _FIRST_FAIL: 0.003,
    _CHRONIC_FAIL: 0.008,
    _CHRONIC_STUCK: 0.003,
    _CHRONIC_LAG: 0.006,
}
_NEVER_SYNCED_NOT_ON_FIRST_LINK: Final = 0.30
#: Share of "troubled" companies; cell trouble rates are multiplied by the factors below.
_TROUBLED_SHARE: Final = 0.035
_TROUBLED_FACTOR: Final = 3.0
_CALM_FACTOR: Final = 0.02

# Churn: events per company and day, their kinds and lengths.
_CHURN_RATE: Final = 0.02  # per company per day (calm companies)
_FRAGILE_FACTOR: Final = 6.0  # fragile companies: this many times more
_LOOKBACK_DAYS: Final = 21  # events older than this have ended (the longest lasts 8 days)
_RELAPSE_SHARE: Final = 0.15  # of events come back a day or so after they ended ...
_FRAGILE_RELAPSE_SHARE: Final = 0.45  # ... and this share for fragile companies
_STOP, _STUCK, _AUTH, _FAIL = 0, 1, 2, 3  # window kinds, in order of precedence
_CHURN_KINDS: Final[tuple[tuple[int, float], ...]] = (
    (_FAIL, 0.64),
    (_STUCK, 0.16),
    (_AUTH, 0.10),
    (_STOP, 0.10),
)
_OUTAGE_DAY_SHARE: Final = 0.125
_OUTAGE_TYPES: Final[tuple[str, ...]] = (
    "invoices", "bills", "payments", "billPayments", "bankAccounts", "accountTransactions",
    "journalEntries", "customers", "suppliers", "creditNotes",
)  # fmt: skip
_MINUTES_PER_DAY: Final = 1440
_INF: Final = 1 << 60  # minutes: "for ever" / "since ever"
_TOKEN_LIFETIME_MINUTES: Final = 30 * _MINUTES_PER_DAY

_ERRORS: Final[tuple[tuple[str, float], ...]] = (
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
_RUNNING: Final[tuple[tuple[str, float], ...]] = (
    ("Queued", 0.30),
    ("Fetching", 0.30),
    ("Mapping", 0.10),
    ("MapQueued", 0.05),
    ("Processing", 0.10),
    ("ProcessingQueued", 0.05),
    ("Validating", 0.05),
    ("ValidationQueued", 0.05),
)
#: What a scheduled sync shows while it runs, by the share of its duration elapsed.
_SYNC_STAGES: Final[tuple[str, ...]] = ("Queued", "Fetching", "Fetching", "Mapping", "Processing")
_ERROR_MESSAGES: Final[dict[str, str]] = {
    "FetchError": "The platform returned an error while fetching this data type.",
    "MapError": "A record could not be mapped to Codat's data model.",
    "InternalError": "An internal error occurred. Codat has been notified.",
    "ProcessingError": "The data could not be processed.",
    "ValidationError": "The fetched data failed validation.",
    "RateLimitError": "The platform's rate limit was reached; the sync will be retried.",
    "PermissionsError": "The connected user lacks permission to read this data type.",
    "PrerequisiteNotMet": "A prerequisite data type has not been synced.",
    "AuthError": "The connection's credentials are no longer valid; the company must relink.",
}
_PROGRESS: Final[dict[str, int]] = {
    "Initial": 0,
    "Queued": 0,
    "Fetching": 20,
    "MapQueued": 35,
    "Mapping": 40,
    "ValidationQueued": 55,
    "Validating": 60,
    "ProcessingQueued": 75,
    "Processing": 80,
}

_NAME_A: Final = (
    "Acme", "Birch", "Cobalt", "Dune", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen", "Maple", "Nimbus", "Orchid", "Pioneer", "Quartz", "Raven", "Summit",
    "Tidal", "Umber", "Vista", "Willow", "Yarrow", "Zephyr", "Atlas", "Beacon", "Cedar",
)  # fmt: skip
_NAME_B: Final = (
    "Bakery", "Builders", "Coffee", "Dental", "Engineering", "Foods", "Garden", "Hardware",
    "Logistics", "Media", "Motors", "Outfitters", "Pharmacy", "Print", "Roofing", "Software",
    "Studio", "Supplies", "Textiles", "Travel", "Vineyards", "Wellness", "Analytics", "Cycles",
)  # fmt: skip
_NAME_C: Final = ("Ltd", "Inc.", "LLC", "GmbH", "& Co", "Group", "Partners", "Holdings")
_REGIONS: Final = ("uk", "us", "eu", "au", "ca")


_MASK64: Final = (1 << 64) - 1
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)
_OUTAGE_STREAM: Final = 0x0DA7A6E  # pseudo company number of the fleet-wide outage draws
_AFFECTED_STREAM: Final = 0x5EED0FF  # salt of "is this company hit by that outage"


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser, element-wise (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def _hash_units(
    seed: int, stream: int, days: npt.NDArray[np.int64], draws: int
) -> npt.NDArray[np.float64]:
    """``draws`` uniform [0, 1) numbers per day: a pure function of (seed, stream, day)."""
    key = np.array([(seed * 0x100000001B3 + stream) & _MASK64], dtype=np.uint64)
    base = _mix64(_mix64(key) ^ days.astype(np.int64).view(np.uint64))
    salts = np.arange(1, draws + 1, dtype=np.uint64) * _GOLDEN
    bits = _mix64(base[:, None] + salts[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _choose(weights: Sequence[float], u: float) -> int:
    """The index whose cumulative weight share first exceeds ``u``."""
    total = float(sum(weights))
    edge = 0.0
    for index, weight in enumerate(weights):
        edge += weight / total
        if u < edge:
            return index
    return len(weights) - 1


def _exact_labels(
    rng: np.random.Generator, n: int, shares: dict[int, float]
) -> npt.NDArray[np.int8]:
    """``n`` labels with exactly the given shares (rounded; the last label takes the rest)."""
    labels = np.empty(n, dtype=np.int8)
    start = 0
    items = list(shares.items())
    for label, share in items[:-1]:
        count = min(n - start, round(share * n))
        labels[start : start + count] = label
        start += count
    labels[start:] = items[-1][0]
    rng.shuffle(labels)
    return labels


def _pick(rng: np.random.Generator, n: int, weights: Sequence[float]) -> npt.NDArray[np.int8]:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int8)


def _flag(
    rng: np.random.Generator, candidates: npt.NDArray[np.bool_], share: float
) -> npt.NDArray[np.bool_]:
    """Exactly ``round(share * candidates)`` (at least one if any) of the candidates."""
    idx = np.flatnonzero(candidates)
    out = np.zeros(candidates.shape, dtype=bool)
    if idx.size == 0:
        return out
    count = max(1, round(share * idx.size))
    out[rng.choice(idx, size=min(count, idx.size), replace=False)] = True
    return out


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


@dataclass(frozen=True, slots=True)
class _Window:
    """A trouble window: ``[start, end)`` minutes after t0, over the data types in ``cells``."""

    start: int
    end: int
    kind: int
    status: str
    cells: npt.NDArray[np.bool_]
    fixable: bool
    origin: str


@dataclass(slots=True)
class _Sync:
    """One pull operation of a data type: minutes after t0 (``done`` None: running)."""

    requested: int
    done: int | None
    status: str


@dataclass(slots=True)
class _CellState:
    """What the dataStatus and history show of one data type at a time."""

    present: bool
    latest: _Sync
    success: _Sync | None


class GeneratedFleet(Fleet):
    """A :class:`Fleet` whose records are built from arrays on access, as of any sandbox time.

    ``records`` (and :meth:`Fleet.to_file`) describe the fleet at its ``now``;
    :meth:`record_at` describes it at any later time (scheduled syncs, churn and outages
    applied), which is what :class:`~auditor.sandbox.SandboxServer` serves.
    """

    def __init__(self, companies: int, seed: int, now: datetime) -> None:
        data = _FleetArrays(companies, seed, now)
        self._data = data
        super().__init__(_LazyRecords(data), data.sync_settings, now=now, company_ids=data.ids)
        self.seed = seed

    def minute_of(self, when: datetime) -> int:
        """Whole minutes from the fleet's ``now`` to ``when`` (floored): the state changes
        only from one minute to the next, so this is a cache key for answers at ``when``."""
        return self._data.minute_of(when)

    def company_at(self, index: int, now: datetime | None = None) -> dict[str, Any]:
        """The Company object of company ``index`` at sandbox time ``now`` (default: fleet now)."""
        return self._data.company(index, self._data.minute_of(now or self._data.now))

    def record_at(
        self, index: int, now: datetime, fixes: Mapping[str, datetime] | None = None
    ) -> CompanyRecord:
        """Company ``index`` as served at sandbox time ``now``.

        ``fixes`` maps data types to the time a successful refresh was queued: what a refresh
        fixes (see :meth:`refresh_outcome`) ends then for that type; a never-synced type
        syncs on schedule from then on.
        """
        data = self._data
        fixed = {
            ALL_DATA_TYPES.index(t): data.minute_of(at)
            for t, at in (fixes or {}).items()
            if t in ALL_DATA_TYPES
        }
        return data.record(index, data.minute_of(now), fixed)

    def refresh_outcome(self, index: int, data_type: str, now: datetime) -> str:
        """How a refresh of ``data_type`` queued at ``now`` ends.

        ``AuthError`` while the credentials are revoked or the connection is Deauthorized or
        Unlinked, and for a company dormant for more than 30 days (token expired);
        ``NotSupported`` for an unsupported type; ``Queued`` (never finishes) while the sync
        is stuck (connector offline); the error itself during a provider outage or for a
        persistent error (MapError, ValidationError, PermissionsError, PrerequisiteNotMet);
        ``Complete`` otherwise, which also fixes a lagging or stopped scheduler and a
        transient error (FetchError, InternalError, ProcessingError, RateLimitError).
        """
        if data_type not in ALL_DATA_TYPES:
            return "Complete"
        return self._data.refresh_outcome(
            index, ALL_DATA_TYPES.index(data_type), self._data.minute_of(now)
        )

    def outages(self, start: datetime, end: datetime) -> list[Outage]:
        """The provider outages that begin in ``[start, end)``, oldest first."""
        data = self._data
        first = data.minute_of(start) // _MINUTES_PER_DAY
        last = data.minute_of(end) // _MINUTES_PER_DAY + 1
        found = []
        for day in range(first, last + 1):
            outage = data.outage(day)
            if outage is not None and start <= outage.start < end:
                found.append(outage)
        return found


class _LazyRecords(Sequence[CompanyRecord]):
    def __init__(self, data: _FleetArrays) -> None:
        self._data = data

    def __len__(self) -> int:
        return self._data.n

    @overload
    def __getitem__(self, index: int) -> CompanyRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CompanyRecord]: ...
    def __getitem__(self, index: int | slice) -> CompanyRecord | Sequence[CompanyRecord]:
        if isinstance(index, slice):
            return [self._data.record(i, 0) for i in range(*index.indices(self._data.n))]
        if index < 0:
            index += self._data.n
        if not 0 <= index < self._data.n:
            raise IndexError(index)
        return self._data.record(index, 0)


class _FleetArrays:
    """All random draws of a generated fleet, and the builders of its JSON objects."""

    def __init__(self, n: int, seed: int, now: datetime) -> None:
        if n < 0:
            raise ValueError("companies must be >= 0")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.n = n
        self.seed = seed
        self.now = now.astimezone(UTC)
        self._now64 = np.datetime64(self.now.replace(tzinfo=None), "us")
        self._outages: dict[int, Outage | None] = {}
        rng = np.random.default_rng([seed, n, 20240501])
        types = ALL_DATA_TYPES
        n_types = len(types)
        self.sync_settings = default_sync_settings()
        settings = self.sync_settings["settings"]
        schedule = {s["dataType"]: int(s["syncSchedule"]) for s in settings}
        order = {s["dataType"]: int(s["syncOrder"]) for s in settings}
        self.schedule = np.array([schedule[t] * 60 for t in types], dtype=np.int64)  # minutes
        self.weekly = self.schedule >= 7 * _MINUTES_PER_DAY
        self.stagger = np.array([order[t] // 4 for t in types], dtype=np.int64)  # minutes
        self.override_types = np.array(
            [t in ("invoices", "bills", "bankTransactions", "payments") for t in types]
        )
        self.source_of_type = np.array([_SOURCES.index(source_type_of(t)) for t in types])
        self.source_masks = [self.source_of_type == s for s in range(len(_SOURCES))]
        not_on_first_link = np.array([not s["fetchOnFirstLink"] for s in settings], dtype=bool)

        # --- company level -------------------------------------------------------------
        self.ids = [_uid(seed, "company", i) for i in range(n)]
        self.conn_state = np.stack(
            [
                _exact_labels(rng, n, _COMPANY_MIX["accounting"]),
                _exact_labels(rng, n, _COMPANY_MIX["banking"]),
                _exact_labels(rng, n, _COMPANY_MIX["commerce"]),
            ],
            axis=1,
        )  # n x 3
        self.platform = np.stack(
            [_pick(rng, n, [p.weight for p in ps]) for ps in _PLATFORMS_BY_SOURCE], axis=1
        )
        self.profile = _exact_labels(rng, n, _COMPANY_MIX["profile"])
        healthy = self.profile == _HEALTHY
        acct_linked = self.conn_state[:, 0] == _LINKED
        self.auth_broken = _flag(rng, acct_linked & healthy, _AUTH_BROKEN_SHARE)
        self.on_premise = np.array([p.on_premise for p in ACCOUNTING_PLATFORMS])[
            self.platform[:, 0]
        ]
        self.offline = _flag(
            rng, acct_linked & self.on_premise & ~self.auth_broken & healthy,
            _OFFLINE_CONNECTOR_SHARE,
        )  # fmt: skip
        has_any = (self.conn_state != _NONE).any(axis=1)
        self.ds_error = _flag(rng, has_any, _DATA_STATUS_ERROR_SHARE)
        self.override = _flag(rng, has_any & ~self.ds_error, _OVERRIDE_SHARE)
        self.name_parts = rng.integers(0, [len(_NAME_A), len(_NAME_B), len(_NAME_C)], size=(n, 3))
        self.region = rng.integers(0, len(_REGIONS), size=n)
        self.fragile = rng.random(n) < _FRAGILE_SHARE
        self.phase = rng.integers(0, _MINUTES_PER_DAY, size=n)  # minute of day of the syncs
        self.weekday = rng.integers(0, 7, size=n)  # day of the weekly syncs
        self.weak_type = rng.integers(0, n_types, size=n)  # the type that fails again
        day = _MINUTES_PER_DAY
        # Chronic trouble starts (minutes after t0, so negative).
        self.lost_start = -rng.integers(2 * day, 60 * day, size=n)  # Deauthorized / Unlinked
        self.stale_start = -rng.integers(5 * day, 24 * day, size=n)
        self.dormant_start = np.where(
            _flag(rng, self.profile == _DORMANT, 0.5),  # half at risk, half past 30 days
            -rng.integers(int(25.2 * day), int(28.5 * day), size=n),
            -rng.integers(30 * day, 90 * day, size=n),
        )
        self.auth_start = -rng.integers(day, 60 * day, size=n)
        self.offline_start = -rng.integers(26 * 60, 240 * 60, size=n)

        # --- company x data type ---------------------------------------------------------
        state = self.conn_state[:, self.source_of_type]  # n x T
        not_supported = np.zeros((n, n_types), dtype=bool)
        for s, platforms in enumerate(_PLATFORMS_BY_SOURCE):
            table = np.array([[t in p.not_supported for t in types] for p in platforms])
            not_supported |= table[self.platform[:, s]] & (self.source_of_type == s)[None, :]
        # Problems cluster: a few troubled companies have most chronic troubles.
        troubled = _exact_labels(rng, n, {1: _TROUBLED_SHARE, 0: 1.0 - _TROUBLED_SHARE}) == 1
        factor = np.where(troubled, _TROUBLED_FACTOR, _CALM_FACTOR)[:, None]
        u = rng.random((n, n_types)) / factor
        code = np.full((n, n_types), _OK, dtype=np.int8)
        kinds = (_OMIT, _FIRST_FAIL, _CHRONIC_FAIL, _CHRONIC_STUCK, _CHRONIC_LAG)
        edges = np.cumsum([_CELL_MIX[k] for k in kinds])
        for kind, edge in reversed(list(zip(kinds, edges, strict=True))):
            code[u < edge] = kind
        never = not_on_first_link[None, :] & (
            rng.random((n, n_types)) < _NEVER_SYNCED_NOT_ON_FIRST_LINK
        )
        code[never] = _OMIT
        lost = (state == _DEAUTH) | (state == _UNLINKED)
        code[lost & (code != _OMIT)] = _OK  # the connection's own trouble rules
        code[not_supported] = _NS
        code[(state == _NONE) | (state == _PENDING)] = _OMIT
        self.code = code
        sched_h = self.schedule[None, :].astype(np.float64)
        start = np.zeros((n, n_types))
        start = np.where(
            code == _CHRONIC_FAIL, -sched_h * rng.uniform(0.3, 8.0, (n, n_types)), start
        )
        start = np.where(
            code == _CHRONIC_STUCK, -rng.uniform(6.5 * 60, 10 * day, (n, n_types)), start
        )
        start = np.where(
            code == _CHRONIC_LAG, -sched_h * rng.uniform(1.2, 6.0, (n, n_types)), start
        )
        self.cell_start = start.astype(np.int64)
        self.error_kind = _pick(rng, n * n_types, [w for _, w in _ERRORS]).reshape(n, n_types)
        self.running_kind = _pick(rng, n * n_types, [w for _, w in _RUNNING]).reshape(n, n_types)
        self.cell_u = rng.random((n, n_types)).astype(np.float32)
        # Created well before the oldest trouble began.
        oldest = np.max(-self.cell_start, axis=1) if n_types and n else np.zeros(n)
        oldest = np.maximum(oldest, np.where(lost.any(axis=1), -self.lost_start, 0))
        oldest = np.maximum(oldest, np.where(self.profile == _STALE, -self.stale_start, 0))
        oldest = np.maximum(oldest, np.where(self.profile == _DORMANT, -self.dormant_start, 0))
        oldest = np.maximum(oldest, np.where(self.auth_broken, -self.auth_start, 0))
        created = rng.integers(40 * day, 4 * 365 * day, size=n)
        self.created = np.maximum(created, oldest + 10 * day).astype(np.int64)
        self.ds_error_code = np.where(rng.random(n) < 0.5, 404, 500)

    # --- time ----------------------------------------------------------------------------
    def minute_of(self, when: datetime) -> int:
        if when.tzinfo is None:
            raise ValueError("sandbox times must be timezone-aware")
        return int((when - self.now).total_seconds() // 60)

    def _stamps(self, minutes: npt.NDArray[np.int64]) -> list[str]:
        """Codat timestamps ``minutes`` after t0, all at once."""
        moments = (self._now64 + minutes.astype("timedelta64[m]")).astype("datetime64[ms]")
        return [text + "Z" for text in np.datetime_as_string(moments, unit="ms").tolist()]

    # --- troubles ------------------------------------------------------------------------
    def outage(self, day: int) -> Outage | None:
        """The provider outage of ``day`` (days after t0), if that day has one."""
        if day in self._outages:
            return self._outages[day]
        u = _hash_units(self.seed, _OUTAGE_STREAM, np.array([day], dtype=np.int64), 8)[0]
        outage = None
        if u[0] < _OUTAGE_DAY_SHARE:
            platform = ACCOUNTING_PLATFORMS[_choose([p.weight for p in ACCOUNTING_PLATFORMS], u[1])]
            candidates = [t for t in _OUTAGE_TYPES if t not in platform.not_supported]
            data_type = candidates[int(u[2] * len(candidates))]
            start = (day - 1) * _MINUTES_PER_DAY + int(u[4] * 720)
            length = 840 + int(u[5] * 1080)
            outage = Outage(
                day=day,
                platform=platform.name,
                data_type=data_type,
                status="FetchError" if u[3] < 0.7 else "InternalError",
                start=self.now + timedelta(minutes=start),
                end=self.now + timedelta(minutes=start + length),
                share=round(0.3 + 0.25 * float(u[6]), 3),
            )
        self._outages[day] = outage
        return outage

    def _eligible(self, i: int) -> npt.NDArray[np.bool_]:
        """Data types that sync normally (churn and outages can hit them)."""
        linked = self.conn_state[i, self.source_of_type] == _LINKED
        return linked & (self.code[i] == _OK)  # type: ignore[no-any-return]

    def windows(self, i: int, t: int) -> list[_Window]:
        """Every trouble window of company ``i`` that can matter at minute ``t``."""
        code = self.code[i]
        synced = (code != _OMIT) & (code != _NS)
        out: list[_Window] = []
        for s in range(len(_SOURCES)):
            state = int(self.conn_state[i, s])
            cells = synced & self.source_masks[s]
            if state == _DEAUTH:
                auth = cells & (self.cell_u[i] < 0.85)
                start = int(self.lost_start[i])
                out.append(_Window(start, _INF, _AUTH, "AuthError", auth, False, "connection"))
                out.append(_Window(start, _INF, _STOP, "", cells & ~auth, False, "connection"))
            elif state == _UNLINKED:
                start = int(self.lost_start[i])
                out.append(_Window(start, _INF, _STOP, "", cells, False, "connection"))
        acct = synced & self.source_masks[0]
        if self.auth_broken[i]:
            out.append(
                _Window(int(self.auth_start[i]), _INF, _AUTH, "AuthError", acct, False, "chronic")
            )
        if self.offline[i]:
            status = _RUNNING[int(self.running_kind[i, 0])][0]
            out.append(
                _Window(int(self.offline_start[i]), _INF, _STUCK, status, acct, False, "chronic")
            )
        profile = int(self.profile[i])
        if profile == _STALE:
            out.append(_Window(int(self.stale_start[i]), _INF, _STOP, "", synced, True, "chronic"))
        elif profile == _DORMANT:
            out.append(
                _Window(int(self.dormant_start[i]), _INF, _STOP, "", synced, True, "dormant")
            )
        for j in np.flatnonzero((code >= _FIRST_FAIL) & (code <= _CHRONIC_LAG)).tolist():
            cell = np.zeros(code.shape, dtype=bool)
            cell[j] = True
            kind = int(code[j])
            start = -_INF if kind == _FIRST_FAIL else int(self.cell_start[i, j])
            if kind in (_FIRST_FAIL, _CHRONIC_FAIL):
                error = _ERRORS[int(self.error_kind[i, j])][0]
                fixable = error in _TRANSIENT_ERRORS
                out.append(_Window(start, _INF, _FAIL, error, cell, fixable, "chronic"))
            elif kind == _CHRONIC_STUCK:
                running = _RUNNING[int(self.running_kind[i, j])][0]
                out.append(_Window(start, _INF, _STUCK, running, cell, False, "chronic"))
            else:
                out.append(_Window(start, _INF, _STOP, "", cell, True, "chronic"))
        out.extend(self._churn(i, t))
        return out

    def _churn(self, i: int, t: int) -> list[_Window]:
        eligible = self._eligible(i)
        if not eligible.any():
            return []
        today = t // _MINUTES_PER_DAY + 1
        days = np.arange(today - _LOOKBACK_DAYS, today + 1, dtype=np.int64)
        out: list[_Window] = []
        rate = _CHURN_RATE * (_FRAGILE_FACTOR if self.fragile[i] else 1.0)
        relapse = _FRAGILE_RELAPSE_SHARE if self.fragile[i] else _RELAPSE_SHARE
        happens = np.flatnonzero(_hash_units(self.seed, i, days, 1)[:, 0] < rate)
        days_hit = days[happens]
        draws = _hash_units(self.seed, i, days_hit, 10) if happens.size else np.zeros((0, 10))
        for k in range(days_hit.size):
            u = draws[k].tolist()
            start = (int(days_hit[k]) - 1) * _MINUTES_PER_DAY + int(u[7] * _MINUTES_PER_DAY)
            if start > t:
                continue
            source = next(
                s for s in range(len(_SOURCES)) if (eligible & self.source_masks[s]).any()
            )
            cells = eligible & self.source_masks[source]
            indices = np.flatnonzero(cells)
            weak = int(self.weak_type[i])
            one = weak if u[2] < 0.6 and cells[weak] else int(indices[int(u[3] * indices.size)])
            single = np.zeros(cells.shape, dtype=bool)
            single[one] = True
            kind = _CHURN_KINDS[_choose([w for _, w in _CHURN_KINDS], u[1])][0]
            if kind == _FAIL:
                if u[4] < 0.3:  # a few related types fail together
                    single[
                        indices[(np.searchsorted(indices, one) + np.arange(3)) % indices.size]
                    ] = True
                error = _CHURN_ERRORS[_choose([w for _, w in _CHURN_ERRORS], u[5])][0]
                length = int((0.5 + 3.5 * u[6] ** 2) * _MINUTES_PER_DAY)
                window = _Window(
                    start, start + length, _FAIL, error, single, error in _TRANSIENT_ERRORS, "churn"
                )
            elif kind == _STUCK:
                whole = source == 0 and bool(self.on_premise[i])  # the connector is offline
                running = _RUNNING[_choose([w for _, w in _RUNNING], u[5])][0]
                length = int((0.4 + 2.6 * u[6]) * _MINUTES_PER_DAY)
                window = _Window(
                    start, start + length, _STUCK, running, cells if whole else single, False,
                    "churn",
                )  # fmt: skip
            elif kind == _AUTH:
                length = int((1.0 + 3.0 * u[6] ** 2) * _MINUTES_PER_DAY)
                window = _Window(start, start + length, _AUTH, "AuthError", cells, False, "churn")
            else:  # the company's scheduler lags: nothing syncs for a few days
                length = int((1.5 + 3.0 * u[6]) * _MINUTES_PER_DAY)
                window = _Window(start, start + length, _STOP, "", eligible, True, "churn")
            out.append(window)
            if u[8] < relapse and window.kind != _STOP:  # back after a day or so, same cells
                gap = int((0.75 + 0.9 * u[9]) * _MINUTES_PER_DAY)
                again = window.end + gap
                if again <= t:
                    length = max(360, (window.end - window.start) * 2 // 3)
                    out.append(
                        _Window(
                            again, again + length, window.kind, window.status, window.cells,
                            window.fixable, "churn",
                        )
                    )  # fmt: skip
        if self.conn_state[i, 0] == _LINKED:
            platform = ACCOUNTING_PLATFORMS[int(self.platform[i, 0])].name
            for day in days.tolist():
                outage = self.outage(day)
                if outage is None or outage.platform != platform:
                    continue
                hit = _hash_units(self.seed ^ _AFFECTED_STREAM, i, np.array([day]), 1)[0, 0]
                if hit >= outage.share:
                    continue
                j = ALL_DATA_TYPES.index(outage.data_type)
                if not eligible[j]:
                    continue
                start = self.minute_of(outage.start)
                if start > t:
                    continue
                cell = np.zeros(eligible.shape, dtype=bool)
                cell[j] = True
                end = self.minute_of(outage.end)
                out.append(_Window(start, end, _FAIL, outage.status, cell, False, "outage"))
        return out

    # --- state at a time -------------------------------------------------------------------
    def _timing(
        self, i: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(schedule, phase, duration)`` per data type of company ``i``, in minutes."""
        schedule = (
            np.where(self.override_types, 12 * 60, self.schedule)
            if self.override[i]
            else self.schedule
        )
        phase = (
            self.phase[i] + self.stagger + self.weekly * (int(self.weekday[i]) * _MINUTES_PER_DAY)
        )
        duration = 2 + (i * 31 + np.arange(len(ALL_DATA_TYPES)) * 17) % 13
        return schedule, phase, duration

    def evaluate(self, i: int, t: int, fixed: Mapping[int, int] | None = None) -> list[_CellState]:
        """The state of every data type of company ``i`` at minute ``t``."""
        fixed = fixed or {}
        schedule, phase, duration = self._timing(i)
        code = self.code[i]
        tick = phase + ((t - phase) // schedule) * schedule
        running = tick + duration > t
        stage = np.minimum(((t - tick) * len(_SYNC_STAGES)) // duration, len(_SYNC_STAGES) - 1)
        floor = np.full(code.shape, -int(self.created[i]), dtype=np.int64)
        present = code != _OMIT
        for j, at in fixed.items():
            if code[j] == _OMIT:  # refreshed: syncs on schedule from then on
                present[j] = True
                floor[j] = at
        success_at = np.where(running, tick - schedule, tick)
        has_success = (success_at >= floor) & (code != _NS)
        present &= tick >= floor
        per_cell: dict[int, list[tuple[int, int, int, str]]] = {}
        for w in self.windows(i, t):
            for j in np.flatnonzero(w.cells).tolist():
                end = w.end
                fix = fixed.get(j)
                if fix is not None and w.fixable and w.start <= fix < end:
                    end = fix  # a refresh fixed it
                per_cell.setdefault(j, []).append((w.start, end, w.kind, w.status))
        states: list[_CellState] = []
        ticks, dones, stages = tick.tolist(), (tick + duration).tolist(), stage.tolist()
        successes = success_at.tolist()
        for j in range(len(code)):
            if not present[j]:
                states.append(_CellState(False, _Sync(0, None, ""), None))
                continue
            wins = per_cell.get(j)
            if wins is not None:
                wins.sort(key=lambda w: w[2])
                latest, success = _walk(
                    t, int(phase[j]), int(schedule[j]), int(duration[j]), int(floor[j]), wins
                )
                states.append(_CellState(latest is not None, latest or _Sync(0, None, ""), success))
                continue
            if running[j]:
                latest = _Sync(ticks[j], None, _SYNC_STAGES[stages[j]])
            else:
                status = "NotSupported" if code[j] == _NS else "Complete"
                latest = _Sync(ticks[j], dones[j], status)
            success = None
            if has_success[j]:
                at = successes[j]
                success = latest if at == ticks[j] else _Sync(at, at + int(duration[j]), "Complete")
            states.append(_CellState(True, latest, success))
        return states

    def refresh_outcome(self, i: int, j: int, t: int) -> str:
        if self.code[i, j] == _NS:
            return "NotSupported"
        if self.conn_state[i, self.source_of_type[j]] in (_DEAUTH, _UNLINKED):
            return "AuthError"
        active = [w for w in self.windows(i, t) if w.cells[j] and w.start <= t < w.end]
        active.sort(key=lambda w: (w.kind != _AUTH, w.kind != _STUCK, w.kind))
        for w in active:
            if w.kind == _AUTH:
                return "AuthError"
            if w.kind == _STUCK:
                return "Queued"  # the connector is offline: the sync never starts
            if w.kind == _FAIL and not w.fixable:
                return w.status
            if w.origin == "dormant" and t - w.start > _TOKEN_LIFETIME_MINUTES:
                return "AuthError"  # the token expired while nothing synced
        return "Complete"

    # --- builders ------------------------------------------------------------------------
    def company(self, i: int, t: int, states: list[_CellState] | None = None) -> dict[str, Any]:
        newest = np.full(len(_SOURCES), -_INF, dtype=np.int64)
        if states is None and not self.windows(i, t):  # fast path: everything on schedule
            schedule, phase, duration = self._timing(i)
            tick = phase + ((t - phase) // schedule) * schedule
            done = np.where(tick + duration > t, tick - schedule, tick) + duration
            synced = (self.code[i] != _OMIT) & (self.code[i] != _NS)
            for s in range(len(_SOURCES)):
                mask = synced & self.source_masks[s]
                if mask.any():
                    newest[s] = int(done[mask].max())
        else:
            for j, cell in enumerate(states or self.evaluate(i, t)):
                if cell.success is not None:
                    s = int(self.source_of_type[j])
                    newest[s] = max(int(newest[s]), cell.success.done or 0)
        a, b, c = (int(x) for x in self.name_parts[i])
        company_id = self.ids[i]
        created = -int(self.created[i])
        stamps = self._stamps(
            np.array([created, int(newest.max()), *(created + 120 + 60 * s for s in range(3)),
                      *newest.tolist()], dtype=np.int64)
        )  # fmt: skip
        company: dict[str, Any] = {
            "id": company_id,
            "name": f"{_NAME_A[a]} {_NAME_B[b]} {_NAME_C[c]}",
            "description": f"Sandbox company {i + 1}",
            "redirect": f"https://link.codat.io/company/{company_id}",
            "created": stamps[0],
            "createdByUserName": "sandbox",
            "products": ["lending"],
            "tags": {"region": _REGIONS[int(self.region[i])]},
            "referenceSubsidiaryCompanies": [],
        }
        if newest.max() > -_INF:
            company["lastSync"] = stamps[1]
        conns = []
        for s, platforms in enumerate(_PLATFORMS_BY_SOURCE):
            state = int(self.conn_state[i, s])
            if state == _NONE:
                continue
            platform = platforms[int(self.platform[i, s])]
            conn_id = _uid(self.seed, "connection", i, s)
            conn: dict[str, Any] = {
                "id": conn_id,
                "integrationId": _uid(0, "integration", platform.key),
                "integrationKey": platform.key,
                "sourceId": _uid(0, "source", platform.key),
                "sourceType": platform.source_type,
                "platformName": platform.name,
                "linkUrl": f"https://link-api.codat.io/companies/{company_id}/connections/{conn_id}/start",
                "status": _CONN_STATUS[state],
                "created": stamps[2 + s],
            }
            if state != _PENDING and newest[s] > -_INF:
                conn["lastSync"] = stamps[5 + s]
            conns.append(conn)
        company["dataConnections"] = conns
        return company

    def record(self, i: int, t: int, fixed: Mapping[int, int] | None = None) -> CompanyRecord:
        states = self.evaluate(i, t, fixed)
        company = self.company(i, t, states)
        company_id = self.ids[i]
        minutes: list[int] = []
        for cell in states:
            if cell.present:
                latest, success = cell.latest, cell.success
                minutes += [latest.requested, 0 if latest.done is None else latest.done]
                minutes += [success.requested, success.done or 0] if success else [0, 0]
        stamps = self._stamps(np.array(minutes, dtype=np.int64))
        conn_of_source = {
            _SOURCES.index(c["sourceType"]): c["id"] for c in company["dataConnections"]
        }
        data_status: dict[str, Any] = {}
        ops: list[tuple[int, dict[str, Any]]] = []
        k = 0
        for j, cell in enumerate(states):
            if not cell.present:
                continue
            data_type = ALL_DATA_TYPES[j]
            conn_id = conn_of_source[int(self.source_of_type[j])]
            latest, success = cell.latest, cell.success
            entry: dict[str, Any] = {"dataType": data_type, "currentStatus": latest.status}
            latest_id = _uid(self.seed, "sync", i, j, latest.requested)
            if success is not None:
                success_id = (
                    latest_id
                    if success is latest
                    else _uid(self.seed, "sync", i, j, success.requested)
                )
                entry["lastSuccessfulSync"] = stamps[k + 3]
                if success is not latest:
                    ops.append(
                        (
                            success.requested,
                            _pull_op(
                                success_id, company_id, conn_id, data_type, "Complete",
                                stamps[k + 2], stamps[k + 3],
                            ),
                        )
                    )  # fmt: skip
            ops.append(
                (
                    latest.requested,
                    _pull_op(
                        latest_id, company_id, conn_id, data_type, latest.status, stamps[k],
                        stamps[k + 1] if latest.done is not None else None,
                    ),
                )
            )  # fmt: skip
            entry["latestSyncId"] = latest_id
            if success is not None:
                entry["latestSuccessfulSyncId"] = success_id
            data_status[data_type] = entry
            k += 4
        ops.sort(key=lambda item: -item[0])  # newest first
        error = None
        if self.ds_error[i]:
            code = int(self.ds_error_code[i])
            error = {
                "statusCode": code,
                "service": "PublicApi",
                "error": (
                    f"No company was found with ID {company_id}"
                    if code == 404
                    else "There is a problem with our server. Please try again later."
                ),
                "correlationId": _uid(self.seed, "corr", i).replace("-", ""),
                "canBeRetried": "Unknown",
                "detailedErrorCode": 0,
            }
        settings = None
        if self.override[i]:
            changed = []
            for s in self.sync_settings["settings"]:
                s2 = dict(s)
                if s2["dataType"] in ("invoices", "bills", "bankTransactions", "payments"):
                    s2["syncSchedule"] = 12
                changed.append(s2)
            settings = {"companyId": company_id, "settings": changed, "overridesDefaults": True}
        return CompanyRecord(
            company=company,
            data_status=data_status,
            pull_operations=[op for _, op in ops],
            data_status_error=error,
            sync_settings=settings,
        )


def _walk(
    t: int, phase: int, schedule: int, duration: int, floor: int,
    wins: list[tuple[int, int, int, str]],
) -> tuple[_Sync | None, _Sync | None]:  # fmt: skip
    """``(latest sync, latest successful sync)`` at minute ``t`` of a data type with trouble
    windows ``wins`` (``(start, end, kind, status)``, sorted by kind: stop first)."""
    latest: _Sync | None = None
    x = t
    for _ in range(64):
        tick = phase + ((x - phase) // schedule) * schedule
        if tick < floor:
            break
        hit = next((w for w in wins if w[0] <= tick < w[1]), None)
        if hit is None:
            if latest is None and tick + duration > t:
                latest = _Sync(tick, None, _stage(t - tick, duration))
                x = tick - 1
                continue
            done = _Sync(tick, tick + duration, "Complete")
            return latest or done, done
        start, end, kind, status = hit
        if kind == _STOP:
            x = start - 1
            continue
        if kind == _STUCK:
            first = phase - ((phase - start) // schedule) * schedule  # first tick >= start
            if end <= t:  # back online: the stuck sync completed when the window ended
                done = _Sync(first, end, "Complete")
                return latest or done, done
            if latest is None:
                latest = _Sync(first, None, status)
            x = start - 1
            continue
        if latest is None:  # AuthError or an error: every sync in the window fails
            if tick + duration > t:
                latest = _Sync(tick, None, _stage(t - tick, duration))
            else:
                latest = _Sync(tick, tick + duration, status)
        x = start - 1
    return latest, None


def _stage(elapsed: int, duration: int) -> str:
    return _SYNC_STAGES[min(elapsed * len(_SYNC_STAGES) // duration, len(_SYNC_STAGES) - 1)]


def _pull_op(
    op_id: str,
    company_id: str,
    connection_id: str,
    data_type: str,
    status: str,
    requested: str,
    completed: str | None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "id": op_id,
        "companyId": company_id,
        "connectionId": connection_id,
        "dataType": data_type,
        "status": status,
        "requested": requested,
        "progress": _PROGRESS.get(status, 100),
        "isCompleted": status == "Complete",
        "isErrored": status in _ERROR_MESSAGES,
    }
    if completed is not None:
        op["completed"] = completed
    if status in _ERROR_MESSAGES:
        op["errorMessage"] = _ERROR_MESSAGES[status]
    return op


def generate_fleet(
    companies: int = 500, seed: int = 0, now: datetime | None = None
) -> GeneratedFleet:
    """A realistic fleet of ``companies`` companies; the same arguments give the same fleet.

    ``now`` (timezone-aware) is the moment the fleet describes: every time is relative to it.
    It defaults to the current time, truncated to the second. The fleet lives on after
    ``now``: :meth:`GeneratedFleet.record_at` gives a company at any later sandbox time.
    """
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
    return GeneratedFleet(companies, seed, now)
