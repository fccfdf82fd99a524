"""The report's wording: real plurals ("1 warning", never "finding(s)"), the audit time once in
the footer, long sentences cut in the middle so that their key clause (last) survives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.engine import _explains
from auditor.findings import conform_findings
from auditor.report import FleetInfo, build_view, render_report, write_reports
from auditor.report._bounds import bounded
from auditor.result import AuditResult
from auditor.safe_text import ELLIPSIS, clip_middle, clip_middle_series
from auditor.testing.synthetic import tiny_result

ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
#: Where the report's words are written: its templates and the Python that words the view
#: and the messages shown in it.
SOURCES = (
    sorted((ROOT / "templates").glob("report*.html"))
    + sorted((ROOT / "templates" / "report").glob("*.html"))
    + sorted((ROOT / "auditor" / "report").glob("_[tvb]*.py"))
    + [ROOT / "auditor" / "engine.py", ROOT / "auditor" / "freshness.py"]
    + sorted((ROOT / "auditor" / "rules").glob("*.py"))
)


def test_no_template_or_view_writes_an_s_in_brackets() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SOURCES
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"[a-z]\(s\)", re.sub(r"\b(str|http)\(s\)", "", line))
    ]
    assert found == []


def _one_each() -> AuditResult:
    rows = tiny_result(as_of=AS_OF).findings.head(2).copy()
    rows["severity"] = ["error", "warning"]
    rows["state"] = ["new", "new"]
    rows["snoozed"] = False
    resolved = rows.head(1).assign(state="resolved")
    return AuditResult(snapshot_id="20261123T020000Z", as_of=AS_OF,
                       findings=conform_findings(rows), resolved=conform_findings(resolved))


def test_one_of_each_reads_in_the_singular() -> None:
    html = render_report(build_view(_one_each(), fleet=FleetInfo(companies_audited=1)))
    html = html[: html.index("<script>")]
    text = re.sub(r"<[^>]+>", "", html)
    text = re.sub(r"\s+", " ", text)
    assert "1 error · 1 warning" in text
    assert "2 open findings" in text
    assert "1 company audited" in text
    assert "1 resolved incident" in text
    for wrong in ("1 errors", "1 warnings", "1 findings", "1 companies", "(s)"):
        assert wrong not in text, wrong


def test_the_footer_says_the_time_once() -> None:
    html = render_report(build_view(_one_each()))
    footer = html[html.index('<footer'):html.index('</footer>')]
    assert footer.count("02:00") + footer.count("020000") == 1
    later = AuditResult(snapshot_id="20261123T020000Z", as_of=AS_OF + timedelta(hours=3))
    footer = render_report(build_view(later))
    footer = footer[footer.index('<footer'):footer.index('</footer>')]
    assert "audit as of 2026-11-23 05:00 UTC" in footer  # differs from the snapshot: said


def test_coverage_counts_are_worded_in_the_singular_and_plural() -> None:
    names = np.array(["needs-relink", "stale", "needs-relink", "stale", "stale"], dtype=object)
    target = np.array([1, 3, 4])
    coverer = np.array([0, 2, 2])
    out = _explains(names, ["stale"], target, coverer, np.zeros(5, dtype=bool), 5)
    assert out[0] == " This also explains 1 stale finding, not listed separately."
    assert out[2] == " This also explains 2 stale findings, not listed separately."


def test_a_long_sentence_keeps_its_key_clause() -> None:
    platform = "P" * 5000
    message = f"The connection to {platform} is Deauthorized; 3 data types in AuthError."
    cut = clip_middle(message, 1000)
    assert cut is not None
    assert len(cut) == 1000
    assert cut.startswith("The connection to PPP")
    assert cut.endswith("is Deauthorized; 3 data types in AuthError.")
    assert ELLIPSIS in cut
    series = clip_middle_series(pd.Series([message, None, "short"], dtype="string"), 1000)
    assert series.iloc[0] == cut
    assert series.isna().iloc[1]
    assert series.iloc[2] == "short"
    # where the report takes its text: the findings' messages are cut in the middle
    rows = tiny_result(as_of=AS_OF).findings.head(1).assign(message=message)
    shown = bounded(AuditResult(snapshot_id="s", as_of=AS_OF, findings=conform_findings(rows)))
    assert str(shown.findings["message"].iloc[0]) == cut


def test_the_report_shows_the_key_clause_of_a_long_message(tmp_path: Path) -> None:
    rows = tiny_result(as_of=AS_OF).findings.head(1).assign(
        message="Codat says: " + "x" * 3000 + ". This also explains 4 stale findings."
    )
    result = AuditResult(snapshot_id="s", as_of=AS_OF, findings=conform_findings(rows))
    html = write_reports(result, tmp_path).report_html.read_text(encoding="utf-8")
    assert "This also explains 4 stale findings." in html
