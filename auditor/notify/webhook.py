"""A generic JSON webhook: the notification as data, for a receiver of your own.

The body's shape is pinned by ``schemas/notification.schema.json`` (JSON Schema 2020-12,
``schema_version`` 1; fields are only added within a version). Texts are data, not markup: a
receiver that renders them must escape them for its own medium.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Final

from ._content import Notification

__all__ = ["SCHEMA_VERSION", "webhook_payload"]

SCHEMA_VERSION: Final = 1


def webhook_payload(note: Notification) -> dict[str, Any]:
    """The JSON body (see ``schemas/notification.schema.json``)."""
    c = note.change
    shown = len(note.entries)
    return {
        "schema": "codat-freshness-auditor/notification",
        "schema_version": SCHEMA_VERSION,
        "title": note.title,
        "subject": note.subject,
        "day": note.day,
        "as_of": note.as_of.isoformat().replace("+00:00", "Z"),
        "snapshot_id": note.snapshot_id,
        "scope": note.scope,
        "incomplete": note.incomplete,
        "notices": list(note.notices),
        "counts": {
            "new_errors": c.new_errors,
            "new_warnings": c.new_warnings,
            "regressed": c.regressed,
            "resolved": c.resolved,
            "open_errors": note.open_errors,
            "open_warnings": note.open_warnings,
            "companies_audited": note.companies_audited,
        },
        "entries": [{**asdict(e), "data_types": list(e.data_types)} for e in note.entries],
        "entries_total": note.entries_total,
        "entries_omitted": note.more(shown),
        "report_url": note.report_url,
    }
