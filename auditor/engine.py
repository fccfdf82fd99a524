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
   ``as_of``. Then :func:`apply_coverage` leaves out the findings another finding explains
   (a rule's ``covered_by``): each problem is reported once, at its root cause.
2. Fleet rules (``provider-incident``) run once over all findings of the night.
3. Snoozes mark matching findings (``snoozed``, ``snooze_reason``); expired snoozes are listed.
4. The ledger compares with the previous audit: ``state``, ``first_seen``, ``nights_open`` and the
   resolved incidents (see :mod:`auditor.ledger`). An incident that is only covered tonight
   (its problem is still there, reported under its root cause) is not listed as resolved.
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
import pyarrow.compute as pc  # type: ignore[import-untyped]

from auditor.config import AuditConfig
from auditor.events import companies_without_reads, connection_timelines, types_without_reads
from auditor.findings import FINDINGS_COLUMNS, FINDINGS_SCHEMA, conform_findings, empty_findings
from auditor.freshness import FRESHNESS_RULES, FleetFreshness, fleet_freshness
from auditor.ledger import apply_ledger, connection_incidents, incident_keys, unchecked_companies
from auditor.logs import redact
from auditor.result import AuditResult, RuleFailure
from auditor.routing import company_tags_series
from auditor.rules import RULES, Rule, RuleContext
from auditor.rules._base import CompanyTags
from auditor.snapshot import SCHEMAS, Snapshot, conform
from auditor.snoozes import Snooze, apply_snoozes, load_snoozes, split_expired
from auditor.vectors import as_utc_timestamp, concat, isin, map_values, text

__all__ = [
    "NotCompanyCompleteError",
    "RuleError",
    "SnoozesArg",
    "apply_coverage",
    "audit",
    "audit_partition",
    "audit_partitions",
    "concat_findings",
    "run_fleet_rules",
    "sort_findings",
]

_log = logging.getLogger(__name__)

SnoozesArg = Sequence[Snooze] | str | Path | None


class RuleError(RuntimeError):
    """A rule failed on its input (a bug in the rule, or input it cannot read)."""


#: A partition rule that raises is re-run on halves of the partition until the companies it
#: cannot read are found; past this many failed companies in one partition the rest of it is
#: given up on as a whole (bisecting further would cost more than it tells).
MAX_FAILED_COMPANIES = 32


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
             findings: pd.DataFrame | None = None,
             tags: CompanyTags | None = None) -> RuleContext:
    return RuleContext(
        status=snapshot.status,
        companies=snapshot.companies,
        errors=snapshot.errors,
        pull_operations=snapshot.pull_operations,
        sync_settings=snapshot.sync_settings,
        options=config.rule_options(rule),
        as_of=as_of,
        findings=findings,
        monitoring=config.monitoring,
        company_tags=tags,
        events=snapshot.events,
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
    elif out["severity"].isna().any():  # rows of a tiered rule left to the default
        out["severity"] = text(out["severity"]).fillna(rule.default_severity)
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


def _stamp(frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """``frame`` with its incident keys and ``as_of`` filled in."""
    if frame.empty:
        return frame
    missing = frame["incident_key"].isna().to_numpy()
    if missing.any():
        frame.loc[missing, "incident_key"] = incident_keys(frame.loc[missing])
    frame["as_of"] = pd.Series(as_of, index=frame.index, dtype="datetime64[ns, UTC]")
    frame["snoozed"] = frame["snoozed"].fillna(False)
    return frame


def _finish(parts: list[pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    return _stamp(concat_findings(parts), as_of)


def _closure(rules: Sequence[Rule]) -> dict[str, set[str]]:
    """For each rule, every rule that covers it directly or through a chain of rules."""
    direct = {r.name: set(r.covered_by) for r in rules}
    out: dict[str, set[str]] = {}

    def reach(name: str) -> set[str]:
        if name not in out:
            found: set[str] = set()
            for other in direct.get(name, set()):
                found |= {other} | reach(other)
            out[name] = found
        return out[name]

    for name in direct:
        reach(name)
    return {name: found for name, found in out.items() if found}


def _codes(series: pd.Series, *, na_is_value: bool) -> np.ndarray:
    codes, _ = pd.factorize(series, use_na_sentinel=not na_is_value)
    return np.asarray(codes, dtype=np.int64)


def _pairs(left: np.ndarray, left_keys: np.ndarray, right: np.ndarray,
           right_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left row, right row) for every pair of rows with equal keys (a hash join)."""
    joined = pd.DataFrame({"k": left_keys, "t": left}).merge(
        pd.DataFrame({"k": right_keys, "c": right}), on="k", sort=False
    )
    return joined["t"].to_numpy(dtype=np.int64), joined["c"].to_numpy(dtype=np.int64)


def _explains(rule_names: np.ndarray, covered_rules: Sequence[str], target: np.ndarray,
              coverer: np.ndarray, raised: np.ndarray, n: int) -> pd.Series:
    """For each row: `` This also explains 3 stale, 1 cross-type-skew findings ...`` or null."""
    counts = {
        name: np.bincount(coverer[rule_names[target] == name], minlength=n)
        for name in covered_rules
    }
    rows = np.flatnonzero(sum(counts.values()) > 0)
    out = pd.Series(pd.NA, index=pd.RangeIndex(n), dtype="string")
    if rows.size == 0:
        return out
    labels = []
    for name, count in counts.items():
        shown = pd.Series(count[rows])
        label = (shown.astype("string") + f" {name}").where(shown > 0)
        labels.append(pa.array(label.array, type=pa.large_string()))
    separator = pa.scalar(", ", pa.large_string())
    listed = pc.binary_join_element_wise(*labels, separator, null_handling="skip")
    note = np.where(raised[rows], "; raised to error as some of them are errors", "")
    total = np.sum(list(counts.values()), axis=0)[rows]
    noun = np.where(total == 1, " finding", " findings")
    suffix = concat(
        " This also explains ",
        pd.Series(pd.arrays.ArrowStringArray(listed)),
        pd.Series(noun, dtype="string"),
        ", not listed separately",
        pd.Series(note, dtype="string"),
        ".",
    )
    out.iloc[rows] = suffix.to_numpy()
    return out


def apply_coverage(
    findings: pd.DataFrame, rules: Sequence[Rule] = RULES
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the findings that are shown, the findings left out because another finding explains them).

    A finding of rule R is *covered* by a finding of a rule in R's ``covered_by`` (directly or
    through a chain: ``cross-type-skew`` <- ``stale`` <- ``needs-relink``) when both are about
    the same company and connection and either the same data type, or the covering finding has
    no data type (a connection-level finding such as ``needs-relink`` or ``token-expiry-risk``
    covers every data type of its connection). Only findings present in ``findings`` cover: when
    the covering rule is disabled or finds nothing, the covered finding stays.

    Each shown finding that covers others gets the highest severity among them (so leaving the
    symptoms out never lowers what the report, the exit code or the email say) and its message
    ends with how many findings of which rules it explains. Vectorised (two hash joins on
    integer keys); pure per company, so it works on any company-complete partition.
    """
    covers = _closure(rules)
    if findings.empty or not covers:
        return findings, findings.iloc[:0]
    findings = findings.reset_index(drop=True)
    coverers = sorted({c for cs in covers.values() for c in cs})
    is_target = isin(findings["rule"], list(covers))
    is_coverer = isin(findings["rule"], coverers)
    company = _codes(findings["company_id"], na_is_value=False)
    is_target = is_target & (company >= 0)
    is_coverer = is_coverer & (company >= 0)
    if not (is_target.any() and is_coverer.any()):
        return findings, findings.iloc[:0]
    connection = _codes(findings["connection_id"], na_is_value=True)
    data_type = _codes(findings["data_type"], na_is_value=False)
    thing = company * (int(connection.max()) + 2) + connection
    exact = thing * (int(data_type.max()) + 2) + (data_type + 1)
    targets = np.flatnonzero(is_target)
    candidates = np.flatnonzero(is_coverer)
    whole = data_type[candidates] < 0
    by_type = _pairs(targets, exact[targets], candidates[~whole], exact[candidates[~whole]])
    by_connection = _pairs(targets, thing[targets], candidates[whole], thing[candidates[whole]])
    target = np.concatenate([by_type[0], by_connection[0]])
    coverer = np.concatenate([by_type[1], by_connection[1]])
    names = sorted(set(covers) | set(coverers))
    rule_code = map_values(findings["rule"], {r: i for i, r in enumerate(names)}, -1)
    rule_code_arr = rule_code.to_numpy(dtype=np.int64)
    allowed = np.zeros((len(names), len(names)), dtype=bool)
    for name, found in covers.items():
        for other in found:
            allowed[names.index(name), names.index(other)] = True
    ok = allowed[rule_code_arr[target], rule_code_arr[coverer]]
    target, coverer = target[ok], coverer[ok]
    if target.size == 0:
        return findings, findings.iloc[:0]
    n = len(findings)
    covered = np.zeros(n, dtype=bool)
    covered[target] = True
    shown = ~covered[coverer]  # credit each covered finding to the root causes that are shown
    target, coverer = target[shown], coverer[shown]
    error = np.asarray(isin(findings["severity"], ["error"]), dtype=bool)
    worst = error.copy()
    np.logical_or.at(worst, coverer, error[target])
    raised = worst & ~error
    rule_names = text(findings["rule"]).to_numpy(dtype=object)
    suffix = _explains(rule_names, sorted(covers), target, coverer, raised, n)
    out = findings
    has_suffix = suffix.notna().to_numpy()
    if has_suffix.any() or raised.any():
        out = findings.copy()
        if raised.any():
            severity = text(out["severity"]).where(~raised, "error")
            out["severity"] = severity.astype(out["severity"].dtype)
        if has_suffix.any():
            message = text(out["message"]).copy()
            message[has_suffix] = concat(message[has_suffix], suffix[has_suffix])
            out["message"] = message
    return (
        out.loc[~covered].reset_index(drop=True),
        out.loc[covered].reset_index(drop=True),
    )


def _failure_rows(rule: Rule, failure: RuleFailure, snapshot: Snapshot) -> pd.DataFrame:
    """The findings that say a rule could not be evaluated: one per company, or one for all."""
    message = (
        f"Rule {rule.name} could not be evaluated "
        + ("for any company" if failure.fleet_wide else "for this company")
        + f" tonight ({failure.error}); what it would find is unknown, and its incidents stay "
        "open until it is."
    )
    remedy = (
        "A bug in the rule or input it cannot read: the run's log has the traceback; report it "
        "to the auditor's maintainers. Check this data by hand until then."
    )
    if failure.fleet_wide:
        return pd.DataFrame(
            {"severity": ["error"], "message": [message], "remedy": [remedy]}
        )
    names = snapshot.companies.drop_duplicates("company_id").set_index("company_id")
    ids = list(failure.companies)
    name = names["company_name"].reindex(ids) if len(names) else pd.Series(None, index=ids)
    return pd.DataFrame(
        {
            "company_id": ids,
            "company_name": name.to_numpy(),
            "severity": "error",
            "message": message,
            "remedy": remedy,
        }
    )


def _run_isolated(
    rule: Rule,
    snapshot: Snapshot,
    config: AuditConfig,
    as_of: pd.Timestamp,
    failures: list[RuleFailure],
    tags: CompanyTags | None = None,
) -> pd.DataFrame:
    """``rule`` on ``snapshot``; if it raises, on halves of it until the companies it cannot
    read are found. Those are recorded in ``failures`` and get a finding that says so; the
    other companies get the rule's findings as usual. ``tags``: the partition's company tags,
    shared by its rules (the halves read their own)."""
    try:
        return _run(rule, _context(snapshot, rule, config, as_of, tags=tags))
    except RuleError as exc:
        first: RuleError = exc
    found: list[pd.DataFrame] = []
    failed: list[str] = []

    def bisect(part: Snapshot, ids: pd.Index) -> None:
        if len(ids) <= 1 or len(failed) >= MAX_FAILED_COMPANIES:
            failed.extend(str(i) for i in ids)
            return
        half = len(ids) // 2
        for chunk in (ids[:half], ids[half:]):
            sub = part.partition(chunk)
            try:
                found.append(_run(rule, _context(sub, rule, config, as_of)))
            except RuleError:
                bisect(sub, chunk)

    bisect(snapshot, snapshot.company_ids)
    error = redact(repr(first.__cause__) if first.__cause__ else str(first))[:500]
    _log.error("%s", first, exc_info=first)
    fleet_wide = len(failed) > MAX_FAILED_COMPANIES or not failed
    failure = RuleFailure(
        rule.name, rule.code, error, () if fleet_wide else tuple(failed), fleet_wide
    )
    failures.append(failure)
    if not fleet_wide:  # a fleet-wide one gets its one finding in audit(), after all partitions
        found.append(_run_rows(rule, _failure_rows(rule, failure, snapshot)))
    return concat_findings(found)


def _run_rows(rule: Rule, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` stamped as findings of ``rule`` (as :func:`_run` stamps a rule's output)."""
    out = rows.reset_index(drop=True)
    n = len(out)
    out["rule"] = _constant(rule.name, n)
    out["code"] = _constant(rule.code, n)
    return out


def _audit_partition(
    snapshot: Snapshot,
    config: AuditConfig,
    as_of: pd.Timestamp,
    failures: list[RuleFailure] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the partition's findings, the findings covered by another one, both stamped).

    A rule that raises costs only the companies it cannot read (see :func:`_run_isolated`);
    pass ``failures`` to collect them.
    """
    snapshot = _conformed(snapshot)
    rules = [rule for rule in config.enabled_rules() if rule.scope == "partition"]
    sink = failures if failures is not None else []
    tags = CompanyTags(snapshot.companies)  # read once, shared by the partition's rules
    parts = [_run_isolated(rule, snapshot, config, as_of, sink, tags) for rule in rules]
    shown, covered = apply_coverage(concat_findings(parts), RULES)
    return _stamp(shown, as_of), _stamp(covered, as_of)


def audit_partition(snapshot: Snapshot, config: AuditConfig, as_of: datetime) -> pd.DataFrame:
    """Findings of the partition rules on one company-complete partition (a findings table).

    Findings another finding explains (see :func:`apply_coverage`) are left out. A rule that
    raises gives, for the companies it cannot read, a finding that says so.
    """
    return _audit_partition(snapshot, config, as_utc_timestamp(as_of))[0]


def run_fleet_rules(
    findings: pd.DataFrame,
    snapshot: Snapshot,
    config: AuditConfig,
    as_of: datetime,
    failures: list[RuleFailure] | None = None,
) -> pd.DataFrame:
    """Add the fleet rules' findings (and let them annotate the others).

    A fleet rule that raises is recorded in ``failures`` (fleet-wide) with one finding that
    says so; the other rules' findings stand.
    """
    ts = as_utc_timestamp(as_of)
    parts = [findings]
    for rule in config.enabled_rules():
        if rule.scope != "fleet":
            continue
        ctx = _context(snapshot, rule, config, ts, findings=findings)
        try:
            extra = _run(rule, ctx)
            annotated = (
                rule.annotate(parts[0], extra)
                if rule.annotate is not None and not extra.empty
                else parts[0]
            )
        except Exception as exc:
            _log.error("fleet rule %s failed", rule.name, exc_info=exc)
            failure = RuleFailure(
                rule.name, rule.code, redact(repr(exc.__cause__ or exc))[:500], fleet_wide=True
            )
            if failures is not None:
                failures.append(failure)
            extra = _run_rows(rule, _failure_rows(rule, failure, snapshot))
            annotated = parts[0]
        parts[0] = annotated
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
    snapshot = _conformed(snapshot)
    parts: Iterable[Snapshot] = [snapshot]
    if chunk_size is not None and chunk_size > 0 and len(snapshot.company_ids) > chunk_size:
        parts = (snapshot.partition(chunk) for chunk in _chunks(snapshot.company_ids, chunk_size))
    return audit_partitions(
        snapshot, parts, config, as_of=as_of, previous=previous, snoozes=snoozes
    )


class NotCompanyCompleteError(ValueError):
    """A company came in more than one partition: the partitions were not company-complete,
    so per-company rules may have seen part of it. Audit the whole snapshot instead."""


def audit_partitions(
    fleet: Snapshot,
    partitions: Iterable[Snapshot],
    config: AuditConfig | None = None,
    *,
    as_of: datetime,
    previous: pd.DataFrame | None = None,
    snoozes: SnoozesArg = None,
) -> AuditResult:
    """Audit a snapshot given as company-complete ``partitions`` (streamed: each partition is
    dropped once its findings are taken, so memory follows the largest partition, not the
    fleet) and ``fleet``: the fleet-level frames of the same snapshot (``companies``,
    ``errors``, ``sync_settings``; its ``status`` may be empty). The fleet-level steps (fleet
    rules such as provider incidents, rules failed fleet-wide, snoozes, the ledger, the sort)
    run on the findings and on ``fleet`` only.

    The findings are those of :func:`audit` on the whole snapshot. Raises
    :class:`NotCompanyCompleteError` (after the last partition) if a company id came in two
    partitions.
    """
    config = config or AuditConfig()
    ts = as_utc_timestamp(as_of)
    failures: list[RuleFailure] = []
    active, expired = split_expired(_snooze_list(snoozes), ts)
    shown: list[pd.DataFrame] = []
    covered_parts: list[pd.DataFrame] = []
    unchecked: list[tuple[str | None, str | None]] = []
    seen: list[pd.Index] = []
    monitored = fresh = 0
    for part in partitions:
        part = _conformed(part)
        if fleet.events is not None and part.events is None:  # a partition read from the store
            events = fleet.events
            part = replace(part, events=events.loc[isin(events["company_id"], part.company_ids)])
        seen.append(part.company_ids)
        found, left_out = _audit_partition(part, config, ts, failures)
        shown.append(found)
        covered_parts.append(left_out)
        unchecked += [(None, c) for c in unchecked_companies(part.status, part.errors)]
        # Freshness per partition (company-complete: the counts add up); stale rows explained
        # by their root cause still make their data type not fresh.
        rows = apply_snoozes(concat_findings([_freshness_rows(found), _freshness_rows(left_out)]),
                             active)  # fmt: skip
        figure = fleet_freshness(part.status, part.companies, rows, config.monitoring)
        monitored, fresh = monitored + figure.monitored, fresh + figure.fresh
        del part, found, left_out, rows
    company_ids = seen[0] if len(seen) == 1 else pd.Index([])
    if len(seen) > 1:
        company_ids = pd.Index(pd.concat([i.to_series() for i in seen], ignore_index=True))
        if not company_ids.is_unique:
            twice = company_ids[company_ids.duplicated()].unique()[:5].tolist()
            raise NotCompanyCompleteError(
                f"snapshot {fleet.snapshot_id}: companies {twice} came in more than one "
                "partition"
            )
    del seen
    freshness = FleetFreshness(monitored, fresh)
    if len(shown) == 1:
        findings, covered = shown[0], covered_parts[0]
    else:
        findings = _one_fleet_row(concat_findings(shown))
        covered = concat_findings(covered_parts)
    covered_keys = covered["incident_key"]
    del shown, covered_parts
    failures = _merged(failures)
    by_name = {r.name: r for r in config.enabled_rules()}
    wholesale = [
        _run_rows(by_name[f.rule], _failure_rows(by_name[f.rule], f, fleet))
        for f in failures
        if f.fleet_wide
    ]
    if wholesale:
        findings = _finish([findings, *wholesale], ts)
    findings = run_fleet_rules(findings, fleet, config, ts, failures)
    findings = apply_snoozes(findings, active)
    for failure in failures:
        if failure.fleet_wide:
            unchecked.append((failure.rule, None))
        else:
            unchecked += [(failure.rule, c) for c in failure.companies]
    # validation-warning reads webhooks: no log, or no read of a company since the previous
    # audit, is not "the warning went away" (not collected is not resolved).
    unread_types: list[tuple[str, str, str]] = []
    if fleet.events is None:
        unchecked.append(("validation-warning", None))
    else:
        unread = companies_without_reads(fleet.events, company_ids)
        unchecked += [("validation-warning", str(c)) for c in unread]
        unread_types = types_without_reads(fleet.events, previous, "validation-warning")
    findings, resolved = apply_ledger(
        findings, previous, ts, unchecked=unchecked, unchecked_types=unread_types
    )
    if len(resolved) and len(covered_keys):
        # Still there, reported under its root cause: not resolved.
        resolved = resolved.loc[~isin(resolved["incident_key"], covered_keys.dropna())]
        resolved = resolved.reset_index(drop=True)
    if fleet.events is not None:  # disconnected and reconnected between the nights
        timelines = connection_timelines(fleet.events)
        resolved = connection_incidents(timelines, findings, resolved, ts.to_pydatetime())
    findings = sort_findings(findings)
    _log.info(
        "audit %s: %d findings (%d snoozed), %d resolved, %d covered by their root cause",
        fleet.snapshot_id,
        len(findings),
        int(findings["snoozed"].fillna(False).astype(bool).sum()),
        len(resolved),
        len(covered_keys),
    )
    return AuditResult(
        snapshot_id=fleet.snapshot_id,
        as_of=ts.to_pydatetime(),
        findings=findings[list(FINDINGS_COLUMNS)],
        resolved=resolved,
        expired_snoozes=expired,
        rule_failures=tuple(failures),
        company_tags=company_tags_series(fleet.companies),
        covered=covered.reindex(columns=list(FINDINGS_COLUMNS)),
        freshness=freshness,
    )


def _freshness_rows(findings: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``findings`` that :func:`auditor.freshness.fleet_freshness` reads."""
    return findings.loc[isin(findings["rule"], list(FRESHNESS_RULES))]


def _one_fleet_row(findings: pd.DataFrame) -> pd.DataFrame:
    """Fleet-level findings (no company) that every partition gave: kept once."""
    fleet = findings["company_id"].isna().to_numpy()
    if not fleet.any():
        return findings
    dup = fleet & findings["incident_key"].duplicated().to_numpy()
    return findings.loc[~dup].reset_index(drop=True) if dup.any() else findings


def _merged(failures: list[RuleFailure]) -> list[RuleFailure]:
    """One failure per rule over all partitions (fleet-wide if any part was)."""
    by_rule: dict[str, RuleFailure] = {}
    for f in failures:
        seen = by_rule.get(f.rule)
        if seen is None:
            by_rule[f.rule] = f
            continue
        companies = seen.companies + f.companies
        fleet_wide = seen.fleet_wide or f.fleet_wide
        by_rule[f.rule] = RuleFailure(
            f.rule, f.code, seen.error, () if fleet_wide else companies, fleet_wide
        )
    return list(by_rule.values())
