"""The trouble model of a generated fleet: what goes wrong, how often, and for how long.

What goes wrong is a set of **trouble windows** (:class:`_Window`): ``[start, end)`` minutes
after the fleet's ``now`` x some data types x a kind:

* ``stop``: no sync is run (scheduler lagging or stopped, dormant company, Deauthorized or
  Unlinked connection): the type ages;
* ``stuck``: the first sync in the window never finishes until the window ends (connector
  offline, queue jam); then it completes;
* ``auth`` / ``fail``: every sync in the window ends in AuthError / the window's error.

Windows come from three places (:func:`windows`): **chronic** troubles drawn at generation
(the shares below, drawn by :mod:`auditor.sandbox._arrays`), **churn** (a hash of ``(seed,
company, day)``) and **provider outages** (a hash of ``(seed, day)``, :func:`outage_of_day`).
:func:`refresh_outcome` says what a refresh fixes. See :mod:`auditor.sandbox._generate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from auditor.constants import ALL_DATA_TYPES
from auditor.sandbox._arrays import FleetArrays
from auditor.sandbox._platforms import ACCOUNTING_PLATFORMS, SOURCES
from auditor.sandbox._shares import (
    _AFFECTED_STREAM,
    _CHURN_ERRORS,
    _CHURN_KINDS,
    _CHURN_RATE,
    _FRAGILE_FACTOR,
    _FRAGILE_RELAPSE_SHARE,
    _GOLDEN,
    _LOOKBACK_DAYS,
    _MASK64,
    _MIX1,
    _MIX2,
    _OUTAGE_DAY_SHARE,
    _OUTAGE_STREAM,
    _OUTAGE_TYPES,
    _RELAPSE_SHARE,
    _TOKEN_LIFETIME_MINUTES,
    _TRANSIENT_ERRORS,
    AUTH,
    CHRONIC_FAIL,
    CHRONIC_LAG,
    CHRONIC_STUCK,
    DEAUTH,
    DORMANT,
    ERRORS,
    FAIL,
    FIRST_FAIL,
    INF,
    LINKED,
    MINUTES_PER_DAY,
    NS,
    OK,
    OMIT,
    RUNNING,
    STALE,
    STOP,
    STUCK,
    UNLINKED,
    Outage,
)

__all__ = ["Outage", "outage_of_day", "refresh_outcome", "windows"]


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


def outage_of_day(data: FleetArrays, day: int) -> Outage | None:
    """The provider outage of ``day`` (days after t0), if that day has one."""
    if day in data.outage_cache:
        return data.outage_cache[day]
    u = _hash_units(data.seed, _OUTAGE_STREAM, np.array([day], dtype=np.int64), 8)[0]
    outage = None
    if u[0] < _OUTAGE_DAY_SHARE:
        platform = ACCOUNTING_PLATFORMS[_choose([p.weight for p in ACCOUNTING_PLATFORMS], u[1])]
        candidates = [t for t in _OUTAGE_TYPES if t not in platform.not_supported]
        data_type = candidates[int(u[2] * len(candidates))]
        start = (day - 1) * MINUTES_PER_DAY + int(u[4] * 720)
        length = 840 + int(u[5] * 1080)
        outage = Outage(
            day=day,
            platform=platform.name,
            data_type=data_type,
            status="FetchError" if u[3] < 0.7 else "InternalError",
            start=data.now + timedelta(minutes=start),
            end=data.now + timedelta(minutes=start + length),
            share=round(0.3 + 0.25 * float(u[6]), 3),
        )
    data.outage_cache[day] = outage
    return outage


def _eligible(data: FleetArrays, i: int) -> npt.NDArray[np.bool_]:
    """Data types that sync normally (churn and outages can hit them)."""
    linked = data.conn_state[i, data.source_of_type] == LINKED
    return linked & (data.code[i] == OK)  # type: ignore[no-any-return]


def windows(data: FleetArrays, i: int, t: int) -> list[_Window]:
    """Every trouble window of company ``i`` that can matter at minute ``t``."""
    code = data.code[i]
    synced = (code != OMIT) & (code != NS)
    out: list[_Window] = []
    for s in range(len(SOURCES)):
        state = int(data.conn_state[i, s])
        cells = synced & data.source_masks[s]
        if state == DEAUTH:
            auth = cells & (data.cell_u[i] < 0.85)
            start = int(data.lost_start[i])
            out.append(_Window(start, INF, AUTH, "AuthError", auth, False, "connection"))
            out.append(_Window(start, INF, STOP, "", cells & ~auth, False, "connection"))
        elif state == UNLINKED:
            start = int(data.lost_start[i])
            out.append(_Window(start, INF, STOP, "", cells, False, "connection"))
    acct = synced & data.source_masks[0]
    if data.auth_broken[i]:
        out.append(_Window(int(data.auth_start[i]), INF, AUTH, "AuthError", acct, False, "chronic"))
    if data.offline[i]:
        status = RUNNING[int(data.running_kind[i, 0])][0]
        out.append(_Window(int(data.offline_start[i]), INF, STUCK, status, acct, False, "chronic"))
    profile = int(data.profile[i])
    if profile == STALE:
        out.append(_Window(int(data.stale_start[i]), INF, STOP, "", synced, True, "chronic"))
    elif profile == DORMANT:
        out.append(_Window(int(data.dormant_start[i]), INF, STOP, "", synced, True, "dormant"))
    for j in np.flatnonzero((code >= FIRST_FAIL) & (code <= CHRONIC_LAG)).tolist():
        cell = np.zeros(code.shape, dtype=bool)
        cell[j] = True
        kind = int(code[j])
        start = -INF if kind == FIRST_FAIL else int(data.cell_start[i, j])
        if kind in (FIRST_FAIL, CHRONIC_FAIL):
            error = ERRORS[int(data.error_kind[i, j])][0]
            fixable = error in _TRANSIENT_ERRORS
            out.append(_Window(start, INF, FAIL, error, cell, fixable, "chronic"))
        elif kind == CHRONIC_STUCK:
            running = RUNNING[int(data.running_kind[i, j])][0]
            out.append(_Window(start, INF, STUCK, running, cell, False, "chronic"))
        else:
            out.append(_Window(start, INF, STOP, "", cell, True, "chronic"))
    out.extend(_churn(data, i, t))
    return out


def _churn(data: FleetArrays, i: int, t: int) -> list[_Window]:
    eligible = _eligible(data, i)
    if not eligible.any():
        return []
    today = t // MINUTES_PER_DAY + 1
    days = np.arange(today - _LOOKBACK_DAYS, today + 1, dtype=np.int64)
    out: list[_Window] = []
    rate = _CHURN_RATE * (_FRAGILE_FACTOR if data.fragile[i] else 1.0)
    relapse = _FRAGILE_RELAPSE_SHARE if data.fragile[i] else _RELAPSE_SHARE
    happens = np.flatnonzero(_hash_units(data.seed, i, days, 1)[:, 0] < rate)
    days_hit = days[happens]
    draws = _hash_units(data.seed, i, days_hit, 10) if happens.size else np.zeros((0, 10))
    for k in range(days_hit.size):
        u = draws[k].tolist()
        start = (int(days_hit[k]) - 1) * MINUTES_PER_DAY + int(u[7] * MINUTES_PER_DAY)
        if start > t:
            continue
        source = next(s for s in range(len(SOURCES)) if (eligible & data.source_masks[s]).any())
        cells = eligible & data.source_masks[source]
        indices = np.flatnonzero(cells)
        weak = int(data.weak_type[i])
        one = weak if u[2] < 0.6 and cells[weak] else int(indices[int(u[3] * indices.size)])
        single = np.zeros(cells.shape, dtype=bool)
        single[one] = True
        kind = _CHURN_KINDS[_choose([w for _, w in _CHURN_KINDS], u[1])][0]
        if kind == FAIL:
            if u[4] < 0.3:  # a few related types fail together
                single[indices[(np.searchsorted(indices, one) + np.arange(3)) % indices.size]] = (
                    True
                )
            error = _CHURN_ERRORS[_choose([w for _, w in _CHURN_ERRORS], u[5])][0]
            length = int((0.5 + 3.5 * u[6] ** 2) * MINUTES_PER_DAY)
            window = _Window(
                start, start + length, FAIL, error, single, error in _TRANSIENT_ERRORS, "churn"
            )
        elif kind == STUCK:
            whole = source == 0 and bool(data.on_premise[i])  # the connector is offline
            running = RUNNING[_choose([w for _, w in RUNNING], u[5])][0]
            length = int((0.4 + 2.6 * u[6]) * MINUTES_PER_DAY)
            window = _Window(
                start, start + length, STUCK, running, cells if whole else single, False,
                "churn",
            )  # fmt: skip
        elif kind == AUTH:
            length = int((1.0 + 3.0 * u[6] ** 2) * MINUTES_PER_DAY)
            window = _Window(start, start + length, AUTH, "AuthError", cells, False, "churn")
        else:  # the company's scheduler lags: nothing syncs for a few days
            length = int((1.5 + 3.0 * u[6]) * MINUTES_PER_DAY)
            window = _Window(start, start + length, STOP, "", eligible, True, "churn")
        out.append(window)
        if u[8] < relapse and window.kind != STOP:  # back after a day or so, same cells
            gap = int((0.75 + 0.9 * u[9]) * MINUTES_PER_DAY)
            again = window.end + gap
            if again <= t:
                length = max(360, (window.end - window.start) * 2 // 3)
                out.append(
                    _Window(
                        again, again + length, window.kind, window.status, window.cells,
                        window.fixable, "churn",
                    )
                )  # fmt: skip
    if data.conn_state[i, 0] == LINKED:
        platform = ACCOUNTING_PLATFORMS[int(data.platform[i, 0])].name
        for day in days.tolist():
            outage = outage_of_day(data, day)
            if outage is None or outage.platform != platform:
                continue
            hit = _hash_units(data.seed ^ _AFFECTED_STREAM, i, np.array([day]), 1)[0, 0]
            if hit >= outage.share:
                continue
            j = ALL_DATA_TYPES.index(outage.data_type)
            if not eligible[j]:
                continue
            start = data.minute_of(outage.start)
            if start > t:
                continue
            cell = np.zeros(eligible.shape, dtype=bool)
            cell[j] = True
            end = data.minute_of(outage.end)
            out.append(_Window(start, end, FAIL, outage.status, cell, False, "outage"))
    return out


def refresh_outcome(data: FleetArrays, i: int, j: int, t: int) -> str:
    if data.code[i, j] == NS:
        return "NotSupported"
    if data.conn_state[i, data.source_of_type[j]] in (DEAUTH, UNLINKED):
        return "AuthError"
    active = [w for w in windows(data, i, t) if w.cells[j] and w.start <= t < w.end]
    active.sort(key=lambda w: (w.kind != AUTH, w.kind != STUCK, w.kind))
    for w in active:
        if w.kind == AUTH:
            return "AuthError"
        if w.kind == STUCK:
            return "Queued"  # the connector is offline: the sync never starts
        if w.kind == FAIL and not w.fixable:
            return w.status
        if w.origin == "dormant" and t - w.start > _TOKEN_LIFETIME_MINUTES:
            return "AuthError"  # the token expired while nothing synced
    return "Complete"
