""""Start here", refresh outcomes, relinks.csv and refreshes.csv in the report and the digest."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from auditor.actions import build_actions
from auditor.email_settings import EmailSettings, SmtpSettings
from auditor.engine import apply_coverage
from auditor.findings import conform_findings
from auditor.remediation import REFRESH_OUTCOME_COLUMNS
from auditor.report import FleetInfo, build_digest, send_digest, write_reports
from auditor.report._email_digest import build_digest_view
from auditor.report._email_routing import Scope
from auditor.result import AuditResult
from auditor.rules import RULES
from tests.smtp_inbox import Inbox, plain_smtp_server

AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"
UUID = "0f4b3c1e-9a2d-4e6f-8b7a-1c2d3e4f5a6b"
TYPES = ("bills", "invoices", "payments", "customers", "suppliers", "journals", "items",
         "accounts", "taxRates", "creditNotes")  # fmt: skip
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rule": "stale", "severity": "error", "company_id": "c-many", "company_name": "Many Ltd",
        "platform": "Xero", "connection_id": "k1", "data_type": "invoices",
        "message": "Stale.", "remedy": "Queue a sync.", "code": "FA101", "state": "new",
        "first_seen": pd.Timestamp(AS_OF) - timedelta(days=1), "nights_open": 1,
        "snoozed": False, "as_of": pd.Timestamp(AS_OF),
    }  # fmt: skip
    row.update(kw)
    row.setdefault("incident_key", f"{row['rule']}|{row['company_id']}|{row['data_type']}")
    row["incident_key"] = f"{row['rule']}|{row['company_id']}|{row['data_type']}"
    return row


def _fixture() -> tuple[AuditResult, pd.DataFrame, pd.DataFrame]:
    rows = [_row(data_type=t) for t in TYPES]  # one company, ten failing types
    rows.append(_row(company_id=UUID, company_name=HOSTILE, rule="needs-relink", data_type=None,
                     connection_id="k-h", code="FA301", current_status="AuthError"))
    rows += [_row(company_id=UUID, company_name=HOSTILE, connection_id="k-h", data_type=t)
             for t in ("bills", "invoices")]
    rows.append(_row(company_id="c-evil", company_name="Evil link", rule="needs-relink",
                     data_type=None, connection_id="k-e", code="FA301", state="ongoing"))
    rows.append(_row(company_id="c-one", company_name="One Warning", severity="warning",
                     state="ongoing", message="x This also explains 1 stale finding(s)."))
    rows.append(_row(company_id="c-snz", company_name="Snoozed Co", snoozed=True))
    shown, covered = apply_coverage(conform_findings(pd.DataFrame(rows)), RULES)
    result = AuditResult(snapshot_id="snap-1", as_of=AS_OF, findings=shown, covered=covered)
    connections = pd.DataFrame(
        {
            "company_id": [UUID, "c-evil"],
            "connection_id": ["k-h", "k-e"],
            "platform": ["Xero", "Xero"],
            "link_url": ["https://link.codat.io/x/start?a=1", "javascript:alert(document.cookie)"],
            "connection_error": ["=cmd|' /C calc'!A0", "token revoked"],
        }
    )
    refreshes = pd.DataFrame(
        {
            "company_id": ["c-many", "c-many", "c-ok"],
            "company_name": ["Many Ltd", "Many Ltd", HOSTILE],
            "data_type": ["bills", "invoices", "payments"],
            "action": "queue",
            "outcome": "queued",
            "dataset_id": ["op-1", "op-2", "op-3"],
            "requested_at": pd.Timestamp(AS_OF) - timedelta(days=1),
            "current_status": ["FetchError", "Queued", "Complete"],
            "last_successful_sync": pd.Timestamp(AS_OF) - timedelta(days=3),
            "result": ["failed", "running", "worked"],
        }
    ).reindex(columns=list(REFRESH_OUTCOME_COLUMNS))
    return result, connections, refreshes


@pytest.fixture(scope="module")
def parts() -> tuple[AuditResult, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    result, connections, refreshes = _fixture()
    actions = build_actions(result, connections=connections, refreshes=refreshes)
    return result, connections, refreshes, actions


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.section_ids: list[str] = []
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section_ids.append(a.get("id") or a.get("aria-labelledby") or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "script":
            self.scripts += 1


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory,
    parts: tuple[AuditResult, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> tuple[Path, str, _Sections]:
    result, connections, refreshes, actions = parts
    out = tmp_path_factory.mktemp("report")
    write_reports(result, out, actions=actions, refreshes=refreshes, connections=connections,
                  fleet=FleetInfo(companies_audited=10, collection_errors=1), start_here=3)
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _Sections()
    parser.feed(html)
    return out, html, parser


def test_start_here_is_first_after_the_summary_and_links_the_csvs(
    report: tuple[Path, str, _Sections],
) -> None:
    out, html, parsed = report
    ids = parsed.section_ids
    assert ids[:3] == ["notices-h", "changes-h", "start-here"]
    assert ids.index("refreshes") > ids.index("findings-h")
    for name in ("actions.csv", "relinks.csv", "refreshes.csv"):
        assert (out / name).is_file()
        assert name in parsed.hrefs  # linked from the header
    assert "The first 3 of 4 actions" in html


def test_start_here_ranks_and_groups_one_company_once(report: tuple[Path, str, _Sections]) -> None:
    _, html, _ = report
    start = html[html.index('id="start-here"'): html.index('id="trend-h"')]
    assert start.count("Many Ltd") == 1
    assert "10 data types: accounts, bills, creditNotes, customers and 6 more" in start
    assert "failed" in start  # the refresh queued last night for Many Ltd failed
    assert "op-1" in start  # ... so contact support with its pull operation


def test_hostile_names_and_links_stay_inert(report: tuple[Path, str, _Sections]) -> None:
    out, html, parsed = report
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert parsed.scripts == 1  # the report's own
    assert "https://link.codat.io/x/start?a=1" in parsed.hrefs
    assert not any(h.lower().startswith("javascript") for h in parsed.hrefs)
    assert "javascript:alert" not in html
    with (out / "relinks.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["link_url"] for r in rows] == ["https://link.codat.io/x/start?a=1", ""]
    assert rows[0]["error"].startswith("'=")  # formula neutralised
    assert rows[0]["company_name"] == HOSTILE  # CSV keeps the text (not HTML)


def test_refresh_outcomes_section(report: tuple[Path, str, _Sections]) -> None:
    out, html, _ = report
    section = html[html.index('id="refreshes"'):]
    section = section[: section.index("</section>")]
    assert "1 failed" in section
    assert "1 still running" in section
    assert "1 worked" in section
    assert section.index("Many Ltd") < section.index("&lt;script&gt;")  # failed first
    rows = list(csv.DictReader(io.StringIO((out / "refreshes.csv").read_text("utf-8"))))
    assert {r["result"] for r in rows} == {"failed", "running", "worked"}


def _bodies(msg: Any) -> tuple[str, str]:
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    return html, text


@pytest.fixture(scope="module")
def delivered(
    parts: tuple[AuditResult, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> Iterator[Any]:
    result, connections, refreshes, actions = parts
    msg = build_digest(
        result,
        settings=EmailSettings(start_here=3),
        recipients=["ops@example.com"],
        fleet=FleetInfo(companies_audited=10, collection_errors=1),
        actions=actions,
        refreshes=refreshes,
        connections=connections,
        now=AS_OF,
    )
    with plain_smtp_server() as (inbox, port):
        send_digest(msg, SmtpSettings(host="127.0.0.1", port=port, security="none",
                                      allow_plaintext=True))
        box: Inbox = inbox
        [(_, got)] = box.messages
        yield got


def test_digest_attaches_relinks_and_refreshes(delivered: Any) -> None:
    files = {p.get_filename(): p.get_content() for p in delivered.iter_attachments()}
    assert {"actions.csv", "relinks.csv", "refreshes.csv"} <= set(files)
    relinks = list(csv.DictReader(io.StringIO(files["relinks.csv"])))
    assert relinks[0]["link_url"] == "https://link.codat.io/x/start?a=1"
    assert "javascript" not in files["relinks.csv"]


def test_digest_leads_with_start_here_and_reads_at_600_px(delivered: Any) -> None:
    html, text = _bodies(delivered)
    for body in (html, text):
        assert body.index("Start here") < body.index("New tonight")
        assert body.index("could not be read from Codat tonight") < body.index("Start here")
        assert "finding(s)" not in body
        assert not re.search(r"\b1 errors", body)
        assert not re.search(r"\b1 warnings", body)
    assert "errors, 1 warning)" in text  # Open: ... (12 errors, 1 warning)
    visible = re.sub(r"<[^>]+>", " ", html)  # ids may stay whole in attributes (titles, links)
    assert not UUID_RE.search(visible)
    assert UUID[:8] + "…" in visible
    assert HOSTILE not in html
    assert "javascript:alert" not in html
    assert 'href="https://link.codat.io/x/start?a=1"' in html
    assert "Last night's refreshes" in html
    assert "1 failed" in html


def test_one_digest_entry_per_company_and_root_cause(
    parts: tuple[AuditResult, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    result, _, refreshes, actions = parts
    view = build_digest_view(
        result, subject_prefix="[f]", rules=(), display_tz="UTC", fleet=FleetInfo(),
        scope=Scope(), attachments=(), max_items=15, actions=actions, refreshes=refreshes,
        start_here=2,
    )  # fmt: skip
    entries = [*view.start_here, *(a for s in view.sections for a in s.items)]
    keys = [a.root_key for a in entries]
    assert len(keys) == len(set(keys))
    # Every action but the ongoing warning (in actions.csv only) has its one entry.
    assert len(keys) == len(actions) - 1
    assert sum(a.company_id == "c-many" for a in entries) == 1
    assert all(a.company_id != "c-snz" for a in entries)


def assert_one_entry_per_root_cause(view: Any) -> None:
    """No company takes more than one digest entry per root cause (company, rule, connection)."""
    entries = [*view.start_here, *(a for s in view.sections for a in s.items)]
    seen = [(a.company_id, a.rule, a.connection_id) for a in entries if a.company_id]
    assert len(seen) == len(set(seen))
    keys = [a.root_key for a in entries]
    assert len(keys) == len(set(keys))


def test_demo_digest_and_report_lead_with_ranked_actions(tmp_path: Path) -> None:
    from auditor.demo import run_demo

    outcome = run_demo(tmp_path / "demo", as_of=AS_OF, companies=40, nights=2, progress="off")
    final = outcome.nights[-1]
    assert final.actions is not None
    assert len(final.actions) > 0
    view = build_digest_view(
        final.result, subject_prefix="[f]", rules=(), display_tz="UTC", fleet=final.fleet,
        scope=Scope(), attachments=(), max_items=15, actions=final.actions,
        refreshes=final.refreshes,
    )  # fmt: skip
    assert_one_entry_per_root_cause(view)
    assert view.start_here[0].rank == 1
    assert outcome.eml is not None
    import email
    from email.policy import default

    msg = email.message_from_bytes(outcome.eml.read_bytes(), policy=default)
    html, _ = _bodies(msg)
    assert html.index('id="start-here"') < html.index("Open findings by rule")
    names = {p.get_filename() for p in msg.iter_attachments()}
    assert {"actions.csv", "relinks.csv"} <= names
    report = (tmp_path / "demo" / "report.html").read_text("utf-8")
    assert report.index('id="start-here"') < report.index('id="trend-h"')
