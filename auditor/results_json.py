"""``results.json``: what a run did, machine-readable, next to the human reports.

As dbt's ``run_results.json`` serves CI and orchestrators, ``auditor run`` and ``auditor audit``
write ``OUT/results.json`` on every exit, a failed run's included (exit 2, with the reason),
so a scheduler, a dashboard or a script never has to scrape the log or the HTML.

Its shape is pinned by the JSON Schema ``schemas/results.schema.json`` (draft 2020-12,
``schema_version`` 1; a test validates real runs against it). Top-level keys:

``schema_version``  1; a field is only ever added within a version.
``command``         ``run`` or ``audit``.
``run_id``          the run's id (the one in every log line).
``generated_at``    when the file was written (UTC).
``exit_code``       0 ok, 1 findings crossed the fail level, 2 the run failed.
``status``          ``ok`` / ``findings`` / ``failed``: the exit code in words.
``reason``          one line: why this exit code.
``as_of``           the audit's "now" (null when the run failed before it).
``snapshot``        the night audited: id, taken at, companies, complete (or null).
``incomplete``      the audit lacks a rule or a fleet-wide input (exit 2); the reasons are in
                    ``rule_failures`` and ``missing_inputs``.
``counts``          ``findings`` (active), ``snoozed``, ``resolved``, and ``by_rule``: one row
                    per rule × severity × state × snoozed with its count (resolved rows have
                    ``state`` ``resolved``).
``collection``      what the collector did (``auditor run`` only, else null): requests, 429s,
                    companies collected / skipped / with errors, malformed fields, skipped
                    records, seconds.
``stages``          seconds per stage (``collect``, ``audit``, ``deliver``), those that ran.
``stored``          whether the findings were stored in the ledger (``not_stored`` says why not).
``paths``           where the store, the reports and this file are.
``notifications``   one per Slack / Teams / webhook message: channel, route (its name, never
                    its URL), sent, error, bytes, entries shown / in scope (empty for none).

A shard of a sharded run that only collected writes ``results.shard-K-of-N.json`` (same
schema); the shard that completes the night audits and writes ``results.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

from auditor.collector import StoreRun
from auditor.logs import redact
from auditor.notify import NotifyOutcome
from auditor.pipeline import AuditRun
from auditor.result import AuditResult
from auditor.store import StoreDir

__all__ = [
    "RESULTS_JSON",
    "RESULTS_SCHEMA_VERSION",
    "Command",
    "build_results",
    "findings_counts",
    "results_name",
    "write_results",
]

#: The file's name in the reports directory.
RESULTS_JSON: Final = "results.json"
#: ``schema_version`` of what :func:`build_results` writes.
RESULTS_SCHEMA_VERSION: Final = 1

#: The command that wrote the file.
Command = Literal["run", "audit"]
_STATUS: Final[Mapping[int, str]] = {0: "ok", 1: "findings", 2: "failed"}


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def results_name(shard: tuple[int, int] | None, *, audited: bool) -> str:
    """``results.json``; a shard that only collected (another shard audits the night) writes
    ``results.shard-K-of-N.json`` instead, so that shards sharing OUT keep their own."""
    if shard is None or audited:
        return RESULTS_JSON
    return f"results.shard-{shard[0]}-of-{shard[1]}.json"


def findings_counts(result: AuditResult) -> list[dict[str, Any]]:
    """Findings counted by rule × severity × state × snoozed (resolved incidents with state
    ``resolved``), sorted, zero rows left out."""
    frames = []
    for frame in (result.findings, result.resolved):
        if frame.empty:
            continue
        part = pd.DataFrame(
            {
                "rule": frame["rule"].astype("string").fillna(""),
                "severity": frame["severity"].astype("string").fillna(""),
                "state": frame["state"].astype("string").fillna(""),
                "snoozed": frame["snoozed"].fillna(False).astype(bool),
            }
        )
        frames.append(part)
    if not frames:
        return []
    table = pd.concat(frames, ignore_index=True)
    keys = ["rule", "severity", "state", "snoozed"]
    grouped = table.groupby(keys, observed=True).size().rename("n").reset_index()
    grouped = grouped.loc[grouped["n"] > 0].sort_values(keys)
    return [
        {
            "rule": str(row.rule),
            "severity": str(row.severity),
            "state": str(row.state),
            "snoozed": bool(row.snoozed),
            "count": int(str(row.n)),
        }
        for row in grouped.itertuples(index=False)
    ]


def _collection(
    run: StoreRun, client_stats: Mapping[str, Mapping[str, int]] | None
) -> dict[str, Any]:
    stats = client_stats or {}
    return {
        "snapshot_id": run.snapshot_id,
        "complete": run.complete,
        "shard": {"index": run.shard[0], "count": run.shard[1]},
        "requests": int(run.requests),
        "retries": int(stats.get("retries", {}).get("total", 0)),
        "rate_limited": int(stats.get("rate_limited", {}).get("total", 0)),
        "companies_collected": int(run.companies_collected),
        "companies_skipped": int(run.companies_skipped),
        "companies_with_errors": int(run.companies_with_errors),
        "pull_operations_reused": int(run.pull_operations_reused),
        "malformed_fields": {str(k): int(v) for k, v in sorted(run.malformed_fields.items())},
        "skipped_records": {str(k): int(v) for k, v in sorted(run.skipped_records.items())},
        "elapsed_seconds": round(float(run.elapsed_seconds), 3),
    }


def build_results(
    *,
    command: Command,
    run_id: str,
    exit_code: int,
    reason: str,
    as_of: datetime | None,
    store: StoreDir,
    out_dir: Path,
    audit: AuditRun | None = None,
    collected: StoreRun | None = None,
    client_stats: Mapping[str, Mapping[str, int]] | None = None,
    stages: Mapping[str, float] | None = None,
    now: datetime | None = None,
    name: str = RESULTS_JSON,
    notifications: Sequence[NotifyOutcome] = (),
) -> dict[str, Any]:
    """The ``results.json`` document of one run (see the module docstring)."""
    result = audit.result if audit is not None else None
    snapshot = None
    if audit is not None:
        snap = audit.snapshot
        snapshot = {
            "id": snap.snapshot_id,
            "snapshot_at": _iso(snap.snapshot_at),
            "companies": len(snap.company_ids),
            "collection_errors": int(audit.fleet.collection_errors or 0),
        }
    counts: dict[str, Any] = {"findings": 0, "snoozed": 0, "resolved": 0, "by_rule": []}
    if result is not None:
        counts = {
            "findings": len(result.active),
            "snoozed": int(len(result.findings) - len(result.active)),
            "resolved": len(result.resolved),
            "by_rule": findings_counts(result),
        }
    paths: dict[str, str | None] = {
        "store": str(store),
        "out_dir": str(out_dir),
        "results_json": str(out_dir / name),
        "report_html": None,
        "findings_csv": None,
        "summary_csv": None,
        "incidents_csv": None,
    }
    if audit is not None and audit.reports is not None:
        reports = audit.reports
        paths.update(
            report_html=str(reports.report_html),
            findings_csv=str(reports.findings_csv),
            summary_csv=str(reports.summary_csv),
            incidents_csv=str(reports.incidents_csv),
        )
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "command": command,
        "run_id": run_id,
        "generated_at": _iso(now or datetime.now(UTC)),
        "exit_code": int(exit_code),
        "status": _STATUS.get(exit_code, "failed"),
        "reason": redact(reason),
        "as_of": _iso(as_of),
        "snapshot": snapshot,
        "incomplete": bool(result.incomplete) if result is not None else exit_code == 2,
        "rule_failures": [
            {
                "rule": f.rule,
                "code": f.code,
                "error": redact(f.error),
                "fleet_wide": f.fleet_wide,
                "companies": len(f.companies),
                "message": redact(f.describe()),
            }
            for f in (result.rule_failures if result is not None else ())
        ],
        "missing_inputs": list(result.missing_inputs) if result is not None else [],
        "counts": counts,
        "freshness": (
            result.freshness.to_json()
            if result is not None and result.freshness is not None
            else None
        ),
        "collection": _collection(collected, client_stats) if collected is not None else None,
        "stages": {str(k): round(float(v), 3) for k, v in (stages or {}).items()},
        "stored": bool(audit.stored) if audit is not None else False,
        "not_stored": audit.not_stored if audit is not None else "",
        "paths": paths,
        "notifications": [
            {
                "channel": n.channel,
                "route": redact(n.label),
                "sent": n.sent,
                "error": redact(n.error) if n.error is not None else None,
                "bytes": n.bytes,
                "entries_shown": n.entries_shown,
                "entries_total": n.entries_total,
            }
            for n in notifications
        ],
    }


def write_results(
    payload: Mapping[str, Any], out_dir: Path | str, *, name: str = RESULTS_JSON
) -> Path:
    """Write ``payload`` to ``OUT/results.json`` (or ``name``) atomically (a reader never sees
    half a file) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / name
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{RESULTS_JSON}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False, allow_nan=False)
            handle.write("\n")
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
