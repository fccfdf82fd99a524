"""report.html: self-contained, escaped, leads with changes, bounded in size, times in the
display timezone with UTC on hover, every rule link lands in the appendix."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from auditor.report import FleetInfo, build_view, get_environment, templates_dir, write_reports
from auditor.result import AuditResult
from auditor.testing.synthetic import (
    HOSTILE_NAMES,
    synthetic_history,
    synthetic_result,
    tiny_result,
)

AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


class _Collect(HTMLParser):
    """Tags, attributes and ids of a document, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, _Collect]:
    out = tmp_path_factory.mktemp("tiny")
    paths = write_reports(
        tiny_result(as_of=AS_OF),
        out,
        display_tz="America/New_York",
        fleet=FleetInfo(companies_audited=40),
    )
    html = paths.report_html.read_text(encoding="utf-8")
    return html, _parse(html)


def test_templates_ship_with_the_package_or_checkout() -> None:
    assert (templates_dir() / "report.html").is_file()
    env = get_environment()
    assert env is get_environment()  # built once
    assert env.autoescape is not False


def test_hostile_company_names_are_escaped(tiny: tuple[str, _Collect]) -> None:
    html, doc = tiny
    assert doc.scripts == 1  # ours only
    assert not any(tag == "img" for tag, _ in doc.tags)
    assert not any(tag == "svg" and "onload" in a for tag, a in doc.tags)
    assert not any(k.startswith("on") for _, a in doc.tags for k in a)
    text = "".join(doc.text)
    for name in HOSTILE_NAMES:
        assert name.strip() in text or name.strip() in html.replace("&#34;", '"')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_self_contained_no_network(tiny: tuple[str, _Collect]) -> None:
    html, doc = tiny
    for tag, attrs in doc.tags:
        for key in ("src", "href", "action", "srcset", "poster"):
            value = attrs.get(key)
            if value:
                assert not re.match(r"^\s*(https?:)?//", value), (tag, key, value)
    assert "@import" not in html
    assert "url(" not in html
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html


