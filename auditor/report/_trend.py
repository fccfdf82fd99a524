"""The trend charts' geometry: open findings by severity per night, and the fleet freshness
SLA per night against its target, as SVG coordinates.

:func:`night_totals` counts findings per night from the store's history (plus tonight);
:func:`build_trend` lays the last :data:`TREND_NIGHTS` nights out as stacked bars
(:class:`TrendChart`) that ``templates/report/_trend.html`` draws as inline SVG.
:func:`night_freshness` and :func:`build_freshness` do the same for the fleet freshness figure
(:mod:`auditor.freshness`): a line with the configured target (``[report] freshness_target``)
as a dashed line. Both charts share the x-axis (one slot per night, dates below). Nothing here
produces markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Final

import pandas as pd

from auditor.findings import SEVERITIES
from auditor.freshness import FleetFreshness
from auditor.result import AuditResult

__all__ = [
    "TREND_NIGHTS",
    "FreshnessChart",
    "FreshnessPoint",
    "TrendBar",
    "TrendChart",
    "build_freshness",
    "build_trend",
    "date_axis",
    "night_freshness",
    "night_totals",
]

#: Nights the chart shows, tonight included.
TREND_NIGHTS: Final[int] = 30


@dataclass(frozen=True)
class TrendBar:
    day: date
    x: float
    width: float
    error: int
    warning: int
    error_y: float
    error_h: float
    warning_y: float
    warning_h: float
    label: str | None
    tonight: bool


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: int
    plot_right: int
    bars: tuple[TrendBar, ...]
    ticks: tuple[tuple[float, int], ...]
    nights: int
    max_total: int
    #: (x, date label, tonight) under the plot (:func:`date_axis`).
    dates: tuple[tuple[float, str, bool], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.bars


#: Chart geometry (SVG user units; the SVG scales to the page's width).
WIDTH: Final[int] = 1200
PLOT_LEFT: Final[int] = 52
PLOT_RIGHT: Final[int] = WIDTH - 10
#: Room below the plot for the date labels (room for the larger labels of a phone screen).
BOTTOM_MARGIN: Final[int] = 36


def _slot(first_day: date, day: date) -> tuple[float, float]:
    """(left x, width) of ``day``'s slot on the shared x-axis."""
    slot = (PLOT_RIGHT - PLOT_LEFT) / TREND_NIGHTS
    return PLOT_LEFT + (day - first_day).days * slot, slot


def _date_label(last_day: date, day: date) -> str | None:
    """Every seventh night back from the last one is labelled with its date."""
    return f"{day.day} {day:%b}" if (last_day - day).days % 7 == 0 else None


def date_axis(last_day: date, tonight: date) -> tuple[tuple[float, str, bool], ...]:
    """The x-axis of both charts: (x, date label, tonight) for every seventh night back from
    ``last_day`` across the whole window, whether or not that night has data."""
    first_day = last_day - timedelta(days=TREND_NIGHTS - 1)
    out = []
    for back in range(0, TREND_NIGHTS, 7):
        day = last_day - timedelta(days=back)
        x0, slot = _slot(first_day, day)
        out.append((round(x0 + slot / 2, 2), f"{day.day} {day:%b}", day == tonight))
    return tuple(reversed(out))


def _nice_ceiling(value: int) -> int:
    if value <= 4:
        return 4
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * exp)
        if top >= value:
            return top
    return value  # pragma: no cover


