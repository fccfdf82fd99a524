"""Scheduled syncs of a generated fleet: the state of each data type at a sandbox time.

Each data type of a company syncs on its schedule (``syncSchedule`` of the sync settings; the
company's own setting wins): ticks at ``phase + k x schedule`` with a per-company phase, the
weekly types on a per-company weekday, each sync taking 2-14 minutes (while it runs the type
shows it in progress). :func:`evaluate` walks those ticks through the company's trouble
windows (:mod:`auditor.sandbox._trouble`) to find each type's latest and latest successful
sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from auditor.constants import ALL_DATA_TYPES
from auditor.sandbox._shares import (
    MINUTES_PER_DAY,
    NS,
    OMIT,
    STOP,
    STUCK,
)
from auditor.sandbox._trouble import (
    windows,
)

if TYPE_CHECKING:
    from auditor.sandbox._arrays import FleetArrays

#: What a scheduled sync shows while it runs, by the share of its duration elapsed.
_SYNC_STAGES: Final[tuple[str, ...]] = ("Queued", "Fetching", "Fetching", "Mapping", "Processing")


@dataclass(slots=True)
class Sync:
    """One pull operation of a data type: minutes after t0 (``done`` None: running)."""

    requested: int
    done: int | None
    status: str


@dataclass(slots=True)
class CellState:
    """What the dataStatus and history show of one data type at a time."""

    present: bool
    latest: Sync
    success: Sync | None


def timing(
    data: FleetArrays, i: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(schedule, phase, duration)`` per data type of company ``i``, in minutes."""
    schedule = (
        np.where(data.override_types, 12 * 60, data.schedule) if data.override[i] else data.schedule
    )
    phase = data.phase[i] + data.stagger + data.weekly * (int(data.weekday[i]) * MINUTES_PER_DAY)
    duration = 2 + (i * 31 + np.arange(len(ALL_DATA_TYPES)) * 17) % 13
    return schedule, phase, duration


def evaluate(
    data: FleetArrays, i: int, t: int, fixed: Mapping[int, int] | None = None
) -> list[CellState]:
    """The state of every data type of company ``i`` at minute ``t``."""
    fixed = fixed or {}
    schedule, phase, duration = timing(data, i)
    code = data.code[i]
    tick = phase + ((t - phase) // schedule) * schedule
    running = tick + duration > t
    stage = np.minimum(((t - tick) * len(_SYNC_STAGES)) // duration, len(_SYNC_STAGES) - 1)
    floor = np.full(code.shape, -int(data.created[i]), dtype=np.int64)
    present = code != OMIT
    for j, at in fixed.items():
        if code[j] == OMIT:  # refreshed: syncs on schedule from then on
            present[j] = True
            floor[j] = at
    success_at = np.where(running, tick - schedule, tick)
    has_success = (success_at >= floor) & (code != NS)
    present &= tick >= floor
    per_cell: dict[int, list[tuple[int, int, int, str]]] = {}
    for w in windows(data, i, t):
        for j in np.flatnonzero(w.cells).tolist():
            end = w.end
            fix = fixed.get(j)
            if fix is not None and w.fixable and w.start <= fix < end:
                end = fix  # a refresh fixed it
            per_cell.setdefault(j, []).append((w.start, end, w.kind, w.status))
    states: list[CellState] = []
    ticks, dones, stages = tick.tolist(), (tick + duration).tolist(), stage.tolist()
    successes = success_at.tolist()
    for j in range(len(code)):
        if not present[j]:
            states.append(CellState(False, Sync(0, None, ""), None))
            continue
        wins = per_cell.get(j)
        if wins is not None:
            wins.sort(key=lambda w: w[2])
            latest, success = _walk(
                t, int(phase[j]), int(schedule[j]), int(duration[j]), int(floor[j]), wins
            )
            states.append(CellState(latest is not None, latest or Sync(0, None, ""), success))
            continue
        if running[j]:
            latest = Sync(ticks[j], None, _SYNC_STAGES[stages[j]])
        else:
            status = "NotSupported" if code[j] == NS else "Complete"
            latest = Sync(ticks[j], dones[j], status)
        success = None
        if has_success[j]:
            at = successes[j]
            success = latest if at == ticks[j] else Sync(at, at + int(duration[j]), "Complete")
        states.append(CellState(True, latest, success))
    return states


def _walk(
    t: int, phase: int, schedule: int, duration: int, floor: int,
    wins: list[tuple[int, int, int, str]],
) -> tuple[Sync | None, Sync | None]:  # fmt: skip
    """``(latest sync, latest successful sync)`` at minute ``t`` of a data type with trouble
    windows ``wins`` (``(start, end, kind, status)``, sorted by kind: stop first)."""
    latest: Sync | None = None
    x = t
    for _ in range(64):
        tick = phase + ((x - phase) // schedule) * schedule
        if tick < floor:
            break
        hit = next((w for w in wins if w[0] <= tick < w[1]), None)
        if hit is None:
            if latest is None and tick + duration > t:
                latest = Sync(tick, None, _stage(t - tick, duration))
                x = tick - 1
                continue
            done = Sync(tick, tick + duration, "Complete")
            return latest or done, done
        start, end, kind, status = hit
        if kind == STOP:
            x = start - 1
            continue
        if kind == STUCK:
            first = phase - ((phase - start) // schedule) * schedule  # first tick >= start
            if end <= t:  # back online: the stuck sync completed when the window ended
                done = Sync(first, end, "Complete")
                return latest or done, done
            if latest is None:
                latest = Sync(first, None, status)
            x = start - 1
            continue
        if latest is None:  # AuthError or an error: every sync in the window fails
            if tick + duration > t:
                latest = Sync(tick, None, _stage(t - tick, duration))
            else:
                latest = Sync(tick, tick + duration, status)
        x = start - 1
    return latest, None


def _stage(elapsed: int, duration: int) -> str:
    return _SYNC_STAGES[min(elapsed * len(_SYNC_STAGES) // duration, len(_SYNC_STAGES) - 1)]
