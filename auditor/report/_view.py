"""The report's view model: everything ``report.html`` shows, computed from an :class:`AuditResult`.

Python decides *what* is shown (counts, rankings, which rows fit); the templates decide *how*.
Nothing here produces markup. :func:`build_view` builds the whole :class:`ReportView`; one
``build_*`` function per section feeds it (the trend chart's geometry is in :mod:`._trend`, the
rules appendix in :mod:`._rule_docs`). The email digest reuses the pieces (counts, rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import pandas as pd

from auditor.events import EventWindow
from auditor.findings import FINDINGS_COLUMNS, SEVERITIES, empty_findings
from auditor.result import EXPIRED_SNOOZE_COLUMNS, AuditResult
from auditor.safe_text import clip, clip_middle

from ._actions_view import ActionItem, RefreshSummary, action_items, build_refresh_summary
from ._env import resolve_tz
from ._events import EventsView, build_events_view, rate_limit_sentence
from ._rule_docs import RuleDoc, RuleSection, build_appendix, load_rules, rule_anchor
from ._trend import FreshnessChart, TrendChart, build_freshness, build_trend

__all__ = [
    "STATE_ORDER",
    "Breakdown",
    "Change",
    "ExpiredSnooze",
    "FilterOptions",
    "FindingRow",
    "FleetInfo",
    "ReportView",
    "RuleTotal",
    "build_breakdown",
    "build_change",
    "build_expired",
    "build_rule_totals",
    "build_view",
    "errors_and_warnings",
    "finding_rows",
    "rank_findings",
    "unsnoozed",
]

#: States in the order ops should read them.
STATE_ORDER: Final[tuple[str, ...]] = ("new", "regressed", "ongoing", "resolved")


@dataclass(frozen=True)
class FleetInfo:
    """Fleet-level facts the findings alone cannot tell."""

    companies_audited: int | None = None
    snapshot_id: str | None = None
    as_of: datetime | None = None
    connections: int | None = None
    collection_errors: int | None = None
    title: str = "Codat data freshness"
    #: Companies not monitored: every connection Unlinked, or none (no freshness findings).
    not_monitored: int | None = None
    #: The webhook events read for this audit (``auditor.events``); None: not asked.
    events: EventWindow | None = None


# --------------------------------------------------------------------------------------------
# small value helpers


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value)
    return text if text else None


def _number(value: object) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _when(value: object) -> datetime | None:
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime(warn=False)
    return value if isinstance(value, datetime) else None


def _minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def _id_time(snapshot_id: str) -> datetime | None:
    """The time a snapshot id such as ``20261123T020000Z`` names (to the minute), if any."""
    try:
        return _minute(datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
    except ValueError:
        return None


def _str_col(frame: pd.DataFrame, name: str, missing: str) -> pd.Series:
    return frame[name].astype("string").fillna(missing)


# --------------------------------------------------------------------------------------------
# ranking


def rank_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """``findings`` worst first: errors before warnings, new/regressed before ongoing, oldest."""
    if findings.empty:
        return findings
    sev = findings["severity"].astype("string").map({"error": 0, "warning": 1}).fillna(2)
    state = (
        findings["state"]
        .astype("string")
        .map({"new": 0, "regressed": 0, "ongoing": 1, "resolved": 2})
        .fillna(1)
    )
    age = pd.to_numeric(findings["age_hours"], errors="coerce").fillna(-math.inf)
    keys = pd.DataFrame(
        {
            "_sev": sev.astype("int64"),
            "_state": state.astype("int64"),
            "_age": -age,
            "_name": findings["company_name"].astype("string").fillna(""),
        },
        index=findings.index,
    )
    order = keys.sort_values(["_sev", "_state", "_age", "_name"], kind="stable").index
    return findings.loc[order]


# --------------------------------------------------------------------------------------------
# view model pieces


@dataclass(frozen=True)
class Change:
    """What changed since the previous audit (snoozed rows left out)."""

    new_errors: int = 0
    new_warnings: int = 0
    regressed_errors: int = 0
    regressed_warnings: int = 0
    resolved_errors: int = 0
    resolved_warnings: int = 0

    @property
    def new(self) -> int:
        return self.new_errors + self.new_warnings

    @property
    def regressed(self) -> int:
        return self.regressed_errors + self.regressed_warnings

    @property
    def resolved(self) -> int:
        return self.resolved_errors + self.resolved_warnings


@dataclass(frozen=True)
class RuleTotal:
    name: str
    code: str | None
    anchor: str
    summary: str | None
    warning: int
    error: int

    @property
    def total(self) -> int:
        return self.warning + self.error


@dataclass(frozen=True)
class Breakdown:
    """One row of a per-platform / per-data-type breakdown; ``*_share`` in [0, 1] for bars."""

    key: str
    companies: int
    warning: int
    error: int
    error_share: float
    warning_share: float

    @property
    def total(self) -> int:
        return self.warning + self.error


@dataclass(frozen=True)
class FindingRow:
    rule: str
    code: str | None
    anchor: str
    severity: str
    company_id: str
    company_name: str | None
    platform: str | None
    data_type: str | None
    group: str | None
    current_status: str | None
    last_successful_sync: datetime | None
    age_hours: float | None
    threshold_hours: float | None
    message: str | None
    remedy: str | None
    state: str | None
    first_seen: datetime | None
    nights_open: int | None
    snooze_reason: str | None
    #: The company could not be read tonight: this is last night's row, kept open.
    carried_over: bool = False


@dataclass(frozen=True)
class ExpiredSnooze:
    rule: str | None
    company_id: str | None
    data_type: str | None
    platform: str | None
    group: str | None
    reason: str | None
    owner: str | None
    until: datetime | None

    @property
    def anchor(self) -> str | None:
        return rule_anchor(self.rule) if self.rule else None


@dataclass(frozen=True)
class FilterOptions:
    rules: tuple[str, ...]
    severities: tuple[str, ...]
    platforms: tuple[str, ...]
    states: tuple[str, ...]


@dataclass(frozen=True)
class ReportView:
    """Everything ``report.html`` shows."""

    title: str
    tz: str
    snapshot_id: str
    as_of: datetime
    companies_audited: int | None
    companies_affected: int
    collection_errors: int | None
    open_errors: int
    open_warnings: int
    snoozed: int
    change: Change
    rule_totals: tuple[RuleTotal, ...]
    platforms: tuple[Breakdown, ...]
    data_types: tuple[Breakdown, ...]
    rows: tuple[FindingRow, ...]
    rows_total: int
    resolved_rows: tuple[FindingRow, ...]
    resolved_total: int
    snoozed_rows: tuple[FindingRow, ...]
    expired_snoozes: tuple[ExpiredSnooze, ...]
    trend: TrendChart
    #: The fleet freshness SLA per night and its target line (auditor.freshness).
    freshness: FreshnessChart
    appendix: tuple[RuleSection, ...]
    filters: FilterOptions
    csv_files: Mapping[str, str] = field(default_factory=dict)
    #: What makes tonight's audit incomplete or partial (:func:`build_notices`), shown first.
    notices: tuple[str, ...] = ()
    #: A rule failed or a fleet-wide input is missing (the run exits 2).
    incomplete: bool = False
    #: Companies not monitored (every connection Unlinked, or none); None when unknown.
    not_monitored: int | None = None
    #: "Start here": the first actions of the ranked actions table (:mod:`auditor.actions`).
    start_here: tuple[ActionItem, ...] = ()
    #: Rows in the whole actions table (``actions.csv``).
    actions_total: int = 0
    #: What last night's refreshes did; None when none were queued.
    refreshes: RefreshSummary | None = None
    #: The webhook events since the previous audit (``report/_events.html``); None: no log used.
    events: EventsView | None = None

    @property
    def open_total(self) -> int:
        return self.open_errors + self.open_warnings

    @property
    def footer_as_of(self) -> datetime | None:
        """The audit time for the footer, or None when the snapshot id already says it
        (``20261123T020000Z`` audited at 02:00 UTC: the time once, not twice)."""
        return None if _id_time(self.snapshot_id) == _minute(self.as_of) else self.as_of

    @property
    def truncated(self) -> bool:
        return len(self.rows) < self.rows_total


# --------------------------------------------------------------------------------------------
# builders


def _count(frame: pd.DataFrame, state: str, severity: str) -> int:
    if frame.empty:
        return 0
    mask = (frame["state"].astype("string") == state) & (
        frame["severity"].astype("string") == severity
    )
    return int(mask.fillna(False).sum())


def errors_and_warnings(frame: pd.DataFrame) -> tuple[int, int]:
    """(errors, warnings): the rows of ``frame`` by severity."""
    sev = frame["severity"].astype("string")
    return int((sev == "error").fillna(False).sum()), int((sev == "warning").fillna(False).sum())


def build_change(active: pd.DataFrame, resolved: pd.DataFrame) -> Change:
    """Counts of new, regressed and resolved incidents by severity."""
    resolved_errors, resolved_warnings = errors_and_warnings(unsnoozed(resolved))
    return Change(
        new_errors=_count(active, "new", "error"),
        new_warnings=_count(active, "new", "warning"),
        regressed_errors=_count(active, "regressed", "error"),
        regressed_warnings=_count(active, "regressed", "warning"),
        resolved_errors=resolved_errors,
        resolved_warnings=resolved_warnings,
    )


def unsnoozed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without its snoozed rows."""
    if frame.empty or "snoozed" not in frame.columns:
        return frame
    return frame.loc[~frame["snoozed"].fillna(False).astype(bool)]


