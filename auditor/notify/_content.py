"""What a notification says, whatever the channel: :class:`Notification`.

:func:`build_notification` cuts the audit to a route's :class:`~auditor.routing.Scope` and
keeps the headline counts, the notices of an incomplete audit (the same sentences as the
report and the digest) and the entries. With the night's actions table
(:func:`auditor.actions.build_actions`, as ``auditor run`` passes it) an entry is one company x
root cause in the report's "Start here" order, its remedy the one action to take
(:func:`entries_from_actions`); without it (a result read back from the store) one company x
rule (:func:`group_findings`), ranked errors first, then new/regressed, then the number of data
types it covers, then age. The channels (:mod:`.slack`, :mod:`.teams`, :mod:`.webhook`) only
lay it out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from auditor.findings import FINDINGS_COLUMNS
from auditor.report import FleetInfo, digest_subject
from auditor.report._env import format_local
from auditor.report._view import Change, build_change, build_notices, errors_and_warnings, unsnoozed
from auditor.result import AuditResult
from auditor.routing import Scope
from auditor.safe_text import DISPLAY_LIMITS, clip

__all__ = [
    "Entry",
    "Notification",
    "build_notification",
    "entries_from_actions",
    "flat",
    "group_findings",
    "nothing_open",
]

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def flat(value: object, limit: int) -> str:
    """``value`` as one line of at most ``limit`` characters: line breaks, control and
    bidirectional characters become spaces (text from Codat can hold any of them)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} or ch in _BIDI else ch
        for ch in str(value)[: limit * 2]
    )
    return clip(" ".join(text.split()), limit) or ""


@dataclass(frozen=True)
class Entry:
    """One company x rule: its findings tonight, the data types they cover, what to do."""

    company_id: str
    company_name: str
    platform: str
    rule: str
    code: str
    severity: str
    #: ``new`` or ``regressed`` when any of its findings is, else ``ongoing``.
    state: str
    data_types: tuple[str, ...]
    findings: int
    nights_open: int
    message: str
    remedy: str


@dataclass(frozen=True)
class Notification:
    """One message's content, channel-neutral."""

    title: str
    subject: str
    day: str
    as_of: datetime
    snapshot_id: str
    scope: str | None
    incomplete: bool
    notices: tuple[str, ...]
    change: Change
    open_errors: int
    open_warnings: int
    companies_audited: int | None
    #: The ranked entries (all of them; a channel shows as many as fit).
    entries: tuple[Entry, ...]
    #: Entries in scope tonight (``len(entries)`` may be fewer: capped at ``max_items``).
    entries_total: int
    report_url: str | None

    def more(self, shown: int) -> int:
        """Entries not shown when ``shown`` are."""
        return max(self.entries_total - shown, 0)

    def headline(self) -> list[tuple[str, int]]:
        """The counts every channel leads with, as (label, count)."""
        c = self.change
        counts = [
            ("New errors", c.new_errors),
            ("New warnings", c.new_warnings),
            ("Regressed", c.regressed),
            ("Resolved", c.resolved),
            ("Open errors", self.open_errors),
            ("Open warnings", self.open_warnings),
        ]
        if self.companies_audited is not None:
            counts.append(("Companies audited", self.companies_audited))
        return counts


