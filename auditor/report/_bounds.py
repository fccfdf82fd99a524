"""Every text field Codat gives us is bounded before it is shown.

A company name, platform, id or message can be any size (one 200 KB platform name grew
report.html to 1.5 MB and pushed every finding out of the digest). :func:`bounded` cuts each
text column of the findings, the resolved incidents and the expired snoozes to its limit in
:data:`auditor.safe_text.DISPLAY_LIMITS` once (``…`` last; sentences such as messages and
remedies ``…`` in the middle, so that their key clause, last, is never cut off), where a
result enters the report, the CSVs and the digest. The store keeps the full values.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

import pandas as pd

from auditor.result import AuditResult
from auditor.safe_text import DISPLAY_LIMITS, clip_middle_series, clip_series

__all__ = ["COLUMN_LIMITS", "MIDDLE_CUT", "bounded"]

#: Characters shown of each text column.
COLUMN_LIMITS: Final[dict[str, int]] = {
    "company_name": DISPLAY_LIMITS["company_name"],
    "company_id": DISPLAY_LIMITS["id"],
    "connection_id": DISPLAY_LIMITS["id"],
    "platform": DISPLAY_LIMITS["platform"],
    "data_type": DISPLAY_LIMITS["data_type"],
    "group": DISPLAY_LIMITS["data_type"],
    "current_status": DISPLAY_LIMITS["status"],
    "message": DISPLAY_LIMITS["message"],
    "remedy": DISPLAY_LIMITS["remedy"],
    "snooze_reason": DISPLAY_LIMITS["error"],
    "reason": DISPLAY_LIMITS["error"],
    "owner": DISPLAY_LIMITS["company_name"],
    "incident_key": 4 * DISPLAY_LIMITS["id"],
    "provider_incident": 4 * DISPLAY_LIMITS["id"],
}
#: Sentences cut in the middle (:func:`auditor.safe_text.clip_middle`): their oversized part
#: is quoted text (a platform name, a Codat error), their key clause comes last.
MIDDLE_CUT: Final[frozenset[str]] = frozenset({"message", "remedy", "snooze_reason", "reason"})


def _bounded_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame
    for column, limit in COLUMN_LIMITS.items():
        if column not in frame.columns or frame.empty:
            continue
        values = frame[column]
        lengths = values.astype("string").str.len()
        if not (lengths > limit).any():
            continue
        if out is frame:
            out = frame.copy()
        cut = clip_middle_series if column in MIDDLE_CUT else clip_series
        clipped = cut(values, limit)
        out[column] = (
            clipped.astype("category")
            if isinstance(values.dtype, pd.CategoricalDtype)
            else clipped
        )
    return out


def bounded(result: AuditResult) -> AuditResult:
    """``result`` with every text column cut to its display limit (the same object when
    nothing is too long)."""
    findings = _bounded_frame(result.findings)
    resolved = _bounded_frame(result.resolved)
    expired = _bounded_frame(result.expired_snoozes)
    if findings is result.findings and resolved is result.resolved and (
        expired is result.expired_snoozes
    ):
        return result
    return replace(result, findings=findings, resolved=resolved, expired_snoozes=expired)
