"""``auditor demo`` end to end (sandbox over loopback -> collector -> store -> audit -> reports),
the CLI surface, and the API key nowhere in what we write."""

from __future__ import annotations

import base64
import csv
import email
from email.message import EmailMessage
from pathlib import Path

from typer.testing import CliRunner

from auditor.cli import app
from auditor.findings import FINDINGS_COLUMNS
from auditor.sandbox import SANDBOX_API_KEY
from auditor.store import list_snapshots

AS_OF = "2024-05-01T06:00:00Z"
COMMANDS = ("sandbox", "snapshot", "audit", "demo", "rules", "run", "refresh", "prune")


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_demo_two_nights_writes_reports_digest_and_no_secret(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--companies", "60", "--nights", "2", "--as-of", AS_OF, "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--progress", "off"])
    assert result.exit_code == 0, result.output
    assert "night 2/2" in result.output
    assert "report:" in result.output

    # Two complete nights in the store, the last one audited with the ledger.
    snaps = list_snapshots(out / "store", include_incomplete=False)
    assert len(snaps) == 2
    assert bool(snaps["has_findings"].all())

    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<html" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing to fetch

    with (out / "findings.csv").open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == FINDINGS_COLUMNS
    for name in ("summary.csv", "incidents.csv"):
        assert (out / name).stat().st_size > 0

    msg = email.message_from_bytes((out / "demo.eml").read_bytes(), _class=EmailMessage)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"].startswith("[freshness]")
    assert msg.get_body(preferencelist=("html",)) is not None
    assert msg.get_body(preferencelist=("plain",)) is not None

    # The API key (and its Basic-auth form) is in no file we wrote, Parquet included.
    secrets = [SANDBOX_API_KEY.encode(), base64.b64encode(SANDBOX_API_KEY.encode())]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, path
    assert SANDBOX_API_KEY not in result.output


def test_demo_with_a_fleet_file_and_bad_config(tmp_path: Path) -> None:
    fleet = Path(__file__).parent / "fixtures" / "fleet_small.json"
    out = tmp_path / "demo"
    args = ["demo", "--fleet", str(fleet), "--as-of", AS_OF, "--out", str(out)]
    ok = CliRunner().invoke(app, [*args, "--progress", "off"])
    assert ok.exit_code == 0, ok.output
    assert "not-collected" in ok.output  # the fleet file's dataStatusError company

    bad = tmp_path / "bad.toml"
    bad.write_text("timezone = 'Mars/Olympus'\n", encoding="utf-8")
    failed = CliRunner().invoke(app, [*args, "--config", str(bad)])
    assert failed.exit_code == 2
    assert "Mars/Olympus" in failed.output