def night_totals(
    history: pd.DataFrame | None, result: AuditResult, active: pd.DataFrame
) -> pd.DataFrame:
    """Findings by severity per night (index: date; columns: warning, error): the last snapshot of
    each date, plus tonight's audit when the history does not hold it yet."""
    cols = list(SEVERITIES)
    if history is None or history.empty:
        table = pd.DataFrame(columns=cols, dtype="int64")
    else:
        h = history.copy()
        h["snapshot_date"] = pd.to_datetime(h["snapshot_date"]).dt.date
        h["snapshot_id"] = h["snapshot_id"].astype("string")
        last = h.groupby("snapshot_date")["snapshot_id"].transform("max")
        h = h.loc[h["snapshot_id"] == last]
        table = pd.pivot_table(
            h,
            index="snapshot_date",
            columns=h["severity"].astype("string"),
            values="count",
            aggfunc="sum",
            fill_value=0,
        )
        for s in cols:
            if s not in table.columns:
                table[s] = 0
        table = table[cols].astype("int64")
        if result.snapshot_id in set(h["snapshot_id"].dropna()):
            return table.sort_index()
    tonight = result.as_of.astimezone(UTC).date()
    sev = active["severity"].astype("string")
    table.loc[tonight, cols] = [int((sev == s).fillna(False).sum()) for s in cols]
    return table.astype("int64").sort_index()


