"""The trend chart's geometry: open findings by severity per night, as SVG coordinates.

:func:`night_totals` counts findings per night from the store's history (plus tonight);
:func:`build_trend` lays the last :data:`TREND_NIGHTS` nights out as stacked bars
(:class:`TrendChart`) that ``templates/report/_trend.html`` draws as inline SVG. Nothing here
produces markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Final

import pandas as pd

from auditor.findings import SEVERITIES
from auditor.result import AuditResult

__all__ = ["TREND_NIGHTS", "TrendBar", "TrendChart", "build_trend", "night_totals"]

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

    @property
    def empty(self) -> bool:
        return not self.bars


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
    width, height = 1200, 210
    left, top, right, bottom = 44, 12, width - 8, height - 26
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
        label = day.strftime("%d %b") if (last_day - day).days % 7 == 0 else None
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
        width, height, left, top, bottom, right, tuple(bars), ticks, len(bars), max_total
    )
