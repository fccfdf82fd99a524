"""The findings table: one tidy DataFrame with a fixed, documented column order.

Every rule returns rows with (a subset of) these columns; :func:`conform_findings` gives them
the full column order and dtypes. Reports, CSV exports, the ledger and exit codes all read
this one table.

Columns, in order
-----------------
``rule``                  the rule's name (``stale``, ``cross-type-skew``, ...)
``severity``              ``warning`` or ``error``
``company_id``            Codat company id
``company_name``          company name as Codat has it
``platform``              platform name of the connection concerned
``connection_id``         connection concerned (null when not one connection)
``data_type``             data type concerned (for a group finding: its oldest member)
``group``                 consistency group (``cross-type-skew``), else null
``current_status``        the data type's ``currentStatus``
``last_successful_sync``  UTC timestamp
``age_hours``             hours from ``last_successful_sync`` (or the relevant time) to as_of
``threshold_hours``       the threshold that was crossed, in hours
``message``               what is wrong, in one sentence
``remedy``                what ops should do about it
``code``                  the rule's stable code (pylint style, e.g. ``FA101``)
``incident_key``          stable key across nights: rule + company + connection + type/group
``state``                 ``new`` / ``ongoing`` / ``regressed`` (set by the ledger)
``first_seen``            UTC date-time the incident was first seen
``nights_open``           nights the incident has been open (1 = new tonight)
``carried_over``          true when the company could not be read tonight: the row is the
                          previous audit's, kept open (not re-checked, never "resolved")
``snoozed``               true when a snooze matches; snoozed rows are left out of counts
``snooze_reason``         the matching snooze's reason
``provider_incident``     key of the provider incident this row belongs to, if any
``as_of``                 the audit's "now"
"""

from __future__ import annotations

from typing import Final, Literal

import pandas as pd

from auditor.snapshot import ColumnKind, conform

__all__ = [
    "FINDINGS_COLUMNS",
    "FINDINGS_SCHEMA",
    "SEVERITIES",
    "Severity",
    "conform_findings",
    "empty_findings",
]

Severity = Literal["warning", "error"]
SEVERITIES: Final[tuple[Severity, ...]] = ("warning", "error")

FINDINGS_SCHEMA: Final[dict[str, ColumnKind]] = {
    "rule": "category",
    "severity": "category",
    "company_id": "str",
    "company_name": "str",
    "platform": "category",
    "connection_id": "str",
    "data_type": "category",
    "group": "category",
    "current_status": "category",
    "last_successful_sync": "timestamp",
    "age_hours": "float",
    "threshold_hours": "float",
    "message": "str",
    "remedy": "str",
    "code": "category",
    "incident_key": "str",
    "state": "category",
    "first_seen": "timestamp",
    "nights_open": "int",
    "carried_over": "bool",
    "snoozed": "bool",
    "snooze_reason": "str",
    "provider_incident": "str",
    "as_of": "timestamp",
}
FINDINGS_COLUMNS: Final[tuple[str, ...]] = tuple(FINDINGS_SCHEMA)


def conform_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly the findings columns, in order, with their dtypes."""
    out = conform(frame, FINDINGS_SCHEMA)
    return out[list(FINDINGS_COLUMNS)]


def empty_findings() -> pd.DataFrame:
    """An empty findings table."""
    return conform_findings(pd.DataFrame({c: [] for c in FINDINGS_COLUMNS}))
