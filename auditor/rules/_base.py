"""The rule contract: the :class:`Rule` record, its options models, its context, thresholds.

A rule is data plus one pure function::

    RULE = Rule(code="FA101", name="stale", default_severity="warning",
                options_model=StaleOptions, check=check, doc=__doc__)

``check(ctx)`` receives a :class:`RuleContext` (one company-complete partition of the snapshot,
the rule's own validated options and ``as_of``) and returns a DataFrame whose columns are a
subset of :data:`auditor.findings.FINDINGS_COLUMNS`. It must be vectorised (no Python loop over
rows; ``groupby`` and loops over a handful of groups/settings are fine) and must not read the
clock. A rule reads only its own options: everything it can be configured with is a field of
its options model (with a ``Field(description=...)``, shown by ``auditor rules NAME`` and in
``docs/rules.md``). Only a tiered rule writes a ``severity`` column; the engine fills the
others with ``default_severity`` (or the configured override). The module docstring of the
rule is its documentation.

Column helpers (``isin``, ``text``, ``concat``, ``fmt_ts``, ...) are in :mod:`auditor.vectors`;
helpers several rules share are in :mod:`auditor.rules._shared` (a rule module never imports
another rule module).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Final, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from auditor.findings import Severity
from auditor.vectors import isin, map_values, text

__all__ = [
    "HOUR",
    "STATUS_COLUMNS",
    "CompanyTags",
    "Hours",
    "Monitoring",
    "Rule",
    "RuleContext",
    "RuleOptions",
    "Scope",
    "TagThresholds",
    "Thresholds",
    "TieredOptions",
    "crossed",
    "has_tag",
    "parse_hours",
    "resolve_thresholds",
    "severity_of",
    "status_columns",
    "tier",
]

HOUR: Final = pd.Timedelta(hours=1)
Scope = Literal["partition", "fleet"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw]?)\s*$", re.IGNORECASE)
_UNIT_HOURS: Final[dict[str, float]] = {"": 1.0, "h": 1.0, "d": 24.0, "w": 168.0}


def parse_hours(value: Any) -> Any:
    """Accept a number of hours, or a string such as ``"36h"``, ``"25d"``, ``"1w"``."""
    if isinstance(value, bool):
        raise ValueError("expected a number of hours or a duration such as '36h', not a boolean")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: use hours (36) or '36h', '25d', '1w'")
        return float(match.group(1)) * _UNIT_HOURS[match.group(2).lower()]
    return value


#: A duration in hours; config files may also write ``"36h"``, ``"25d"`` or ``"2w"``.
Hours = Annotated[float, BeforeValidator(parse_hours), Field(ge=0)]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleOptions(_Options):
    """Options every rule has: ``enabled`` and a ``severity`` that overrides all its findings."""

    enabled: bool = Field(default=True, description="Run this rule.")
    severity: Severity | None = Field(
        default=None,
        description='Give all this rule\'s findings this severity ("warning" or "error") '
        "instead of the rule's own.",
    )


class Thresholds(_Options):
    """A warning and an error threshold, in hours (either may be left to the level above)."""

    warn_after: Hours | None = Field(
        default=None, description="Warning above this many hours (unset: the level above)."
    )
    error_after: Hours | None = Field(
        default=None, description="Error above this many hours (unset: the level above)."
    )


class TagThresholds(Thresholds):
    """``[rules.<rule>.tags.<tag>.<value>]``: thresholds for the companies with one tag value,
    and per platform and per data type for those companies."""

    platforms: dict[str, Thresholds] = Field(
        default_factory=dict,
        description="Thresholds per platform for the companies with this tag value.",
    )
    data_types: dict[str, Thresholds] = Field(
        default_factory=dict,
        description="Thresholds per data type for the companies with this tag value.",
    )


class TieredOptions(RuleOptions):
    """Options of a rule with a warning and an error threshold.

    ``warn_after``/``error_after`` apply to every row; ``platforms.<name>`` overrides them for a
    platform, ``data_types.<name>`` for a data type, and ``tags.<tag>.<value>`` (with its own
    ``platforms``/``data_types``) for the companies whose Codat tag ``<tag>`` is ``<value>``.
    Most specific wins, the dimension first and within it the tag (see
    :func:`resolve_thresholds` and ``docs/audit.md``, "Per-tenant thresholds").
    """

    warn_after: Hours | None = Field(
        default=None, description="Warning above this many hours, for every row."
    )
    error_after: Hours | None = Field(
        default=None, description="Error above this many hours, for every row."
    )
    platforms: dict[str, Thresholds] = Field(
        default_factory=dict,
        description="Thresholds per platform (by platform name), one table per platform.",
    )
    data_types: dict[str, Thresholds] = Field(
        default_factory=dict,
        description="Thresholds per data type, one table per data type (they win over the "
        "platform's).",
    )
    tags: dict[str, dict[str, TagThresholds]] = Field(
        default_factory=dict,
        description="Thresholds per company tag (tag name, then value: "
        '[rules.<rule>.tags.tier.gold] warn_after = "12h"), with their own platforms and '
        "data_types tables. Order, most specific first: tag + data type, data type, tag + "
        "platform, platform, tag, the rule's own, the default; where two tags of a company "
        "match at the same level, the lower threshold wins.",
    )


class Monitoring(_Options):
    """``[monitoring]``: what the fleet's monitoring leaves out, read by every rule.

    A connection Deauthorized **by design** (a one-time sync: Codat reads the data once, then
    the connection is deauthorized on purpose) is expected: it raises no ``needs-relink``, and
    the data types it served raise no freshness finding (stale, skew, token expiry,
    never-synced, stuck) either. Data types in ``AuthError`` still do.
    """

    expected_deauthorized_platforms: list[str] = Field(
        default_factory=list,
        description="Platform names or integration keys (any case) whose connections are "
        "Deauthorized by design after a one-time sync: such a connection raises nothing.",
    )
    expected_deauthorized_tags: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Company tags (tag name -> the values that count) of companies whose "
        'connections are Deauthorized by design, e.g. {sync = ["one-time"]}.',
    )


def has_tag(tags: pd.Series, wanted: Mapping[str, Iterable[str]]) -> np.ndarray:
    """A bool mask over ``tags`` (``company_tags`` JSON text, see ``auditor.snapshot.tags_json``):
    True where the company has a tag ``key`` whose value is one of ``wanted[key]``.

    Exact without parsing: in the canonical text a pair ``"k":"v"`` starts right after ``{``
    or ``,``, and a quote inside a key or value is escaped, so a substring cannot match across
    strings."""
    out = np.zeros(len(tags), dtype=bool)
    if not wanted or tags.empty:
        return out
    values = text(tags).fillna("")
    for key, options in wanted.items():
        for value in options:
            pair = json.dumps(key, ensure_ascii=False) + ":" + json.dumps(value, ensure_ascii=False)
            for lead in ("{", ","):
                found = values.str.contains(lead + pair, regex=False)
                out |= found.to_numpy(dtype=bool, na_value=False)
    return out


class CompanyTags:
    """The company tags of one partition, read once and shared by its rules.

    Built from the ``companies`` frame (``company_tags`` JSON text, one value per company):
    the distinct tag texts are matched once per configured ``tag = value`` pair (most
    companies share a handful of tag sets), and a frame's rows reach their company's tag text
    through one hash look-up per row (per category for a categorical ``company_id``).
    """

    def __init__(self, companies: pd.DataFrame) -> None:
        self._companies = companies
        self._pairs: dict[tuple[str, str], np.ndarray] = {}

    @cached_property
    def _table(self) -> tuple[pd.Index, np.ndarray, pd.Series]:
        """(company ids, per company the code of its tag text or -1, the distinct tag texts)."""
        companies = self._companies
        if companies.empty or "company_tags" not in companies.columns:
            none = pd.Series([], dtype="string")
            return pd.Index([], dtype="string"), np.zeros(0, dtype=np.int64), none
        frame = pd.DataFrame(
            {"id": text(companies["company_id"]), "tags": text(companies["company_tags"])}
        )
        frame = frame.loc[frame["id"].notna().to_numpy() & frame["tags"].notna().to_numpy()]
        frame = frame.drop_duplicates("id")
        codes, uniques = pd.factorize(frame["tags"], use_na_sentinel=True)
        return (
            pd.Index(frame["id"].to_numpy(), dtype="string"),
            np.asarray(codes, dtype=np.int64),
            pd.Series(np.asarray(uniques, dtype=object), dtype="string"),
        )

    @property
    def empty(self) -> bool:
        """No company of the partition has a tag."""
        return len(self._table[2]) == 0

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """For each row of ``frame`` (by ``company_id``), the code of its company's tag text
        (-1: the company has no tags or is not in the companies frame)."""
        ids, per_company, _ = self._table
        if frame.empty or ids.empty:
            return np.full(len(frame), -1, dtype=np.int64)
        column = frame["company_id"]
        if isinstance(column.dtype, pd.CategoricalDtype):
            at = ids.get_indexer(pd.Index(column.cat.categories.astype("string")))
            position = np.append(at, -1)[column.cat.codes.to_numpy()]
        else:
            position = ids.get_indexer(pd.Index(text(column)))
        with_tags = np.append(per_company, -1)
        return np.asarray(with_tags[position], dtype=np.int64)

    def pair(self, key: str, value: str) -> np.ndarray:
        """A bool per distinct tag text (plus a trailing False for code -1): has ``key`` =
        ``value``."""
        found = self._pairs.get((key, value))
        if found is None:
            found = np.append(has_tag(self._table[2], {key: [value]}), False)
            self._pairs[(key, value)] = found
        return found


_O = TypeVar("_O", bound=RuleOptions)


@dataclass(frozen=True)
class RuleContext:
    """Everything a rule may read. Frames follow :data:`auditor.snapshot.SCHEMAS`.

    For a partition rule the frames hold one company-complete partition; for a fleet rule
    (``provider-incident``) they hold the whole fleet and ``findings`` holds the partition
    rules' findings.
    """

    status: pd.DataFrame
    companies: pd.DataFrame
    errors: pd.DataFrame
    pull_operations: pd.DataFrame
    sync_settings: pd.DataFrame
    options: RuleOptions
    as_of: pd.Timestamp
    findings: pd.DataFrame | None = None
    #: The fleet's monitoring scope (``[monitoring]``): data, like the frames, not config.
    monitoring: Monitoring = field(default_factory=Monitoring)
    #: The partition's company tags, shared by its rules (built from ``companies`` if unset).
    company_tags: CompanyTags | None = None

    @cached_property
    def tags(self) -> CompanyTags:
        """The partition's company tags (see :class:`CompanyTags`), read once."""
        return self.company_tags if self.company_tags is not None else CompanyTags(self.companies)
    #: The webhook events received since the previous audit, of the partition's companies
    #: (``auditor.events.EVENTS_SCHEMA``); None when there is no event log.
    events: pd.DataFrame | None = None

    @cached_property
    def company_codes(self) -> tuple[np.ndarray, pd.Index]:
        """(an integer code per status row, the company id of each code); computed once."""
        codes, uniques = pd.factorize(self.status["company_id"], use_na_sentinel=True)
        return np.asarray(codes), pd.Index(uniques)

    def opts(self, model: type[_O]) -> _O:
        """The rule's options as its own options model."""
        if not isinstance(self.options, model):
            raise TypeError(f"expected {model.__name__}, got {type(self.options).__name__}")
        return self.options

    def setting(self, frame: pd.DataFrame, column: str) -> pd.Series:
        """Sync setting ``column`` for each row of ``frame`` (by ``company_id`` x ``data_type``).

        A company's own setting wins over the client-level one (``company_id`` null); rows with
        neither get NA.
        """
        settings = self.sync_settings
        client = settings.loc[settings["company_id"].isna()]
        client = client.drop_duplicates("data_type", keep="last")
        base = map_values(
            frame["data_type"], dict(zip(client["data_type"], client[column], strict=True))
        )
        overrides = settings.loc[settings["company_id"].notna() & settings[column].notna()]
        if overrides.empty or frame.empty:
            return base
        overrides = overrides.drop_duplicates(["company_id", "data_type"], keep="last")
        hit = isin(frame["company_id"], overrides["company_id"].dropna())
        if not hit.any():
            return base
        keys = frame.loc[hit, ["company_id", "data_type"]].astype("string")
        ov = overrides[["company_id", "data_type", column]].astype(
            {"company_id": "string", "data_type": "string"}
        )
        merged = keys.merge(ov, on=["company_id", "data_type"], how="left")
        values = pd.Series(merged[column].to_numpy(), index=keys.index)
        out = base.astype(object) if base.dtype != values.dtype else base.copy()
        present = values.notna()
        out.loc[present[present].index] = values[present]
        return out


@dataclass(frozen=True)
class Rule:
    """A rule: stable code, readable name, default severity, options, one pure function."""

    code: str
    name: str
    default_severity: Severity
    options_model: type[RuleOptions]
    check: Callable[[RuleContext], pd.DataFrame]
    doc: str
    scope: Scope = "partition"
    #: Fleet rules only: mark the other findings given this rule's findings.
    annotate: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame] | None = None
    #: Names of the rules whose findings explain this rule's: a finding of this rule is left
    #: out when a finding of one of them is about the same company and connection and the same
    #: data type, or has no data type (a connection-level finding covers its whole connection).
    #: See :func:`auditor.engine.apply_coverage`.
    covered_by: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The first line of the rule's documentation."""
        return self.doc.strip().splitlines()[0].strip() if self.doc.strip() else ""


