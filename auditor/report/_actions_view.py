"""View models of "Start here" (the ranked actions) and "Refresh outcomes", for the report and
the digest. Computed from :func:`auditor.actions.build_actions` and
:func:`auditor.remediation.refresh_outcomes`; no markup here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pandas as pd

from auditor.safe_text import clip

from ._rule_docs import rule_anchor

__all__ = [
    "REFRESH_RESULTS",
    "ActionItem",
    "RefreshRow",
    "RefreshSummary",
    "action_items",
    "build_refresh_summary",
    "short_id",
]

#: Results of a queued refresh, in the order shown.
REFRESH_RESULTS: Final[tuple[str, ...]] = ("failed", "running", "worked", "unknown")
_RESULT_RANK: Final[dict[str, int]] = {r: i for i, r in enumerate(REFRESH_RESULTS)}
#: Data types named in an action's line (the rest are counted).
TYPES_SHOWN: Final[int] = 4
#: Characters of an id shown in narrow places (the full id goes in a title or the CSV).
SHORT_ID: Final[int] = 8


def short_id(value: str | None) -> str:
    """The first :data:`SHORT_ID` characters of an id, ``…`` when cut (``""`` for None)."""
    if not value:
        return ""
    return value if len(value) <= SHORT_ID + 1 else value[:SHORT_ID] + "…"


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    out = str(value)
    return out or None


def _int(value: object) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return 0 if math.isnan(number) else int(number)


def _when(value: object) -> datetime | None:
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    return value if isinstance(value, datetime) else None


@dataclass(frozen=True)
class ActionItem:
    """One row of "Start here": one company × root cause and its one action."""

    rank: int
    severity: str
    state: str
    company_id: str | None
    company_name: str | None
    platform: str | None
    connection_id: str | None
    rule: str
    anchor: str
    action: str
    action_text: str
    link_url: str | None
    pull_operation_id: str | None
    refresh_result: str | None
    data_types: str | None
    data_type_count: int
    companies: int
    findings: int
    nights_open: int
    first_seen: datetime | None
    message: str | None
    #: The row's stable key (rule + company + connection, or the outage's platform).
    root_key: str = ""

    @property
    def who(self) -> str:
        """The company (name, else id), or for a fleet-wide row how many companies."""
        if self.company_name or self.company_id:
            return self.company_name or self.company_id or ""
        if self.companies:
            noun = "company" if self.companies == 1 else "companies"
            return f"{self.companies:,} {noun}" + (f" on {self.platform}" if self.platform else "")
        return "The whole fleet"

    @property
    def short_company_id(self) -> str:
        return short_id(self.company_id)

    @property
    def short_pull_operation_id(self) -> str:
        return short_id(self.pull_operation_id)

    @property
    def types_label(self) -> str:
        """``3 data types: bills, invoices, payments`` (``1 data type: bills``); past
        :data:`TYPES_SHOWN` types, ``… and 20 more`` (all of them are in actions.csv)."""
        n = self.data_type_count
        if not n:
            return ""
        noun = "data type" if n == 1 else "data types"
        names = [t for t in (self.data_types or "").split(", ") if t]
        shown = ", ".join(names[:TYPES_SHOWN])
        if len(names) > TYPES_SHOWN:
            shown += f" and {n - TYPES_SHOWN:,} more"
        return f"{n:,} {noun}: {shown}"

    @property
    def explains(self) -> str:
        """``stands for 12 findings`` when the row stands for more than one, else ""."""
        return f"stands for {self.findings:,} findings" if self.findings > 1 else ""


def action_items(actions: pd.DataFrame | None, limit: int | None = None,
                 *, text_limit: int = 300) -> tuple[ActionItem, ...]:
    """The first ``limit`` rows (all with None) of a ranked actions table as view rows."""
    if actions is None or actions.empty:
        return ()
    frame = actions if limit is None else actions.head(max(limit, 0))
    out: list[ActionItem] = []
    for rec in frame.to_dict("records"):
        rule = _text(rec.get("rule")) or "?"
        out.append(
            ActionItem(
                rank=_int(rec.get("rank")),
                severity=_text(rec.get("severity")) or "warning",
                state=_text(rec.get("state")) or "ongoing",
                company_id=_text(rec.get("company_id")),
                company_name=clip(_text(rec.get("company_name")), 120),
                platform=_text(rec.get("platform")),
                connection_id=_text(rec.get("connection_id")),
                rule=rule,
                anchor=rule_anchor(rule),
                action=_text(rec.get("action")) or "follow-remedy",
                action_text=clip(_text(rec.get("action_text")), text_limit) or "",
                link_url=_text(rec.get("link_url")),
                pull_operation_id=_text(rec.get("pull_operation_id")),
                refresh_result=_text(rec.get("refresh_result")),
                data_types=_text(rec.get("data_types")),
                data_type_count=_int(rec.get("data_type_count")),
                companies=_int(rec.get("companies")),
                findings=_int(rec.get("findings")),
                nights_open=_int(rec.get("nights_open")),
                first_seen=_when(rec.get("first_seen")),
                message=clip(_text(rec.get("message")), text_limit),
                root_key=_text(rec.get("root_key")) or "",
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class RefreshRow:
    """One refreshed company × data type and how it went."""

    company_id: str
    company_name: str | None
    data_type: str | None
    result: str
    requested_at: datetime | None
    current_status: str | None
    last_successful_sync: datetime | None
    pull_operation_id: str | None

    @property
    def short_company_id(self) -> str:
        return short_id(self.company_id)


@dataclass(frozen=True)
class RefreshSummary:
    """What the refreshes queued after the previous audit did: counts, and the rows (failed
    first, then still running, worked, unknown) cut to a limit."""

    worked: int
    failed: int
    running: int
    unknown: int
    rows: tuple[RefreshRow, ...]

    @property
    def total(self) -> int:
        return self.worked + self.failed + self.running + self.unknown

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def build_refresh_summary(refreshes: pd.DataFrame | None,
                          limit: int = 200) -> RefreshSummary | None:
    """The refresh outcomes (:data:`auditor.remediation.REFRESH_OUTCOME_COLUMNS`) for display;
    None when no refresh was queued."""
    if refreshes is None or refreshes.empty:
        return None
    result = refreshes["result"].astype("string").fillna("unknown")
    counts = result.value_counts()
    rank = result.map(_RESULT_RANK).fillna(len(REFRESH_RESULTS)).astype("int64")
    name = refreshes["company_name"].astype("string").fillna("")
    order = pd.DataFrame({"r": rank.to_numpy(), "n": name.str.lower().to_numpy()}).sort_values(
        ["r", "n"], kind="stable"
    ).index
    shown = refreshes.iloc[order.to_numpy()[: max(limit, 0)]]
    rows = tuple(
        RefreshRow(
            company_id=_text(r.get("company_id")) or "",
            company_name=clip(_text(r.get("company_name")), 120),
            data_type=_text(r.get("data_type")),
            result=_text(r.get("result")) or "unknown",
            requested_at=_when(r.get("requested_at")),
            current_status=_text(r.get("current_status")),
            last_successful_sync=_when(r.get("last_successful_sync")),
            pull_operation_id=_text(r.get("dataset_id")),
        )
        for r in shown.to_dict("records")
    )
    return RefreshSummary(
        worked=int(counts.get("worked", 0)),
        failed=int(counts.get("failed", 0)),
        running=int(counts.get("running", 0)),
        unknown=int(counts.get("unknown", 0)),
        rows=rows,
    )
