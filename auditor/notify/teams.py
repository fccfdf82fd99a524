"""Microsoft Teams: an Adaptive Card, posted to a Workflows (Power Automate) webhook or a
classic incoming webhook.

The body is ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}``, the shape both
accept. The card is version :data:`CARD_VERSION` and the whole body stays under
:data:`MAX_PAYLOAD_BYTES` (Teams refuses messages above about 28 KB, docs/notifications.md
cites it): entries that do not fit are counted, "and N more — see the report".

Text from Codat is inert: TextBlocks read a subset of Markdown, so :func:`escape` puts a
backslash before every character Markdown gives a meaning (``[click](https://evil)`` stays
text), breaks ``://`` so a name is never turned into a link, and ``<at>`` cannot mention
anyone (a mention needs an ``msteams.entities`` entry, which the card never has).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from ._content import Entry, Notification, nothing_open

__all__ = ["CARD_CONTENT_TYPE", "CARD_VERSION", "MAX_PAYLOAD_BYTES", "escape", "teams_payload"]

CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"
CARD_VERSION: Final = "1.4"
#: Bytes of the JSON body at most (Teams: "about 28 KB"; a margin for what Teams adds).
MAX_PAYLOAD_BYTES: Final = 27_000
#: Characters with a Markdown meaning anywhere in a line (emphasis, code, links, HTML).
_MARKDOWN: Final = re.compile(r"([\\`*_\[\]()<>~|])")
#: What makes a list, a heading or a quote of a line's start.
_LINE_START: Final = re.compile(r"^(\s*)([-+#]|\d+(?=[.)]))")


def _escape_start(match: re.Match[str]) -> str:
    lead, marker = match.group(1), match.group(2)
    if marker.isdigit():  # "1." / "1)": escape the punctuation, a digit takes no backslash
        return f"{lead}{marker}\\"
    return f"{lead}\\{marker}"


def escape(text: str) -> str:
    """``text`` safe in a TextBlock (one line): the characters Markdown gives a meaning
    backslash-escaped (a list, heading or quote marker only at the start), ``://`` and
    ``www.`` broken by a word joiner (U+2060) so that no link is made of them."""
    out = _MARKDOWN.sub(r"\\\1", text)
    out = _LINE_START.sub(_escape_start, out, count=1)
    return out.replace(":/", ":\u2060/").replace("www.", "www\u2060.")


def _text(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def _entry(entry: Entry) -> dict[str, Any]:
    state = {"new": "new", "regressed": "regressed"}.get(
        entry.state, f"open {entry.nights_open} nights"
    )
    types = ", ".join(entry.data_types[:12])
    if len(entry.data_types) > 12:
        types += f" and {len(entry.data_types) - 12} more"
    name = entry.company_name or entry.company_id or "fleet"
    head = " · ".join(x for x in (name, entry.platform, entry.severity, state) if x)
    items = [
        _text(escape(head), weight="Bolder",
              color="Attention" if entry.severity == "error" else "Warning"),
        _text(escape(f"{entry.rule} ({entry.code}): {types or '—'}"
                     + (f" — {entry.findings} findings" if entry.findings > 1 else "")),
              spacing="None"),
        _text(escape(entry.message), isSubtle=True, spacing="None"),
    ]  # fmt: skip
    if entry.remedy:
        items.append(_text(escape(f"Fix: {entry.remedy}"), spacing="None"))
    return {"type": "Container", "separator": True, "items": items}


def _card(note: Notification, entries: list[dict[str, Any]], shown: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text(escape(f"{note.title} — {note.day}"), size="Large", weight="Bolder"),
        _text(escape(note.subject), weight="Bolder", spacing="Small"),
    ]
    if note.incomplete or note.notices:
        label = "INCOMPLETE" if note.incomplete else "Notice"
        body.append(
            {
                "type": "Container",
                "style": "attention",
                "items": [_text(label, weight="Bolder")]
                + [_text(escape(n), spacing="Small") for n in note.notices],
            }
        )
    facts = note.headline()
    body.append({"type": "FactSet", "facts": [{"title": k, "value": f"{v:,}"} for k, v in facts]})
    context = f"Snapshot {note.snapshot_id}"
    if note.scope:
        context = f"Scope: {note.scope} · {context}"
    body.append(_text(escape(context), isSubtle=True, size="Small", spacing="Small"))
    body += entries or [_text(nothing_open(note), separator=True)]
    more = note.more(shown)
    if more:
        where = "see the report" if note.report_url else "see report.html and findings.csv"
        body.append(_text(f"and {more:,} more — {where}", isSubtle=True, separator=True))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if note.report_url:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open the report", "url": note.report_url}
        ]
    return card


def teams_payload(note: Notification) -> dict[str, Any]:
    """The webhook's JSON body (a message with one Adaptive Card attachment)."""
    entries = [{**_entry(e), "id": f"entry-{i}"} for i, e in enumerate(note.entries)]
    while True:
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": CARD_CONTENT_TYPE,
                    "contentUrl": None,
                    "content": _card(note, entries, len(entries)),
                }
            ],
        }
        if not entries or len(json.dumps(payload).encode()) <= MAX_PAYLOAD_BYTES:
            return payload
        # Drop about a tenth at a time (at least one): a few passes even for a full card.
        entries = entries[: len(entries) - max(1, len(entries) // 10)]
