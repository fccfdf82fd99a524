"""Slack: an incoming-webhook message laid out with Block Kit.

Limits kept (docs/notifications.md cites them): at most :data:`MAX_BLOCKS` blocks, a section's
text at most :data:`MAX_SECTION_CHARS` characters, a header's :data:`MAX_HEADER_CHARS`, a
section field's :data:`MAX_FIELD_CHARS`, and all the text of the message at most
:data:`TEXT_BUDGET` characters, well under the documented 40,000 (Slack has refused messages of
about 13,000 characters of blocks with ``msg_blocks_too_long``). Entries that do not fit are
counted in a last line: "and N more — see the report".

Text from Codat is inert: ``&``, ``<`` and ``>`` are escaped (:func:`escape`, the only three
characters Slack's formatting guide says to encode), so ``<!channel>``, ``<@U123>`` or
``<https://evil|click>`` are shown as typed and never ping or link; every text object is
``verbatim``, so Slack does not turn bare URLs, ``@here`` or ``#channel`` into links either.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ._content import Entry, Notification, nothing_open

__all__ = [
    "MAX_BLOCKS",
    "MAX_FIELD_CHARS",
    "MAX_HEADER_CHARS",
    "MAX_SECTION_CHARS",
    "TEXT_BUDGET",
    "escape",
    "slack_payload",
    "text_length",
]

MAX_BLOCKS: Final = 50
MAX_SECTION_CHARS: Final = 3000
MAX_FIELD_CHARS: Final = 2000
MAX_HEADER_CHARS: Final = 150
#: Characters of text in all blocks together (documented limit 40,000; see the module doc).
TEXT_BUDGET: Final = 12_000


def escape(text: str) -> str:
    """``text`` safe in Slack mrkdwn: ``&`` ``<`` ``>`` as entities (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters without splitting an entity such as ``&amp;``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _mrkdwn(text: str, limit: int = MAX_SECTION_CHARS) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, limit), "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _entry_text(entry: Entry) -> str:
    mark = ":red_circle:" if entry.severity == "error" else ":large_yellow_circle:"
    state = {"new": "new", "regressed": "regressed"}.get(entry.state, f"open {entry.nights_open}n")
    types = ", ".join(entry.data_types[:12])
    if len(entry.data_types) > 12:
        types += f" and {len(entry.data_types) - 12} more"
    lines = [
        f"{mark} *{escape(entry.company_name or entry.company_id or 'fleet')}*"
        + (f" · {escape(entry.platform)}" if entry.platform else "")
        + f" · {entry.severity} · {state}",
        f"*{escape(entry.rule)}* ({escape(entry.code)}): {escape(types) or '—'}"
        + (f" — {_plural(entry.findings, 'finding')}" if entry.findings > 1 else ""),
        escape(entry.message),
    ]
    if entry.remedy:
        lines.append(f"_Fix:_ {escape(entry.remedy)}")
    return "\n".join(lines)


def text_length(payload: dict[str, Any]) -> int:
    """Characters of text in a payload's blocks and fallback ``text`` (what Slack counts)."""
    total = len(payload.get("text", ""))

    def walk(node: object) -> None:
        nonlocal total
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                total += len(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload.get("blocks", []))
    return total


def _fixed_blocks(note: Notification) -> list[dict[str, Any]]:
    header = _cut(f"{note.title} — {note.day}", MAX_HEADER_CHARS)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}}
    ]
    if note.incomplete or note.notices:
        label = "*INCOMPLETE*" if note.incomplete else "*Notice*"
        body = "\n".join(f"• {escape(n)}" for n in note.notices)
        blocks.append(_section(f":warning: {label}\n{body}"))
    fields = note.headline()
    blocks.append(
        {
            "type": "section",
            "text": _mrkdwn(f"*{escape(note.subject)}*"),
            "fields": [_mrkdwn(f"*{k}*\n{v:,}", MAX_FIELD_CHARS) for k, v in fields],
        }
    )
    context = f"Snapshot {escape(note.snapshot_id)}"
    if note.scope:
        context = f"Scope: {escape(note.scope)} · {context}"
    blocks.append({"type": "context", "elements": [_mrkdwn(context)]})
    return blocks


def _tail_blocks(note: Notification, shown: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    more = note.more(shown)
    if more:
        where = "see the report" if note.report_url else "see report.html and findings.csv"
        out.append(
            {"type": "context", "elements": [_mrkdwn(f"and {more:,} more — {where}")]}
        )
    if note.report_url:
        out.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the report", "emoji": False},
                        "url": note.report_url[:3000],
                        "action_id": "open-report",
                    }
                ],
            }
        )
    return out


def slack_payload(note: Notification) -> dict[str, Any]:
    """The webhook's JSON body: ``text`` (the notification's fallback) and ``blocks``."""
    fixed = _fixed_blocks(note)
    entries = [
        {**_section(_entry_text(e)), "block_id": f"entry-{i}"} for i, e in enumerate(note.entries)
    ]
    room = MAX_BLOCKS - len(fixed) - 1 - 2  # a divider; "and N more" and the button
    entries = entries[: max(room, 0)]
    fallback = _cut(escape(f"{note.title}: {note.subject}"), 300)
    if not note.entries:
        fixed.append(_section(nothing_open(note)))
    while True:
        blocks = [*fixed, {"type": "divider"}, *entries, *_tail_blocks(note, len(entries))]
        payload = {"text": fallback, "blocks": blocks, "unfurl_links": False}
        if text_length(payload) <= TEXT_BUDGET or not entries:
            return payload
        entries = entries[:-1]


def payload_bytes(payload: dict[str, Any]) -> int:
    """Bytes of the JSON body as sent."""
    return len(json.dumps(payload, ensure_ascii=False).encode())
