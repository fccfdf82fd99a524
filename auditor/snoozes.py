"""Snoozes: acknowledged findings that should not count for a while.

A snooze file is TOML, kept under version control next to the config (see
``snoozes.example.toml``)::

    [[snoozes]]
    rule = "stale"                 # rule name or code (required)
    company_id = "8a210b68-..."    # any of company_id, data_type, platform, group (at least one)
    data_type = "bankTransactions"
    reason = "Bank feed migration, customer informed"
    owner = "ops@example.com"
    until = 2025-07-31             # last day the snooze applies (inclusive, UTC)

A snooze applies to a finding when the rule and every field it gives match. Matching findings
stay in the findings table with ``snoozed = true`` and ``snooze_reason`` set; reports leave them
out of counts, exit codes and email. A snooze whose ``until`` is before the audit's date has
expired: it no longer applies and is listed in :attr:`AuditResult.expired_snoozes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from auditor.config import ConfigError, format_validation_error, parse_toml
from auditor.result import EXPIRED_SNOOZE_COLUMNS
from auditor.rules import RULES, get_rule

__all__ = ["MATCH_FIELDS", "Snooze", "SnoozeFile", "apply_snoozes", "load_snoozes", "split_expired"]

#: Finding columns a snooze may match on (besides ``rule``).
MATCH_FIELDS: Final[tuple[str, ...]] = ("company_id", "data_type", "platform", "group")


class Snooze(BaseModel):
    """One snooze: which findings, why, who, until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    company_id: str | None = None
    data_type: str | None = None
    platform: str | None = None
    group: str | None = None
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    until: date

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        try:
            return get_rule(value).name
        except KeyError:
            known = ", ".join(r.name for r in RULES)
            raise ValueError(f"unknown rule {value!r}; known rules: {known}") from None

    @field_validator("until", mode="before")
    @classmethod
    def _date_only(cls, value: object) -> object:
        return value.date() if isinstance(value, datetime) else value

    @model_validator(mode="after")
    def _matches_something(self) -> Snooze:
        if all(getattr(self, f) is None for f in MATCH_FIELDS):
            raise ValueError(
                "a snooze must give at least one of company_id, data_type, platform, group "
                "(to silence a whole rule, disable it in the config)"
            )
        return self

    def active_on(self, day: date) -> bool:
        """Whether the snooze still applies on ``day`` (``until`` is inclusive)."""
        return day <= self.until


class SnoozeFile(BaseModel):
    """A snooze file: ``[[snoozes]]`` entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snoozes: list[Snooze] = Field(default_factory=list)


def load_snoozes(path: str | Path) -> list[Snooze]:
    """Read and validate a snooze file; problems raise :class:`ConfigError` with lines."""
    path = Path(path)
    data, text = parse_toml(path)
    try:
        return list(SnoozeFile.model_validate(data).snoozes)
    except ValidationError as exc:
        problems = format_validation_error(exc, text, str(path))
        raise ConfigError(
            f"invalid snoozes in {path}:\n  " + "\n  ".join(problems), problems
        ) from None


def split_expired(
    snoozes: Iterable[Snooze], as_of: datetime
) -> tuple[list[Snooze], pd.DataFrame]:
    """(snoozes active at ``as_of``, expired ones as a frame of EXPIRED_SNOOZE_COLUMNS)."""
    day = pd.Timestamp(as_of).tz_convert("UTC").date() if pd.Timestamp(as_of).tzinfo else (
        pd.Timestamp(as_of).date()
    )
    active: list[Snooze] = []
    expired: list[Snooze] = []
    for snooze in snoozes:
        (active if snooze.active_on(day) else expired).append(snooze)
    frame = pd.DataFrame(
        [s.model_dump() for s in expired], columns=list(EXPIRED_SNOOZE_COLUMNS)
    )
    return active, frame


def apply_snoozes(findings: pd.DataFrame, snoozes: Sequence[Snooze]) -> pd.DataFrame:
    """``findings`` with ``snoozed``/``snooze_reason`` set by the first matching snooze."""
    out = findings.copy()
    snoozed = np.zeros(len(out), dtype=bool)
    reason = pd.Series(pd.NA, index=out.index, dtype="string")
    rules = out["rule"].astype("string")
    for snooze in snoozes:
        mask = (rules == snooze.rule).fillna(False).to_numpy(dtype=bool)
        for name in MATCH_FIELDS:
            value = getattr(snooze, name)
            if value is not None:
                mask &= (out[name].astype("string") == value).fillna(False).to_numpy(dtype=bool)
        new = mask & ~snoozed
        if new.any():
            reason[new] = f"{snooze.reason} ({snooze.owner}, until {snooze.until.isoformat()})"
            snoozed |= new
    out["snoozed"] = snoozed
    out["snooze_reason"] = reason
    return out