def severity_of(is_error: np.ndarray | pd.Series, index: pd.Index) -> pd.Series:
    """``error``/``warning`` for a bool array, as a categorical (cheap for many rows)."""
    codes = np.asarray(is_error, dtype=bool).astype(np.int8)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=pd.Index(["warning", "error"], dtype="string")),
        index=index,
    )


def tier(value: pd.Series, warn: pd.Series, error: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, is_error) bool arrays for ``value`` strictly above a threshold (NaN: no)."""
    v = value.to_numpy(dtype="float64", na_value=np.nan)
    w = warn.to_numpy(dtype="float64", na_value=np.nan)
    e = error.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        is_error = v > e
        flagged = is_error | (v > w)
    return flagged, is_error


def crossed(is_error: np.ndarray, warn: pd.Series, error: pd.Series) -> pd.Series:
    """The threshold each flagged row crossed (error's where ``is_error``, else warning's)."""
    values = np.where(is_error, error.to_numpy(dtype="float64"), warn.to_numpy(dtype="float64"))
    return pd.Series(values, index=warn.index, dtype="float64")


def _override(frame: pd.DataFrame, column: str, table: Mapping[str, Thresholds],
              attr: str) -> np.ndarray | None:
    """``attr`` of ``table[row's column value]`` per row (NaN where none), or None if unset."""
    mapping = {k: getattr(v, attr) for k, v in table.items()}
    mapping = {k: v for k, v in mapping.items() if v is not None}
    if not mapping or column not in frame.columns:
        return None
    return map_values(frame[column], mapping).to_numpy(dtype="float64", na_value=np.nan)


def _fill(values: np.ndarray, override: np.ndarray) -> np.ndarray:
    """``override`` where it is set, else ``values``."""
    return np.where(np.isnan(override), values, override)


def resolve_thresholds(
    frame: pd.DataFrame,
    options: TieredOptions,
    warn_default: pd.Series | float,
    error_default: pd.Series | float,
    *,
    tags: CompanyTags,
) -> tuple[pd.Series, pd.Series]:
    """Per-row (warn, error) hours, most specific first:

    1. ``tags.<tag>.<value>.data_types.<type>`` (the company has the tag, the row the type)
    2. ``data_types.<type>``
    3. ``tags.<tag>.<value>.platforms.<platform>``
    4. ``platforms.<platform>``
    5. ``tags.<tag>.<value>`` (its own ``warn_after``/``error_after``)
    6. the rule's ``warn_after``/``error_after``
    7. the given defaults.

    The dimension decides first (a data type's threshold says how that data behaves, for
    every customer), and within one dimension a company's tag wins over the fleet's table.
    Each threshold (warn, error) is resolved on its own: a level that sets only
    ``warn_after`` leaves ``error_after`` to the levels below. Where several tags of one
    company match at the same level, the lowest threshold wins (the strictest promise made
    to that customer). Vectorised: one look-up per row and configured table; company tags
    are matched once per partition and tag pair (``tags``, :attr:`RuleContext.tags`).
    """
    tagged = [
        (key, value, table)
        for key, values in options.tags.items()
        for value, table in values.items()
    ]
    tag_codes = tags.codes(frame) if tagged and not tags.empty else None
    has = (
        {(k, v): tags.pair(k, v)[tag_codes] for k, v, _ in tagged}
        if tag_codes is not None
        else {}
    )
    out: list[pd.Series] = []
    n = len(frame)
    for attr, default in (("warn_after", warn_default), ("error_after", error_default)):
        values = (
            default.to_numpy(dtype="float64", na_value=np.nan)
            if isinstance(default, pd.Series)
            else np.full(n, float(default))
        )
        level: float | None = getattr(options, attr)
        if level is not None:
            values = np.full(n, float(level))
        for column in ("", "platform", "data_type"):
            if column:
                fleet = options.platforms if column == "platform" else options.data_types
                override = _override(frame, column, fleet, attr)
                if override is not None:
                    values = _fill(values, override)
            lowest: np.ndarray | None = None
            for key, value, table in tagged:
                mask = has.get((key, value))
                if mask is None or not mask.any():
                    continue
                found: np.ndarray | None
                if not column:
                    hours = getattr(table, attr)
                    found = None if hours is None else np.full(n, float(hours))
                else:
                    sub = table.platforms if column == "platform" else table.data_types
                    found = _override(frame, column, sub, attr)
                if found is None:
                    continue
                found = np.where(mask, found, np.nan)
                lowest = found if lowest is None else np.fmin(lowest, found)
            if lowest is not None:
                values = _fill(values, lowest)
        out.append(pd.Series(values, index=frame.index, dtype="float64"))
    return out[0], out[1]


#: Columns a finding about one status row copies from it.
STATUS_COLUMNS: Final[tuple[str, ...]] = (
    "company_id",
    "company_name",
    "platform",
    "connection_id",
    "data_type",
    "current_status",
    "last_successful_sync",
)


def status_columns(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """The finding columns copied from status rows."""
    return {c: rows[c] for c in STATUS_COLUMNS if c in rows.columns}