def _present(value: object) -> str | None:
    """``value`` as text; None for a missing value (None, NA, NaN)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _number(value: object) -> float | None:
    text = _present(value)
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _key_text(frame: pd.DataFrame, column: str, missing: str) -> pd.Series:
    return frame[column].astype("string").fillna(missing)


def group_findings(active: pd.DataFrame, limit: int) -> tuple[list[Entry], int]:
    """(the first ``limit`` company x rule entries of ``active``, ranked; how many there are).

    Vectorised over the whole table; only the kept entries are built one by one."""
    if active.empty:
        return [], 0
    f = active.reset_index(drop=True)
    company = _key_text(f, "company_id", "")
    rule = _key_text(f, "rule", "")
    keys = pd.MultiIndex.from_arrays([company, rule]).to_flat_index()
    codes, uniques = pd.factorize(keys)
    state = f["state"].astype("string")
    ranks = pd.DataFrame(
        {
            "g": codes,
            "error": (f["severity"].astype("string") == "error").fillna(False).to_numpy(bool),
            "fresh": state.isin(["new", "regressed"]).fillna(False).to_numpy(bool),
            "age": pd.to_numeric(f["age_hours"], errors="coerce").fillna(0).to_numpy(float),
            "row": np.arange(len(f)),
        }
    )
    per = ranks.groupby("g").agg(
        error=("error", "max"), fresh=("fresh", "max"), n=("row", "size"), age=("age", "max")
    )
    per = per.sort_values(
        ["error", "fresh", "n", "age"], ascending=[False, False, False, False], kind="stable"
    )
    total = len(per)
    top = per.index[:limit].to_numpy()
    in_top = np.isin(codes, top)
    rows = f.loc[in_top].assign(_g=codes[in_top])
    rows = rows.assign(
        _err=(rows["severity"].astype("string") == "error").fillna(False).to_numpy(bool),
        _age=pd.to_numeric(rows["age_hours"], errors="coerce").fillna(0).to_numpy(float),
    ).sort_values(["_g", "_err", "_age"], ascending=[True, False, False], kind="stable")
    by_group: dict[int, list[dict[Hashable, Any]]] = {}
    for rec in rows.to_dict("records"):
        by_group.setdefault(int(rec["_g"]), []).append(rec)
    entries = []
    for g in top:
        part = by_group[int(g)]
        head = part[0]
        limit = DISPLAY_LIMITS["data_type"]
        subjects = (_present(r["group"]) or _present(r["data_type"]) for r in part)
        types = tuple(dict.fromkeys(flat(t, limit) for t in subjects if t))
        states = {_present(r["state"]) for r in part}
        nights = [int(n) for r in part if (n := _number(r["nights_open"])) is not None]
        company_id, rule_name = uniques[g]
        entries.append(
            Entry(
                company_id=flat(company_id, DISPLAY_LIMITS["id"]),
                company_name=flat(head["company_name"], DISPLAY_LIMITS["company_name"]),
                platform=flat(head["platform"], DISPLAY_LIMITS["platform"]),
                rule=flat(rule_name, 60),
                code=flat(head["code"], 20),
                severity="error" if any(r["_err"] for r in part) else "warning",
                state="new" if "new" in states else "regressed" if "regressed" in states
                else "ongoing",
                data_types=tuple(t for t in types if t),
                findings=len(part),
                nights_open=max(nights, default=1),
                message=flat(head["message"], 300),
                remedy=flat(head["remedy"], 300),
            )
        )
    return entries, total


def entries_from_actions(actions: pd.DataFrame, limit: int) -> tuple[list[Entry], int]:
    """(the first ``limit`` rows of the ranked actions table as entries; how many there are).

    ``actions`` is already ranked and cut to the audience's scope; each entry's remedy is the
    row's one action (with its https link, when it has one)."""
    if actions.empty:
        return [], 0
    ranked = actions.sort_values("rank", kind="stable") if "rank" in actions else actions
    entries = []
    for rec in ranked.head(limit).to_dict("records"):
        types = _present(rec.get("data_types")) or ""
        action = flat(rec.get("action_text"), 300) or flat(rec.get("remedy"), 300)
        link = _present(rec.get("link_url"))
        if link and link not in action:
            action = flat(f"{action} {link}", 600)
        nights = _number(rec.get("nights_open"))
        findings = _number(rec.get("findings"))
        entries.append(
            Entry(
                company_id=flat(rec.get("company_id"), DISPLAY_LIMITS["id"]),
                company_name=flat(rec.get("company_name"), DISPLAY_LIMITS["company_name"]),
                platform=flat(rec.get("platform"), DISPLAY_LIMITS["platform"]),
                rule=flat(rec.get("rule"), 60),
                code=flat(rec.get("code"), 20),
                severity="error" if _present(rec.get("severity")) == "error" else "warning",
                state=_present(rec.get("state")) or "ongoing",
                data_types=tuple(
                    t for t in (flat(x, DISPLAY_LIMITS["data_type"]) for x in types.split(", "))
                    if t
                ),
                findings=int(findings) if findings is not None else 1,
                nights_open=int(nights) if nights is not None else 1,
                message=flat(rec.get("message"), 300),
                remedy=action,
            )
        )
    return entries, len(ranked)


def nothing_open(note: Notification) -> str:
    """The line that stands for an empty list of entries (never an unqualified all clear)."""
    if note.incomplete:
        return "No open finding in scope among what could be checked: the audit is incomplete."
    return "Nothing open in scope tonight."


def build_notification(
    result: AuditResult,
    *,
    scope: Scope | None = None,
    fleet: FleetInfo | None = None,
    display_tz: str = "UTC",
    report_url: str | None = None,
    max_items: int = 15,
    actions: pd.DataFrame | None = None,
) -> Notification:
    """The content of one message: ``result`` cut to ``scope``, at most ``max_items`` entries.

    The notices (an incomplete audit, companies not read) come from the whole result: an
    audience scoped to one team still hears that tonight's answer is partial."""
    scope = scope or Scope()
    fleet = fleet or FleetInfo()
    scoped = scope.apply(result)
    active = scoped.active.reindex(columns=list(FINDINGS_COLUMNS))
    resolved = unsnoozed(scoped.resolved).reindex(columns=list(FINDINGS_COLUMNS))
    change = build_change(active, resolved)
    open_errors, open_warnings = errors_and_warnings(active)
    as_of = fleet.as_of or result.as_of
    day = format_local(as_of, display_tz, "%Y-%m-%d", zone_name=False)
    subject = digest_subject(change, open_errors + open_warnings, day, "").strip()
    if result.incomplete:
        subject = f"INCOMPLETE: {subject}"
    if actions is not None:
        mask = scope.mask(actions, result.company_tags).to_numpy(dtype=bool)
        entries, total = entries_from_actions(actions.loc[mask], max_items)
    else:
        entries, total = group_findings(active, max_items)
    return Notification(
        title=flat(fleet.title, 120),
        subject=subject,
        day=day,
        as_of=as_of,
        snapshot_id=flat(fleet.snapshot_id or result.snapshot_id, DISPLAY_LIMITS["id"]),
        scope=scope.label(),
        incomplete=result.incomplete,
        notices=tuple(flat(n, 600) for n in build_notices(result, fleet)),
        change=change,
        open_errors=open_errors,
        open_warnings=open_warnings,
        companies_audited=fleet.companies_audited,
        entries=tuple(entries),
        entries_total=total,
        report_url=report_url,
    )
