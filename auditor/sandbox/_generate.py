"""A deterministic, realistic generated fleet (``generate_fleet``).

Everything random is drawn up front with numpy, as arrays of one row per company (or per
company x data type); a company's JSON objects are built only when it is asked for, so that
100,000 companies take a second or two and little memory. The same ``(companies, seed, now)``
always gives the same fleet, byte for byte.

The mix (exact shares are in ``_COMPANY_MIX`` and ``_CELL_MIX`` below):

* accounting platforms Xero, QuickBooks Online, QuickBooks Desktop (on-premise), Sage Intacct,
  Oracle NetSuite, FreeAgent, Sage Business Cloud, Dynamics 365 Business Central, Zoho Books,
  Exact Online; some companies add a Banking (Plaid, TrueLayer, Yodlee) or Commerce (Shopify,
  Square, Stripe, Amazon) connection; a few have no connection, or one that is PendingAuth,
  Deauthorized or Unlinked;
* health profiles: most companies synced within their schedule, some lagging by days, some
  stale by weeks, some dormant for more than 25-30 days (token expiry);
* per data type: mostly Complete; some lagging members (cross-type skew), FetchError and other
  errors after a success, errors with no success at all, in-progress syncs (some requested
  hours or days ago: stuck; QuickBooks Desktop connectors offline), AuthError for revoked or
  Deauthorized connections, NotSupported per platform, never-synced types (absent);
* a few companies whose dataStatus cannot be read (``dataStatusError``, 404 or 500) and a few
  with their own sync settings.

Integration keys and ids are sandbox values, not Codat's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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
    format_timestamp,
)

__all__ = ["GeneratedFleet", "Platform", "generate_fleet"]


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

# Health profiles (hours since the company's latest scheduled run).
_HEALTHY, _LAGGING, _STALE, _DORMANT = 0, 1, 2, 3

#: Company-level shares (exact counts, shuffled, so small fleets still have every kind).
_COMPANY_MIX: Final[dict[str, dict[int, float]]] = {
    "accounting": {_NONE: 0.02, _PENDING: 0.03, _DEAUTH: 0.04, _UNLINKED: 0.02, _LINKED: 0.89},
    "banking": {_LINKED: 0.13, _DEAUTH: 0.02, _NONE: 0.85},
    "commerce": {_LINKED: 0.08, _PENDING: 0.01, _DEAUTH: 0.01, _NONE: 0.90},
    "profile": {_HEALTHY: 0.84, _LAGGING: 0.08, _STALE: 0.04, _DORMANT: 0.04},
}
_AUTH_BROKEN_SHARE: Final = 0.015  # Linked, but the token was revoked: AuthError everywhere
_OFFLINE_CONNECTOR_SHARE: Final = 0.35  # of on-premise companies: syncs stuck for days
_DATA_STATUS_ERROR_SHARE: Final = 0.005  # dataStatus unreadable (404 or 500)
_OVERRIDE_SHARE: Final = 0.02  # company has its own sync settings

# Cell (company x data type) outcomes.
_OMIT, _COMPLETE, _AFTER_FAIL, _FIRST_FAIL, _IN_PROGRESS, _NOT_SUPPORTED, _AUTH = range(7)
#: Per-cell shares for a Linked connection (the rest is Complete).
_CELL_MIX: Final[dict[int, float]] = {
    _OMIT: 0.012,
    _FIRST_FAIL: 0.004,
    _AFTER_FAIL: 0.025,
    _IN_PROGRESS: 0.015,
}
_NEVER_SYNCED_NOT_ON_FIRST_LINK: Final = 0.30
#: Share of "troubled" companies; cell problem rates are multiplied by the factors below.
_TROUBLED_SHARE: Final = 0.12
_TROUBLED_FACTOR: Final = 4.0
_CALM_FACTOR: Final = 0.1

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


def _uid(seed: int, *parts: object) -> str:
    """A deterministic version-4 UUID string from ``seed`` and ``parts``."""
    text = f"{seed}|{'|'.join(map(str, parts))}".encode()
    h = hashlib.blake2b(text, digest_size=16).hexdigest()
    variant = "89ab"[int(h[16], 16) & 0x3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


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


class GeneratedFleet(Fleet):
    """A :class:`Fleet` whose records are built from arrays on access."""

    def __init__(self, companies: int, seed: int, now: datetime) -> None:
        data = _FleetArrays(companies, seed, now)
        self._data = data
        super().__init__(_LazyRecords(data), data.sync_settings, now=now, company_ids=data.ids)
        self.seed = seed

    def company_at(self, index: int) -> dict[str, Any]:
        return self._data.company(index)


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
            return [self._data.record(i) for i in range(*index.indices(self._data.n))]
        if index < 0:
            index += self._data.n
        if not 0 <= index < self._data.n:
            raise IndexError(index)
        return self._data.record(index)


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
        rng = np.random.default_rng([seed, n, 20240501])
        types = ALL_DATA_TYPES
        n_types = len(types)
        self.sync_settings = default_sync_settings()
        schedule = {s["dataType"]: float(s["syncSchedule"]) for s in self.sync_settings["settings"]}
        self.schedule = np.array([schedule[t] for t in types], dtype=np.float64)
        self.source_of_type = np.array([_SOURCES.index(source_type_of(t)) for t in types])
        not_on_first_link = np.array(
            [not s["fetchOnFirstLink"] for s in self.sync_settings["settings"]], dtype=bool
        )

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
        profile = _exact_labels(rng, n, _COMPANY_MIX["profile"])
        low = np.array([0.2, 26.0, 5 * 24.0, 25.5 * 24])[profile]
        high = np.array([23.5, 120.0, 24 * 24.0, 100 * 24.0])[profile]
        run_age = rng.uniform(low, high)
        # A Deauthorized/Unlinked connection stopped syncing days to weeks ago.
        lost_age = rng.uniform(2 * 24.0, 60 * 24.0, size=n)
        acct_linked = self.conn_state[:, 0] == _LINKED
        auth_broken = _flag(rng, acct_linked, _AUTH_BROKEN_SHARE)
        on_premise = np.array([p.on_premise for p in ACCOUNTING_PLATFORMS])[self.platform[:, 0]]
        offline = _flag(rng, acct_linked & on_premise & ~auth_broken, _OFFLINE_CONNECTOR_SHARE)
        has_any = (self.conn_state != _NONE).any(axis=1)
        self.ds_error = _flag(rng, has_any, _DATA_STATUS_ERROR_SHARE)
        self.override = _flag(rng, has_any & ~self.ds_error, _OVERRIDE_SHARE)
        self.name_parts = rng.integers(0, [len(_NAME_A), len(_NAME_B), len(_NAME_C)], size=(n, 3))
        self.region = rng.integers(0, len(_REGIONS), size=n)

        # --- company x data type ---------------------------------------------------------
        state = self.conn_state[:, self.source_of_type]  # n x T
        not_supported = np.zeros((n, n_types), dtype=bool)
        for s, platforms in enumerate(_PLATFORMS_BY_SOURCE):
            table = np.array([[t in p.not_supported for t in types] for p in platforms])
            not_supported |= table[self.platform[:, s]] & (self.source_of_type == s)[None, :]

        # Problems cluster: a few troubled companies have most failing, lagging and stuck
        # data types; the rest fail rarely.
        troubled = _exact_labels(rng, n, {1: _TROUBLED_SHARE, 0: 1.0 - _TROUBLED_SHARE}) == 1
        factor = np.where(troubled, _TROUBLED_FACTOR, _CALM_FACTOR)[:, None]
        u = rng.random((n, n_types)) / factor
        outcome = np.full((n, n_types), _COMPLETE, dtype=np.int8)
        edges = np.cumsum([_CELL_MIX[k] for k in (_OMIT, _FIRST_FAIL, _AFTER_FAIL, _IN_PROGRESS)])
        outcome[u < edges[3]] = _IN_PROGRESS
        outcome[u < edges[2]] = _AFTER_FAIL
        outcome[u < edges[1]] = _FIRST_FAIL
        outcome[u < edges[0]] = _OMIT
        never = not_on_first_link[None, :] & (
            rng.random((n, n_types)) < _NEVER_SYNCED_NOT_ON_FIRST_LINK
        )
        outcome[never] = _OMIT
        acct_cells = self.source_of_type[None, :] == 0
        outcome[auth_broken[:, None] & acct_cells] = _AUTH
        stuck_cells = offline[:, None] & acct_cells & (rng.random((n, n_types)) < 0.6)
        outcome[stuck_cells] = _IN_PROGRESS
        outcome[not_supported] = _NOT_SUPPORTED
        deauth = state == _DEAUTH
        outcome[deauth] = np.where(rng.random((n, n_types)) < 0.85, _AUTH, _COMPLETE)[deauth]
        outcome[state == _UNLINKED] = _COMPLETE
        outcome[(state == _NONE) | (state == _PENDING)] = _OMIT

        base_age = np.where(
            (state == _DEAUTH) | (state == _UNLINKED), lost_age[:, None], run_age[:, None]
        )
        jitter = rng.uniform(0.0, 0.4, size=(n, n_types))
        lag = np.where(
            rng.random((n, n_types)) < 0.05 * factor, rng.geometric(0.5, size=(n, n_types)), 0
        )
        offset = rng.uniform(0.0, 1.0, size=(n, n_types)) * (self.schedule - 24.0)[None, :]
        success_age = base_age + jitter + offset + lag * self.schedule[None, :]
        latest_age = np.full((n, n_types), np.nan)

        fail_k = rng.geometric(0.5, size=(n, n_types))
        after = outcome == _AFTER_FAIL
        success_age[after] = (base_age + jitter + fail_k * self.schedule[None, :])[after]
        latest_age[after] = (base_age + jitter)[after]

        first = outcome == _FIRST_FAIL
        latest_age[first] = (base_age + jitter)[first]
        success_age[first] = np.nan

        running = outcome == _IN_PROGRESS
        r = rng.random((n, n_types))
        requested = np.where(
            r < 0.65,
            rng.uniform(0.05, 2.0, size=(n, n_types)),
            np.where(
                r < 0.85,
                rng.uniform(6.5, 23.5, size=(n, n_types)),
                rng.uniform(25.0, 240.0, size=(n, n_types)),
            ),
        )
        requested = np.where(stuck_cells, rng.uniform(26.0, 240.0, size=(n, n_types)), requested)
        latest_age[running] = requested[running]
        success_age[running] = np.maximum(success_age, requested + 24.0 + jitter)[running]
        success_age[running & (rng.random((n, n_types)) < 0.1)] = np.nan

        auth = outcome == _AUTH
        success_age[auth] = (lost_age[:, None] + jitter)[auth]
        latest_age[auth] = np.minimum(run_age[:, None] + jitter, success_age - 1.0)[auth]

        ns = outcome == _NOT_SUPPORTED
        latest_age[ns] = (base_age + jitter)[ns]
        success_age[ns] = np.nan

        omit = outcome == _OMIT
        success_age[omit] = np.nan

        self.outcome = outcome
        self.success_age = success_age.astype(np.float32)
        self.latest_age = latest_age.astype(np.float32)
        self.error_kind = _pick(rng, n * n_types, [w for _, w in _ERRORS]).reshape(n, n_types)
        self.running_kind = _pick(rng, n * n_types, [w for _, w in _RUNNING]).reshape(n, n_types)
        newest = (
            np.nanmin(np.where(np.isnan(success_age), np.inf, success_age), axis=1)
            if n
            else np.zeros(0)
        )
        self.newest_success_age = newest
        oldest = (
            np.nanmax(np.where(np.isnan(success_age), -np.inf, success_age), axis=1)
            if n
            else np.zeros(0)
        )
        self.created_age = np.maximum(rng.uniform(40 * 24.0, 4 * 365 * 24.0, size=n), oldest + 48.0)
        self.ds_error_code = np.where(rng.random(n) < 0.5, 404, 500)

    # --- builders ------------------------------------------------------------------------
    def _at(self, age_hours: float) -> str:
        return format_timestamp(self.now - timedelta(hours=float(age_hours)))

    def _connections(self, i: int) -> list[dict[str, Any]]:
        company_id = self.ids[i]
        conns = []
        created_age = float(self.created_age[i])
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
                "created": self._at(created_age - 2.0 - s),
            }
            ages = self.success_age[i, self.source_of_type == s]
            if state != _PENDING and not np.isnan(ages).all():
                conn["lastSync"] = self._at(float(np.nanmin(ages)))
            conns.append(conn)
        return conns

    def company(self, i: int) -> dict[str, Any]:
        a, b, c = (int(x) for x in self.name_parts[i])
        company_id = self.ids[i]
        company: dict[str, Any] = {
            "id": company_id,
            "name": f"{_NAME_A[a]} {_NAME_B[b]} {_NAME_C[c]}",
            "description": f"Sandbox company {i + 1}",
            "redirect": f"https://link.codat.io/company/{company_id}",
            "created": self._at(float(self.created_age[i])),
            "createdByUserName": "sandbox",
            "products": ["lending"],
            "tags": {"region": _REGIONS[int(self.region[i])]},
            "referenceSubsidiaryCompanies": [],
        }
        if np.isfinite(self.newest_success_age[i]):
            company["lastSync"] = self._at(float(self.newest_success_age[i]))
        company["dataConnections"] = self._connections(i)
        return company

    def _stamps(self, ages: npt.NDArray[np.float64]) -> list[str]:
        """Codat timestamps ``ages`` hours before ``now``, all at once (NaN gives junk)."""
        micros = np.round(np.nan_to_num(ages) * 3.6e9).astype("timedelta64[us]")
        moments = (self._now64 - micros).astype("datetime64[ms]")
        return [text + "Z" for text in np.datetime_as_string(moments, unit="ms").tolist()]

    def record(self, i: int) -> CompanyRecord:
        company = self.company(i)
        n_types = len(ALL_DATA_TYPES)
        duration = (2 + (i * 31 + np.arange(n_types) * 17) % 23) / 60.0  # hours a sync took
        success_ages = self.success_age[i].astype(np.float64)
        latest_ages = self.latest_age[i].astype(np.float64)
        stamps = self._stamps(
            np.concatenate(
                [success_ages, success_ages + duration, latest_ages, latest_ages - duration]
            )
        )
        success_done = stamps[:n_types]
        success_requested = stamps[n_types : 2 * n_types]
        latest_requested = stamps[2 * n_types : 3 * n_types]
        latest_done = stamps[3 * n_types :]
        company_id = self.ids[i]
        conn_of_source = {
            _SOURCES.index(c["sourceType"]): c["id"] for c in company["dataConnections"]
        }
        data_status: dict[str, Any] = {}
        ops: list[tuple[float, dict[str, Any]]] = []
        for t, data_type in enumerate(ALL_DATA_TYPES):
            outcome = int(self.outcome[i, t])
            if outcome == _OMIT:
                continue
            conn_id = conn_of_source[int(self.source_of_type[t])]
            success_age = float(self.success_age[i, t])
            latest_age = float(self.latest_age[i, t])
            if outcome == _COMPLETE:
                status = "Complete"
            elif outcome == _NOT_SUPPORTED:
                status = "NotSupported"
            elif outcome == _AUTH:
                status = "AuthError"
            elif outcome == _IN_PROGRESS:
                status = _RUNNING[int(self.running_kind[i, t])][0]
            else:
                status = _ERRORS[int(self.error_kind[i, t])][0]
            entry: dict[str, Any] = {"dataType": data_type, "currentStatus": status}
            success_id = None
            if not np.isnan(success_age):
                success_id = _uid(self.seed, "sync", i, t, "ok")
                entry["lastSuccessfulSync"] = success_done[t]
                ops.append(
                    (
                        success_age + float(duration[t]),
                        _pull_op(
                            success_id,
                            company_id,
                            conn_id,
                            data_type,
                            "Complete",
                            success_requested[t],
                            success_done[t],
                        ),
                    )
                )
            if status == "Complete" and success_id is not None:
                latest_id = success_id
            else:
                latest_id = _uid(self.seed, "sync", i, t, "latest")
                finished = status not in _PROGRESS
                ops.append(
                    (
                        latest_age,
                        _pull_op(
                            latest_id,
                            company_id,
                            conn_id,
                            data_type,
                            status,
                            latest_requested[t],
                            latest_done[t] if finished else None,
                        ),
                    )
                )
            entry["latestSyncId"] = latest_id
            if success_id is not None:
                entry["latestSuccessfulSyncId"] = success_id
            data_status[data_type] = entry
        ops.sort(key=lambda item: item[0])  # newest first
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

    ``now`` (timezone-aware) is the moment the fleet describes: every age is relative to it.
    It defaults to the current time, truncated to the second.
    """
    if now is None:
        now = datetime.now(UTC).replace(microsecond=0)
    return GeneratedFleet(companies, seed, now)
