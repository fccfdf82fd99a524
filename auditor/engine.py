"""Run the rules over a snapshot: the audit.

::

    from auditor.engine import audit
    result = audit(snapshot, config, as_of=now, previous=last_nights_tables, snoozes=snoozes)

Steps
-----
1. :func:`audit_partition` runs every enabled partition rule on one company-complete partition
   of the snapshot (by default the whole snapshot is one partition; ``chunk_size`` splits it so
   memory stays flat, and the same function can run under Dask ``map_partitions``). It fills
   ``rule``, ``code``, ``severity`` (configured override or the rule's), ``incident_key`` and
   ``as_of``.
2. Fleet rules (``provider-incident``) run once over all findings of the night.
3. Snoozes mark matching findings (``snoozed``, ``snooze_reason``); expired snoozes are listed.
4. The ledger compares with the previous audit: ``state``, ``first_seen``, ``nights_open`` and the
   resolved incidents (see :mod:`auditor.ledger`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from auditor.config import AuditConfig
from auditor.findings import FINDINGS_COLUMNS, FINDINGS_SCHEMA, conform_findings, empty_findings
from auditor.ledger import apply_ledger, incident_keys
from auditor.result import AuditResult
from auditor.rules import Rule, RuleContext
from auditor.rules._base import map_values, now_utc
from auditor.snapshot import SCHEMAS, Snapshot, conform
from auditor.snoozes import Snooze, apply_snoozes, load_snoozes, split_expired

__all__ = [
    "RuleError",
    "audit",
    "audit_partition",
    "concat_findings",
    "run_fleet_rules",
    "sort_findings",
]

_log = logging.getLogger(__name__)

SnoozesArg = Sequence[Snooze] | str | Path | None


class RuleError(RuntimeError):
    """A rule failed on its input (a bug in the rule, or input it cannot read)."""


def _conformed(snapshot: Snapshot) -> Snapshot:
    """The snapshot with every frame in its schema (frames already conformed are kept)."""
    parts: dict[str, pd.DataFrame] = {}
    for name, frame in snapshot.frames().items():
        schema = SCHEMAS[name]
        if list(frame.columns[: len(schema)]) != list(schema):
            frame = conform(frame, schema)
        parts[name] = frame
    return replace(
        snapshot,
        status=parts["status"],
        companies=parts["companies"],
        errors=parts["errors"],
        pull_operations=parts["pull_operations"],
        sync_settings=parts["sync_settings"],
    )


def _context(snapshot: Snapshot, rule: Rule, config: AuditConfig, as_of: pd.Timestamp,
             findings: pd.DataFrame | None = None) -> RuleContext:
    return RuleContext(
        status=snapshot.status,
        companies=snapshot.companies,
        errors=snapshot.errors,
        pull_operations=snapshot.pull_operations,
        sync_settings=snapshot.sync_settings,
        options=config.rule_options(rule),
        config=config,
        as_of=as_of,
        findings=findings,
    )


def _constant(value: str, n: int) -> pd.Categorical[str]:
    categories = pd.Index([value], dtype="string")
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=categories)


def _run(rule: Rule, ctx: RuleContext) -> pd.DataFrame:
    try:
        out = rule.check(ctx)
    except Exception as exc:
        raise RuleError(f"rule {rule.name} ({rule.code}) failed: {exc!r}") from exc
    if out.empty:
        return out
    out = out.reset_index(drop=True)
    n = len(out)
    out["rule"] = _constant(rule.name, n)
    out["code"] = _constant(rule.code, n)
    override = ctx.options.severity
    if override is not None or "severity" not in out.columns:
        out["severity"] = _constant(override or rule.default_severity, n)
    return out


def _nulls(kind: str, n: int) -> Any:
    """An all-null column of ``kind`` with the dtype :func:`conform` gives it (built cheaply)."""
    if kind == "str":
        return pd.arrays.ArrowStringArray(pa.nulls(n, pa.large_string()))
    if kind == "category":
        return pd.Categorical.from_codes(
            np.full(n, -1, dtype=np.int8), categories=pd.Index([], dtype="string")
        )
    if kind == "timestamp":
        empty = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        return pd.DatetimeIndex(empty).tz_localize("UTC")
    if kind == "float":
        return np.full(n, np.nan)
    if kind == "int":
        return pd.arrays.IntegerArray(np.zeros(n, dtype="int64"), np.ones(n, dtype=bool))
    return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every findings column (missing ones as typed nulls), in order."""
    n = len(frame)
    missing = {c: _nulls(k, n) for c, k in FINDINGS_SCHEMA.items() if c not in frame.columns}
    if missing:
        frame = frame.assign(**{c: pd.Series(v, index=frame.index) for c, v in missing.items()})
    return conform_findings(frame)


