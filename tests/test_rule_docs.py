"""Rule summaries are shown as plain text (CLI table, report): no reStructuredText markup."""

from __future__ import annotations

from auditor.rules import RULES


def test_summaries_are_plain_one_line_sentences() -> None:
    for rule in RULES:
        assert rule.summary, rule.name
        assert "``" not in rule.summary, rule.name
        assert "\n" not in rule.summary, rule.name
        assert rule.summary.endswith("."), rule.name
