"""Progress of a collection run: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["CollectStats", "ProgressMode", "report_progress"]

log = logging.getLogger("auditor.collector")

ProgressMode = Literal["auto", "bar", "log", "off"]


@dataclass
class CollectStats:
    """Counters of one run, read by the progress reporter and put in the manifest."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    listed: int = 0
    errors: int = 0
    requests: int = 0
    pulls_reused: int = 0
    settings_read: int = 0
    settings_carried: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        """One human line: done/total, percent, rates, ETA, errors."""
        elapsed = max(self.elapsed, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        left = self.total - self.done
        eta = f"{left / rate:,.0f}s" if rate > 0 else "?"
        return (
            f"collected {self.done:,}/{self.total:,} companies ({pct:.1f}%), "
            f"{rate:,.1f} companies/s, {60 * self.requests / elapsed:,.0f} requests/min, "
            f"ETA {eta}, {self.errors:,} errors"
        )


async def report_progress(
    stats: CollectStats,
    mode: ProgressMode = "auto",
    *,
    log_every: float = 30.0,
    refresh: float = 0.25,
) -> None:
    """Report ``stats`` until cancelled. ``auto``: a bar when stderr is a terminal."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "off":
        return
    if mode == "log":
        try:
            while True:
                await asyncio.sleep(log_every)
                log.info("%s", stats.line())
        finally:
            log.info("%s", stats.line())
    bar = Progress(
        TextColumn("[bold]collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[errors]}"),
        console=Console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task("companies", total=stats.total or None, rate="", errors="")
        try:
            while True:
                _update(bar, task, stats)
                await asyncio.sleep(refresh)
        finally:
            with contextlib.suppress(Exception):
                _update(bar, task, stats)


def _update(bar: Progress, task: object, stats: CollectStats) -> None:
    elapsed = max(stats.elapsed, 1e-9)
    bar.update(
        task,  # type: ignore[arg-type]
        total=stats.total or None,
        completed=stats.done,
        rate=f"{stats.done / elapsed:,.1f}/s {60 * stats.requests / elapsed:,.0f} req/min",
        errors=f"{stats.errors:,} errors" if stats.errors else "",
    )