def concat_findings(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate findings tables, keeping categoricals categorical (unioned categories)."""
    frames = [_complete(p) for p in parts if not p.empty]
    if not frames:
        return empty_findings()
    if len(frames) == 1:
        return frames[0]
    for column, kind in FINDINGS_SCHEMA.items():
        if kind != "category":
            continue
        values: dict[str, None] = {}
        for f in frames:
            values.update(dict.fromkeys(str(c) for c in f[column].cat.categories))
        dtype = pd.CategoricalDtype(pd.Index(list(values), dtype="string"))
        for f in frames:
            f[column] = f[column].astype(dtype)
    return pd.concat(frames, ignore_index=True)


def _finish(parts: list[pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    frame = concat_findings(parts)
    if frame.empty:
        return frame
    missing = frame["incident_key"].isna().to_numpy()
    if missing.any():
        frame.loc[missing, "incident_key"] = incident_keys(frame.loc[missing])
    frame["as_of"] = pd.Series(as_of, index=frame.index, dtype="datetime64[ns, UTC]")
    frame["snoozed"] = frame["snoozed"].fillna(False)
    return frame


def audit_partition(snapshot: Snapshot, config: AuditConfig, as_of: datetime) -> pd.DataFrame:
    """Findings of the partition rules on one company-complete partition (a findings table)."""
    ts = now_utc(as_of)
    snapshot = _conformed(snapshot)
    parts = [
        _run(rule, _context(snapshot, rule, config, ts))
        for rule in config.enabled_rules()
        if rule.scope == "partition"
    ]
    return _finish(parts, ts)


def run_fleet_rules(
    findings: pd.DataFrame, snapshot: Snapshot, config: AuditConfig, as_of: datetime
) -> pd.DataFrame:
    """Add the fleet rules' findings (and let them annotate the others)."""
    ts = now_utc(as_of)
    parts = [findings]
    for rule in config.enabled_rules():
        if rule.scope != "fleet":
            continue
        ctx = _context(snapshot, rule, config, ts, findings=findings)
        extra = _run(rule, ctx)
        if rule.annotate is not None and not extra.empty:
            parts[0] = rule.annotate(parts[0], extra)
        parts.append(extra)
    return _finish(parts, ts) if len(parts) > 1 else findings


_SEVERITY_RANK = {"error": 0, "warning": 1}


def _sort_codes(series: pd.Series) -> np.ndarray:
    """Integer codes in the sort order of the values (NA first)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        rank = np.argsort(np.argsort(series.cat.categories.astype(str).to_numpy(), kind="stable"))
        codes = series.cat.codes.to_numpy()
        return np.where(codes >= 0, rank[np.maximum(codes, 0)], -1) if len(rank) else codes
    codes, _ = pd.factorize(series, sort=True, use_na_sentinel=True)
    return np.asarray(codes)


def sort_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Errors first, then by rule code, company, data type and group (stable)."""
    if findings.empty:
        return findings
    rank = map_values(findings["severity"], _SEVERITY_RANK, 2).to_numpy(dtype="float64")
    order = np.lexsort(
        (
            _sort_codes(findings["group"]),
            _sort_codes(findings["data_type"]),
            _sort_codes(findings["company_id"]),
            _sort_codes(findings["code"]),
            rank,
        )
    )
    return findings.iloc[order].reset_index(drop=True)


def _snooze_list(snoozes: SnoozesArg) -> list[Snooze]:
    if snoozes is None:
        return []
    if isinstance(snoozes, str | Path):
        return load_snoozes(snoozes)
    return list(snoozes)


def _chunks(ids: pd.Index, size: int) -> Iterable[pd.Index]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def audit(
    snapshot: Snapshot,
    config: AuditConfig | None = None,
    *,
    as_of: datetime,
    previous: pd.DataFrame | None = None,
    snoozes: SnoozesArg = None,
    chunk_size: int | None = None,
) -> AuditResult:
    """Audit ``snapshot`` as of ``as_of``.

    ``previous``   the previous audit's findings, with its resolved rows (see
                   :func:`auditor.ledger.previous_tables`); None on the first night.
    ``snoozes``    a list of :class:`Snooze`, or the path of a snooze file.
    ``chunk_size`` audit this many companies at a time (None: all at once).
    """
    config = config or AuditConfig()
    ts = now_utc(as_of)
    snapshot = _conformed(snapshot)
    if chunk_size is not None and chunk_size > 0 and len(snapshot.company_ids) > chunk_size:
        ids = snapshot.company_ids
        parts = [
            audit_partition(snapshot.partition(chunk), config, ts)
            for chunk in _chunks(ids, chunk_size)
        ]
        findings = concat_findings(parts)
    else:
        findings = audit_partition(snapshot, config, ts)
    findings = run_fleet_rules(findings, snapshot, config, ts)
    active, expired = split_expired(_snooze_list(snoozes), ts)
    findings = apply_snoozes(findings, active)
    findings, resolved = apply_ledger(findings, previous, ts)
    findings = sort_findings(findings)
    _log.info(
        "audit %s: %d findings (%d snoozed), %d resolved",
        snapshot.snapshot_id,
        len(findings),
        int(findings["snoozed"].fillna(False).astype(bool).sum()),
        len(resolved),
    )
    return AuditResult(
        snapshot_id=snapshot.snapshot_id,
        as_of=ts.to_pydatetime(),
        findings=findings[list(FINDINGS_COLUMNS)],
        resolved=resolved,
        expired_snoozes=expired,
    )