def build_trend(
    history: pd.DataFrame | None, result: AuditResult, active: pd.DataFrame
) -> TrendChart:
    """The chart of the last :data:`TREND_NIGHTS` nights (``active``: tonight's unsnoozed
    findings)."""
    width, height = WIDTH, 218
    left, top, right, bottom = PLOT_LEFT, 12, PLOT_RIGHT, height - BOTTOM_MARGIN
    table = night_totals(history, result, active)
    if table.empty:
        return TrendChart(width, height, left, top, bottom, right, (), (), 0, 0)
    last_day: date = max(table.index)
    first_day = last_day - timedelta(days=TREND_NIGHTS - 1)
    table = table.loc[[d for d in table.index if d >= first_day]]
    max_total = int((table["warning"] + table["error"]).max())
    y_max = _nice_ceiling(max_total)
    slot = (right - left) / TREND_NIGHTS
    bar_w = max(slot * 0.66, 1.0)
    scale = (bottom - top) / y_max
    tonight = result.as_of.astimezone(UTC).date()
    bars: list[TrendBar] = []
    for day, row in table.iterrows():
        assert isinstance(day, date)
        i = (day - first_day).days
        x = left + i * slot + (slot - bar_w) / 2
        e, w = int(row["error"]), int(row["warning"])
        eh, wh = e * scale, w * scale
        label = _date_label(last_day, day)
        bars.append(
            TrendBar(
                day=day,
                x=round(x, 2),
                width=round(bar_w, 2),
                error=e,
                warning=w,
                error_y=round(bottom - eh, 2),
                error_h=round(eh, 2),
                warning_y=round(bottom - eh - wh, 2),
                warning_h=round(wh, 2),
                label=label,
                tonight=day == tonight,
            )
        )
    ticks = tuple((round(bottom - v * scale, 2), v) for v in (0, y_max // 2, y_max))
    return TrendChart(
        width,
        height,
        left,
        top,
        bottom,
        right,
        tuple(bars),
        ticks,
        len(bars),
        max_total,
        date_axis(last_day, tonight),
    )


# --------------------------------------------------------------------------------------------
# fleet freshness


@dataclass(frozen=True)
class FreshnessPoint:
    day: date
    x: float
    y: float
    monitored: int
    fresh: int
    share: float
    label: str | None
    tonight: bool
    below_target: bool


@dataclass(frozen=True)
class FreshnessChart:
    """The fleet freshness line (share of monitored company x data types fresh, per night)."""

    width: int
    height: int
    plot_left: int
    plot_top: int
    plot_bottom: int
    plot_right: int
    points: tuple[FreshnessPoint, ...]
    #: (y, share) of the horizontal grid lines.
    ticks: tuple[tuple[float, float], ...]
    target: float
    target_y: float
    #: Tonight's figure (None when the audit computed none).
    tonight: FleetFreshness | None
    #: The SVG path of the line (``M x y L x y ...``), broken where a night has no figure.
    path: str
    #: (x, date label, tonight) under the plot (:func:`date_axis`).
    dates: tuple[tuple[float, str, bool], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.points


def night_freshness(
    freshness_history: pd.DataFrame | None, result: AuditResult
) -> pd.DataFrame:
    """Fleet freshness per night (index: date; columns: monitored, fresh): the last snapshot of
    each date (``freshness_history``: :func:`auditor.store.freshness_history`), plus tonight's
    figure (``result.freshness``) when the history does not hold it yet. Nights with nothing
    monitored are left out."""
    cols = ["monitored", "fresh"]
    if freshness_history is None or freshness_history.empty:
        table = pd.DataFrame(columns=cols, dtype="int64")
        ids: set[str] = set()
    else:
        h = freshness_history.copy()
        h["snapshot_date"] = pd.to_datetime(h["snapshot_date"]).dt.date
        h["snapshot_id"] = h["snapshot_id"].astype("string")
        ids = {str(i) for i in h["snapshot_id"].dropna()}
        h = h.sort_values("snapshot_id").drop_duplicates("snapshot_date", keep="last")
        table = h.set_index("snapshot_date")[cols].astype("int64")
    if result.freshness is not None and result.snapshot_id not in ids:
        tonight = result.as_of.astimezone(UTC).date()
        table.loc[tonight, cols] = [result.freshness.monitored, result.freshness.fresh]
    table = table.astype("int64")
    return table.loc[table["monitored"] > 0].sort_index()


def _floor_step(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step


def build_freshness(
    freshness_history: pd.DataFrame | None,
    result: AuditResult,
    *,
    target: float = 0.95,
    last_day: date | None = None,
) -> FreshnessChart:
    """The fleet freshness chart of the last :data:`TREND_NIGHTS` nights up to ``last_day``
    (default: the last night with a figure), with ``target`` as a dashed line. The y-axis
    runs from a round share below the lowest night (and the target) to 100 %."""
    width, height = WIDTH, 178
    left, top, right, bottom = PLOT_LEFT, 12, PLOT_RIGHT, height - BOTTOM_MARGIN
    table = night_freshness(freshness_history, result)
    tonight_day = result.as_of.astimezone(UTC).date()
    if table.empty:
        return FreshnessChart(
            width, height, left, top, bottom, right, (), (), target, float(top), None, ""
        )
    end: date = last_day or max(max(table.index), tonight_day)
    first_day = end - timedelta(days=TREND_NIGHTS - 1)
    table = table.loc[[d for d in table.index if first_day <= d <= end]]
    shares = table["fresh"] / table["monitored"]
    low = min(float(shares.min()), target) if len(shares) else target
    span = 1.0 - low
    step = 0.01 if span <= 0.04 else 0.02 if span <= 0.08 else 0.05 if span <= 0.2 else 0.1
    y_min = max(_floor_step(low - step / 2, step), 0.0)
    if y_min >= 1.0:
        y_min = 1.0 - step

    def y_of(share: float) -> float:
        return round(bottom - (share - y_min) / (1.0 - y_min) * (bottom - top), 2)

    points: list[FreshnessPoint] = []
    for day, row in table.iterrows():
        assert isinstance(day, date)
        x0, slot = _slot(first_day, day)
        monitored, fresh = int(row["monitored"]), int(row["fresh"])
        share = fresh / monitored
        points.append(
            FreshnessPoint(
                day=day,
                x=round(x0 + slot / 2, 2),
                y=y_of(share),
                monitored=monitored,
                fresh=fresh,
                share=share,
                label=_date_label(end, day),
                tonight=day == tonight_day,
                below_target=share < target,
            )
        )
    segments: list[str] = []
    previous: date | None = None
    for p in points:
        joined = previous is not None and (p.day - previous).days == 1
        segments.append(f"{'L' if joined else 'M'}{p.x} {p.y}")
        previous = p.day
    n_steps = max(round((1.0 - y_min) / step), 1)
    every = max(math.ceil(n_steps / 4), 1)
    levels = [1.0 - i * step for i in range(0, n_steps + 1, every)]
    if y_min not in levels:
        levels.append(y_min)
    ticks = tuple((y_of(v), round(v, 4)) for v in sorted(set(round(v, 4) for v in levels)))
    return FreshnessChart(
        width,
        height,
        left,
        top,
        bottom,
        right,
        tuple(points),
        ticks,
        target,
        y_of(target),
        result.freshness,
        " ".join(segments),
        date_axis(end, tonight_day),
    )