def test_script_is_allowed_by_its_hash_only(tiny: tuple[str, _Collect]) -> None:
    import base64
    import hashlib

    html, _ = tiny
    script = re.search(r"<script>(.*?)</script>", html, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html
    assert "unsafe-inline'; img" not in html.split("script-src")[1][:80]


def test_leads_with_changes_then_totals_then_table(tiny: tuple[str, _Collect]) -> None:
    html, _ = tiny
    order = [
        html.index(s)
        for s in (
            'id="changes-h"',
            'id="rules-h"',
            'id="platforms-h"',
            'id="types-h"',
            'id="findings-h"',
            'id="appendix-h"',
        )
    ]
    assert order == sorted(order)
    view = build_view(tiny_result(as_of=AS_OF))
    assert view.change.new == 4
    assert view.change.regressed == 3
    assert view.change.resolved == 1
    assert view.snoozed == 1
    assert view.rows_total == len(HOSTILE_NAMES)  # snoozed row left out


def test_times_in_display_tz_with_utc_title(tiny: tuple[str, _Collect]) -> None:
    html, _ = tiny
    # as_of 02:00 UTC is 21:00 EST the day before
    assert "2026-11-22 21:00 EST" in html
    assert 'title="2026-11-23 02:00 UTC"' in html
    assert 'datetime="2026-11-23T02:00:00Z"' in html


def test_every_rule_link_has_an_appendix_section(tiny: tuple[str, _Collect]) -> None:
    _, doc = tiny
    ids = {a.get("id") for _, a in doc.tags}
    links = {
        href for t, a in doc.tags if t == "a" and (href := a.get("href") or "").startswith("#")
    }
    assert links
    assert all(link[1:] in ids for link in links)
    assert "rule-stale" in ids
    assert "rule-cross-type-skew" in ids


def test_rules_parameter_feeds_the_appendix(tmp_path: Path) -> None:
    class Doc:
        name = "my-rule"
        code = "ZZ999"
        default_severity = "error"
        summary = "Flags made-up things."
        doc = "Flags made-up things.\n\nWhy it matters\n    Because ``x`` <b>bold</b>.\n"

    paths = write_reports(tiny_result(as_of=AS_OF), tmp_path, rules=[Doc()])
    html = paths.report_html.read_text()
    assert 'id="rule-my-rule"' in html
    assert "ZZ999" in html
    assert "<code>x</code>" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'id="rule-stale"' in html  # rules seen in findings still get an anchor


def test_large_fleet_shows_worst_rows_and_links_csv(tmp_path: Path) -> None:
    result = synthetic_result(3000, as_of=AS_OF, seed=3)
    paths = write_reports(result, tmp_path, max_rows=100)
    html = paths.report_html.read_text()
    assert html.count("<tr data-rule=") == 100
    assert 'href="findings.csv"' in html
    assert "most urgent of" in html
    view = build_view(result, max_rows=100)
    severities = [r.severity for r in view.rows]
    assert severities == sorted(severities, key=lambda s: s != "error")
    errors = [r for r in view.rows if r.severity == "error"]
    fresh = [r.state in {"new", "regressed"} for r in errors]
    assert fresh == sorted(fresh, reverse=True)


def test_trend_chart_uses_last_snapshot_per_night_and_tonight(tmp_path: Path) -> None:
    result = tiny_result(as_of=AS_OF)
    history = pd.DataFrame(
        {
            "snapshot_date": [date(2026, 11, 21)] * 4 + [date(2026, 9, 1)] * 2,
            "snapshot_id": ["a", "a", "b", "b", "old", "old"],
            "severity": ["error", "warning"] * 3,
            "count": [100, 100, 7, 3, 1, 1],
        }
    )
    view = build_view(result, history=history)
    bars = {b.day: (b.error, b.warning) for b in view.trend.bars}
    assert bars[date(2026, 11, 21)] == (7, 3)  # the later snapshot of that night
    assert date(2026, 9, 1) not in bars  # outside the 30 nights
    assert bars[date(2026, 11, 23)] == (5, 5)  # tonight, from the result
    html = write_reports(result, tmp_path, history=history).report_html.read_text()
    assert "<svg" in html
    assert 'class="b-error"' in html


def test_empty_history_and_empty_findings_render(tmp_path: Path) -> None:
    paths = write_reports(AuditResult(snapshot_id="s0", as_of=AS_OF), tmp_path, history=None)
    html = paths.report_html.read_text()
    assert "Nothing to report" in html
    assert "No findings match" in html  # the filter message exists, hidden


def test_unknown_timezone_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown display timezone"):
        write_reports(tiny_result(as_of=AS_OF), tmp_path, display_tz="Mars/Olympus")


def test_report_for_30k_companies_stays_small(tmp_path: Path) -> None:
    result = synthetic_result(30_000, as_of=AS_OF, seed=5)
    history = synthetic_history(result)
    paths = write_reports(result, tmp_path, history=history)
    assert paths.report_html.stat().st_size < 5_000_000
    assert len(pd.read_csv(paths.findings_csv)) == len(result.findings)


def test_findings_rows_carry_sort_keys_and_short_ids(tmp_path: Path) -> None:
    result = synthetic_result(40, as_of=AS_OF, seed=2, realistic=True)
    html = write_reports(result, tmp_path, display_tz="Europe/London").report_html.read_text()
    doc = _parse(html)
    rows = [a for t, a in doc.tags if t == "tr" and "data-rule" in a]
    view = build_view(result)
    assert len(rows) == len(view.rows)
    for attrs, row in zip(rows, view.rows, strict=True):
        assert attrs["data-id"] == row.company_id
        assert attrs["data-company"] == row.company_name
        assert attrs["data-type"] == (row.group or row.data_type)
        assert attrs["data-status"] == (row.current_status or "")
        assert attrs["data-age"] == (str(row.age_hours) if row.age_hours is not None else "")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attrs["data-first"] or "")
    # the id is shortened on screen, whole in the hover title
    first = view.rows[0].company_id
    assert f'<span class="id" title="{first}">{first[:8]}…</span>' in html
    # every sort control names a row attribute
    keys = {a["data-key"] for t, a in doc.tags if t == "span" and "data-key" in a}
    assert keys == {
        "severity", "state", "company", "platform", "type", "rule", "status", "sync", "age",
        "first",
    }  # fmt: skip
    assert all(f"data-{k}" in rows[0] for k in keys)
    # the remedy sits under the message, age and threshold under the last sync
    assert '<span class="remedy">→ Queue a sync of ' in html
    assert "threshold " in html
