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

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Final, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from auditor.findings import Severity
from auditor.vectors import isin, map_values

__all__ = [
    "HOUR",
    "STATUS_COLUMNS",
    "Hours",
    "Monitoring",
    "Rule",
    "RuleContext",
    "RuleOptions",
    "Scope",
    "Thresholds",
    "TieredOptions",
    "crossed",
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


class TieredOptions(RuleOptions):
    """Options of a rule with a warning and an error threshold.

    ``warn_after``/``error_after`` apply to every row; ``platforms.<name>`` overrides them for a
    platform, ``data_types.<name>`` for a data type (the data type wins over the platform).
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


def resolve_thresholds(
    frame: pd.DataFrame,
    options: TieredOptions,
    warn_default: pd.Series | float,
    error_default: pd.Series | float,
) -> tuple[pd.Series, pd.Series]:
    """Per-row (warn, error) hours: data type > platform > rule-level > the given defaults."""
    out: list[pd.Series] = []
    for attr, default in (("warn_after", warn_default), ("error_after", error_default)):
        series = (
            default.astype("float64")
            if isinstance(default, pd.Series)
            else pd.Series(float(default), index=frame.index)
        )
        level: float | None = getattr(options, attr)
        if level is not None:
            series = pd.Series(level, index=frame.index, dtype="float64")
        for column, table in (("platform", options.platforms), ("data_type", options.data_types)):
            mapping = {k: getattr(v, attr) for k, v in table.items()}
            mapping = {k: v for k, v in mapping.items() if v is not None}
            if mapping and column in frame.columns:
                override = map_values(frame[column], mapping).astype("float64")
                series = override.fillna(series)
        out.append(series)
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

