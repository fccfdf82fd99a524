"""All random draws of a generated fleet (``FleetArrays``), made up front with numpy.

One row per company (or per company x data type); the shares drawn are the trouble model's
(:mod:`auditor.sandbox._trouble`). Nothing here depends on sandbox time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from auditor.constants import ALL_DATA_TYPES, source_type_of
from auditor.sandbox._fleet import default_sync_settings
from auditor.sandbox._platforms import ACCOUNTING_PLATFORMS, PLATFORMS_BY_SOURCE, SOURCES
from auditor.sandbox._shares import (
    AUTH_BROKEN_SHARE,
    CALM_FACTOR,
    CELL_MIX,
    CHRONIC_FAIL,
    CHRONIC_LAG,
    CHRONIC_STUCK,
    COMPANY_MIX,
    DATA_STATUS_ERROR_SHARE,
    DEAUTH,
    DORMANT,
    ERRORS,
    FIRST_FAIL,
    FRAGILE_SHARE,
    HEALTHY,
    LINKED,
    MINUTES_PER_DAY,
    NEVER_SYNCED_NOT_ON_FIRST_LINK,
    NONE,
    NS,
    OFFLINE_CONNECTOR_SHARE,
    OK,
    OMIT,
    OVERRIDE_SHARE,
    PENDING,
    RUNNING,
    STALE,
    TROUBLED_FACTOR,
    TROUBLED_SHARE,
    UNLINKED,
    Outage,
)
from auditor.sandbox._util import uid

NAME_A: Final = (
    "Acme", "Birch", "Cobalt", "Dune", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen", "Maple", "Nimbus", "Orchid", "Pioneer", "Quartz", "Raven", "Summit",
    "Tidal", "Umber", "Vista", "Willow", "Yarrow", "Zephyr", "Atlas", "Beacon", "Cedar",
)  # fmt: skip
NAME_B: Final = (
    "Bakery", "Builders", "Coffee", "Dental", "Engineering", "Foods", "Garden", "Hardware",
    "Logistics", "Media", "Motors", "Outfitters", "Pharmacy", "Print", "Roofing", "Software",
    "Studio", "Supplies", "Textiles", "Travel", "Vineyards", "Wellness", "Analytics", "Cycles",
)  # fmt: skip
NAME_C: Final = ("Ltd", "Inc.", "LLC", "GmbH", "& Co", "Group", "Partners", "Holdings")
REGIONS: Final = ("uk", "us", "eu", "au", "ca")


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


class FleetArrays:
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
        self.outage_cache: dict[int, Outage | None] = {}  # day -> its outage
        rng = np.random.default_rng([seed, n, 20240501])
        types = ALL_DATA_TYPES
        n_types = len(types)
        self.sync_settings = default_sync_settings()
        settings = self.sync_settings["settings"]
        schedule = {s["dataType"]: int(s["syncSchedule"]) for s in settings}
        order = {s["dataType"]: int(s["syncOrder"]) for s in settings}
        self.schedule = np.array([schedule[t] * 60 for t in types], dtype=np.int64)  # minutes
        self.weekly = self.schedule >= 7 * MINUTES_PER_DAY
        self.stagger = np.array([order[t] // 4 for t in types], dtype=np.int64)  # minutes
        self.override_types = np.array(
            [t in ("invoices", "bills", "bankTransactions", "payments") for t in types]
        )
        self.source_of_type = np.array([SOURCES.index(source_type_of(t)) for t in types])
        self.source_masks = [self.source_of_type == s for s in range(len(SOURCES))]
        not_on_first_link = np.array([not s["fetchOnFirstLink"] for s in settings], dtype=bool)

        # --- company level -------------------------------------------------------------
        self.ids = [uid(seed, "company", i) for i in range(n)]
        self.conn_state = np.stack(
            [
                _exact_labels(rng, n, COMPANY_MIX["accounting"]),
                _exact_labels(rng, n, COMPANY_MIX["banking"]),
                _exact_labels(rng, n, COMPANY_MIX["commerce"]),
            ],
            axis=1,
        )  # n x 3
        self.platform = np.stack(
            [_pick(rng, n, [p.weight for p in ps]) for ps in PLATFORMS_BY_SOURCE], axis=1
        )
        self.profile = _exact_labels(rng, n, COMPANY_MIX["profile"])
        healthy = self.profile == HEALTHY
        acct_linked = self.conn_state[:, 0] == LINKED
        self.auth_broken = _flag(rng, acct_linked & healthy, AUTH_BROKEN_SHARE)
        self.on_premise = np.array([p.on_premise for p in ACCOUNTING_PLATFORMS])[
            self.platform[:, 0]
        ]
        self.offline = _flag(
            rng, acct_linked & self.on_premise & ~self.auth_broken & healthy,
            OFFLINE_CONNECTOR_SHARE,
        )  # fmt: skip
        has_any = (self.conn_state != NONE).any(axis=1)
        self.ds_error = _flag(rng, has_any, DATA_STATUS_ERROR_SHARE)
        self.override = _flag(rng, has_any & ~self.ds_error, OVERRIDE_SHARE)
        self.name_parts = rng.integers(0, [len(NAME_A), len(NAME_B), len(NAME_C)], size=(n, 3))
        self.region = rng.integers(0, len(REGIONS), size=n)
        self.fragile = rng.random(n) < FRAGILE_SHARE
        self.phase = rng.integers(0, MINUTES_PER_DAY, size=n)  # minute of day of the syncs
        self.weekday = rng.integers(0, 7, size=n)  # day of the weekly syncs
        self.weak_type = rng.integers(0, n_types, size=n)  # the type that fails again
        day = MINUTES_PER_DAY
        # Chronic trouble starts (minutes after t0, so negative).
        self.lost_start = -rng.integers(2 * day, 60 * day, size=n)  # Deauthorized / Unlinked
        self.stale_start = -rng.integers(5 * day, 24 * day, size=n)
        self.dormant_start = np.where(
            _flag(rng, self.profile == DORMANT, 0.5),  # half at risk, half past 30 days
            -rng.integers(int(25.2 * day), int(28.5 * day), size=n),
            -rng.integers(30 * day, 90 * day, size=n),
        )
        self.auth_start = -rng.integers(day, 60 * day, size=n)
        self.offline_start = -rng.integers(26 * 60, 240 * 60, size=n)

        # --- company x data type ---------------------------------------------------------
        state = self.conn_state[:, self.source_of_type]  # n x T
        not_supported = np.zeros((n, n_types), dtype=bool)
        for s, platforms in enumerate(PLATFORMS_BY_SOURCE):
            table = np.array([[t in p.not_supported for t in types] for p in platforms])
            not_supported |= table[self.platform[:, s]] & (self.source_of_type == s)[None, :]
        # Problems cluster: a few troubled companies have most chronic troubles.
        troubled = _exact_labels(rng, n, {1: TROUBLED_SHARE, 0: 1.0 - TROUBLED_SHARE}) == 1
        factor = np.where(troubled, TROUBLED_FACTOR, CALM_FACTOR)[:, None]
        u = rng.random((n, n_types)) / factor
        code = np.full((n, n_types), OK, dtype=np.int8)
        kinds = (OMIT, FIRST_FAIL, CHRONIC_FAIL, CHRONIC_STUCK, CHRONIC_LAG)
        edges = np.cumsum([CELL_MIX[k] for k in kinds])
        for kind, edge in reversed(list(zip(kinds, edges, strict=True))):
            code[u < edge] = kind
        never = not_on_first_link[None, :] & (
            rng.random((n, n_types)) < NEVER_SYNCED_NOT_ON_FIRST_LINK
        )
        code[never] = OMIT
        lost = (state == DEAUTH) | (state == UNLINKED)
        code[lost & (code != OMIT)] = OK  # the connection's own trouble rules
        code[not_supported] = NS
        code[(state == NONE) | (state == PENDING)] = OMIT
        self.code = code
        sched_h = self.schedule[None, :].astype(np.float64)
        start = np.zeros((n, n_types))
        start = np.where(
            code == CHRONIC_FAIL, -sched_h * rng.uniform(0.3, 8.0, (n, n_types)), start
        )
        start = np.where(
            code == CHRONIC_STUCK, -rng.uniform(6.5 * 60, 10 * day, (n, n_types)), start
        )
        start = np.where(code == CHRONIC_LAG, -sched_h * rng.uniform(1.2, 6.0, (n, n_types)), start)
        self.cell_start = start.astype(np.int64)
        self.error_kind = _pick(rng, n * n_types, [w for _, w in ERRORS]).reshape(n, n_types)
        self.running_kind = _pick(rng, n * n_types, [w for _, w in RUNNING]).reshape(n, n_types)
        self.cell_u = rng.random((n, n_types)).astype(np.float32)
        # Created well before the oldest trouble began.
        oldest = np.max(-self.cell_start, axis=1) if n_types and n else np.zeros(n)
        oldest = np.maximum(oldest, np.where(lost.any(axis=1), -self.lost_start, 0))
        oldest = np.maximum(oldest, np.where(self.profile == STALE, -self.stale_start, 0))
        oldest = np.maximum(oldest, np.where(self.profile == DORMANT, -self.dormant_start, 0))
        oldest = np.maximum(oldest, np.where(self.auth_broken, -self.auth_start, 0))
        created = rng.integers(40 * day, 4 * 365 * day, size=n)
        self.created = np.maximum(created, oldest + 10 * day).astype(np.int64)
        self.ds_error_code = np.where(rng.random(n) < 0.5, 404, 500)

    # --- time ----------------------------------------------------------------------------
    def minute_of(self, when: datetime) -> int:
        if when.tzinfo is None:
            raise ValueError("sandbox times must be timezone-aware")
        return int((when - self.now).total_seconds() // 60)

    def stamps(self, minutes: npt.NDArray[np.int64]) -> list[str]:
        """Codat timestamps ``minutes`` after t0, all at once."""
        moments = (self._now64 + minutes.astype("timedelta64[m]")).astype("datetime64[ms]")
        return [text + "Z" for text in np.datetime_as_string(moments, unit="ms").tolist()]