def _severity_counts(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per ``key``: warning and error counts and distinct companies, biggest first."""
    if frame.empty:
        return pd.DataFrame(columns=["warning", "error", "companies", "total"])
    keys = _str_col(frame, key, "(none)")
    sev = frame["severity"].astype("string").fillna("warning")
    table = pd.crosstab(keys, sev)
    for s in SEVERITIES:
        if s not in table.columns:
            table[s] = 0
    table = table[list(SEVERITIES)]
    companies = frame.groupby(keys, observed=True)["company_id"].nunique()
    table["companies"] = companies.reindex(table.index).fillna(0).astype("int64")
    table["total"] = table["warning"] + table["error"]
    return table.sort_values(["error", "total"], ascending=False, kind="stable")


def build_breakdown(frame: pd.DataFrame, key: str) -> tuple[Breakdown, ...]:
    """One :class:`Breakdown` per value of ``key`` (platform, data type), most errors first."""
    table = _severity_counts(frame, key)
    top = max(int(table["total"].max()) if len(table) else 0, 1)
    return tuple(
        Breakdown(
            key=str(k),
            companies=int(r["companies"]),
            warning=int(r["warning"]),
            error=int(r["error"]),
            error_share=int(r["error"]) / top,
            warning_share=int(r["warning"]) / top,
        )
        for k, r in table.iterrows()
    )


def build_rule_totals(active: pd.DataFrame, rules: Sequence[RuleDoc]) -> tuple[RuleTotal, ...]:
    """One row per rule: every documented rule (zeros included), then any undocumented ones."""
    table = _severity_counts(active, "rule")
    documented = {r.name: r for r in rules}
    names = [r.name for r in rules] + [str(n) for n in table.index if str(n) not in documented]
    by_rule: dict[str, dict[str, int]] = {
        str(k): {str(s): int(v) for s, v in row.items()}
        for k, row in table[list(SEVERITIES)].to_dict("index").items()
    }
    out: list[RuleTotal] = []
    for name in names:
        doc = documented.get(name)
        counts = by_rule.get(name, {})
        code = doc.code if doc is not None else None
        if code is None and not active.empty:
            codes = active.loc[active["rule"].astype("string") == name, "code"].dropna()
            code = str(codes.iloc[0]) if len(codes) else None
        out.append(
            RuleTotal(
                name=name,
                code=code,
                anchor=rule_anchor(name),
                summary=doc.summary if doc is not None else None,
                warning=counts.get("warning", 0),
                error=counts.get("error", 0),
            )
        )
    return tuple(out)


def finding_rows(frame: pd.DataFrame, *, text_limit: int = 500) -> tuple[FindingRow, ...]:
    """``frame`` (already ranked and cut) as view rows."""
    rows: list[FindingRow] = []
    for rec in frame.to_dict("records"):
        rule = _text(rec.get("rule")) or "?"
        nights = _number(rec.get("nights_open"))
        rows.append(
            FindingRow(
                rule=rule,
                code=_text(rec.get("code")),
                anchor=rule_anchor(rule),
                severity=_text(rec.get("severity")) or "warning",
                company_id=_text(rec.get("company_id")) or "",
                company_name=clip(_text(rec.get("company_name")), 200),
                platform=_text(rec.get("platform")),
                data_type=_text(rec.get("data_type")),
                group=_text(rec.get("group")),
                current_status=_text(rec.get("current_status")),
                last_successful_sync=_when(rec.get("last_successful_sync")),
                age_hours=_number(rec.get("age_hours")),
                threshold_hours=_number(rec.get("threshold_hours")),
                message=clip_middle(_text(rec.get("message")), text_limit),
                remedy=clip_middle(_text(rec.get("remedy")), text_limit),
                state=_text(rec.get("state")),
                first_seen=_when(rec.get("first_seen")),
                nights_open=None if nights is None else int(nights),
                snooze_reason=clip_middle(_text(rec.get("snooze_reason")), 200),
                carried_over=rec.get("carried_over") is True,
            )
        )
    return tuple(rows)


def build_notices(result: AuditResult, fleet: FleetInfo) -> tuple[str, ...]:
    """What makes tonight's audit incomplete, one sentence each, for the top of the report
    and the digest: rules that failed, fleet-wide inputs that could not be read, companies not
    read (and the incidents kept open for them). Empty when the audit is whole."""
    notices = [
        f"The audit is incomplete: {failure.describe()}. Its findings for those companies are "
        "unknown tonight and their incidents stay open."
        for failure in result.rule_failures
    ]
    notices += [f"The audit is incomplete: {message}" for message in result.missing_inputs]
    if fleet.collection_errors:
        n = fleet.collection_errors
        quota = rate_limit_sentence(fleet.events)
        notices.append(
            f"{n:,} compan{'y' if n == 1 else 'ies'} could not be read from Codat tonight; "
            f"{'its' if n == 1 else 'their'} findings may be missing."
            + (f" {quota}" if quota else "")
        )
    if fleet.events is not None and fleet.events.state == "missing":
        notices.append(
            f"No event log: {fleet.events.detail.removeprefix('no event log: ')}; validation "
            "warnings and connection events since the previous audit are not shown."
        )
    carried = result.findings.get("carried_over")
    if carried is not None and bool(carried.fillna(False).astype(bool).any()):
        rows = result.findings.loc[carried.fillna(False).astype(bool).to_numpy()]
        k, c = len(rows), int(rows["company_id"].nunique())
        notices.append(
            f"{k:,} incident{'' if k == 1 else 's'} of {c:,} compan{'y' if c == 1 else 'ies'} "
            "that could not be read tonight stay open from the previous audit (not re-checked, "
            "not resolved)."
        )
    return tuple(notices)


def build_expired(frame: pd.DataFrame) -> tuple[ExpiredSnooze, ...]:
    if frame is None or frame.empty:
        return ()
    f = frame.reindex(columns=list(EXPIRED_SNOOZE_COLUMNS))
    return tuple(
        ExpiredSnooze(
            rule=_text(r["rule"]),
            company_id=_text(r["company_id"]),
            data_type=_text(r["data_type"]),
            platform=_text(r["platform"]),
            group=_text(r["group"]),
            reason=_text(r["reason"]),
            owner=_text(r["owner"]),
            until=_when(pd.to_datetime(r["until"], utc=True) if _text(r["until"]) else None),
        )
        for r in f.to_dict("records")
    )


def _distinct(column: pd.Series) -> set[str]:
    """The distinct non-missing values of ``column`` as text (cheap on a categorical)."""
    return {str(v) for v in pd.Series(column.dropna().unique()).astype("string").dropna()}


def _options(frame: pd.DataFrame, name: str) -> tuple[str, ...]:
    if frame.empty:
        return ()
    return tuple(sorted(_distinct(frame[name])))


def build_view(
    result: AuditResult,
    *,
    history: pd.DataFrame | None = None,
    rules: Sequence[RuleDoc] | None = None,
    display_tz: str = "UTC",
    fleet: FleetInfo | None = None,
    max_rows: int = 2000,
    side_rows: int = 200,
    csv_files: Mapping[str, str] | None = None,
    actions: pd.DataFrame | None = None,
    refreshes: pd.DataFrame | None = None,
    start_here: int = 10,
    freshness_history: pd.DataFrame | None = None,
    freshness_target: float = 0.95,
) -> ReportView:
    """The report's view model. ``max_rows`` bounds the findings table (worst rows first);
    ``side_rows`` bounds the resolved and snoozed lists and the refresh outcomes.
    ``actions``: the ranked actions table (:func:`auditor.actions.build_actions`), of which
    the first ``start_here`` rows are "Start here"; ``refreshes``: the outcomes of the
    refreshes queued after the previous audit. ``freshness_history`` (the fleet
    freshness of past nights, :func:`auditor.store.freshness_history`) and
    ``freshness_target`` (``[report] freshness_target``) feed the freshness chart."""
    resolve_tz(display_tz)
    rules = tuple(load_rules() if rules is None else rules)
    fleet = fleet or FleetInfo()
    findings = result.findings if result.findings is not None else empty_findings()
    findings = findings.reindex(columns=list(FINDINGS_COLUMNS))
    snoozed_mask = findings["snoozed"].fillna(False).astype(bool)
    active = findings.loc[~snoozed_mask]
    snoozed = findings.loc[snoozed_mask]
    resolved = unsnoozed(result.resolved.reindex(columns=list(FINDINGS_COLUMNS)))
    severities = _distinct(active["severity"])
    states = _distinct(active["state"])
    open_errors, open_warnings = errors_and_warnings(active)
    ranked = rank_findings(active)
    rule_totals = build_rule_totals(active, rules)
    seen_rules = [t.name for t in rule_totals]
    return ReportView(
        title=fleet.title,
        tz=display_tz,
        snapshot_id=fleet.snapshot_id or result.snapshot_id,
        as_of=fleet.as_of or result.as_of,
        companies_audited=fleet.companies_audited,
        companies_affected=int(active["company_id"].nunique()),
        collection_errors=fleet.collection_errors,
        open_errors=open_errors,
        open_warnings=open_warnings,
        snoozed=len(snoozed),
        change=build_change(active, resolved),
        rule_totals=rule_totals,
        platforms=build_breakdown(active, "platform"),
        data_types=build_breakdown(active, "data_type"),
        rows=finding_rows(ranked.head(max(max_rows, 0))),
        rows_total=len(active),
        resolved_rows=finding_rows(rank_findings(resolved).head(side_rows)),
        resolved_total=len(resolved),
        snoozed_rows=finding_rows(rank_findings(snoozed).head(side_rows)),
        expired_snoozes=build_expired(result.expired_snoozes),
        trend=build_trend(history, result, active),
        freshness=build_freshness(freshness_history, result, target=freshness_target),
        appendix=build_appendix(rules, seen_rules),
        filters=FilterOptions(
            rules=tuple(seen_rules),
            severities=tuple(s for s in ("error", "warning") if s in severities),
            platforms=_options(active, "platform"),
            states=tuple(s for s in STATE_ORDER if s in states),
        ),
        csv_files=dict(csv_files or {}),
        notices=build_notices(result, fleet),
        incomplete=result.incomplete,
        not_monitored=fleet.not_monitored,
        start_here=action_items(actions, start_here),
        actions_total=0 if actions is None else len(actions),
        refreshes=build_refresh_summary(refreshes, side_rows),
        events=build_events_view(fleet.events),
    )
