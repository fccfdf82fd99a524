"""Text from Codat is bounded in the report, the CSVs and the digest; the store keeps it all."""

from __future__ import annotations

import csv
import email
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path

import pandas as pd

from auditor.engine import audit
from auditor.report import build_digest, write_reports
from auditor.snapshot import STATUS_SCHEMA, Snapshot, conform

AS_OF = datetime(2024, 6, 2, 6, 0, tzinfo=UTC)
HUGE_PLATFORM = "Xero" + "\u200b" * 10 + "P" * 200_000
HUGE_NAME = "Acme " + "N" * 200_000


def _result():  # type: ignore[no-untyped-def]
    status = pd.DataFrame(
        [
            {
                "company_id": f"c{i}",
                "company_name": HUGE_NAME if i == 0 else f"Company {i}",
                "platform": HUGE_PLATFORM,
                "connection_id": f"c{i}-k",
                "connection_status": "Linked",
                "data_type": "invoices",
                "current_status": "FetchError",
                "last_successful_sync": AS_OF - timedelta(hours=2),
            }
            for i in range(12)
        ]
    )
    snap = Snapshot("s", AS_OF, status=conform(status, STATUS_SCHEMA))
    return audit(snap, as_of=AS_OF)


def test_a_huge_platform_and_name_are_cut_everywhere_but_the_store(tmp_path: Path) -> None:
    result = _result()
    assert len(result.findings) == 12
    assert (result.findings["platform"].astype(str) == HUGE_PLATFORM).all()  # kept whole
    paths = write_reports(result, tmp_path)
    html = paths.report_html.read_text()
    assert len(html.encode()) < 400_000
    assert "P" * 1000 not in html
    assert "N" * 1000 not in html
    with paths.findings_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    assert all(len(r["platform"]) <= 60 for r in rows)
    assert max(len(r["company_name"]) for r in rows) <= 120

    msg = build_digest(result, recipients=["ops@example.com"])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=default_policy)
    body = parsed.get_body(("html",))
    assert body is not None
    content = body.get_content()
    assert "P" * 1000 not in content
    for i in range(1, 12):  # every finding is listed, none pushed out by one long name
        assert f"Company {i}" in content, i
