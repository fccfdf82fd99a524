"""``auditor demo`` end to end (sandbox over loopback -> collector -> store -> audit -> reports),
the CLI surface, and the API key nowhere in what we write."""

from __future__ import annotations

import base64
import csv
import email
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.demo import DEMO_MARKER
from auditor.findings import FINDINGS_COLUMNS
from auditor.listen import load_events
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

    # The sandbox's webhooks went through a listener into the store's event log, the day's
    # events between the two nights (received_at is sandbox time in the demo).
    assert "webhooks: " in result.output
    assert "0 rejected" in result.output
    nights = sorted(snaps["snapshot_at"])
    events = load_events(out / "store", since=nights[0], until=nights[1])
    assert (events["event_type"] == "read.completed").sum() > 60
    assert load_events(out / "store", until=nights[0]).empty  # none before the first night

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


def test_demo_never_deletes_a_store_it_did_not_make(tmp_path: Path) -> None:
    """A real store under --out (no .auditor-demo marker) is refused, untouched: one line,
    exit 2. A directory the demo made is rewritten on the next demo."""
    fleet = Path(__file__).parent / "fixtures" / "fleet_small.json"
    out = tmp_path / "srv"
    real_night = out / "store" / "snapshot_date=2024-04-30" / "snapshot_id=20240430T060000Z"
    real_night.mkdir(parents=True)
    (real_night / "manifest.json").write_text("{}", encoding="utf-8")
    args = ["demo", "--fleet", str(fleet), "--as-of", AS_OF, "--progress", "off"]
    refused = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert refused.exit_code == 2, refused.output
    assert "not made by auditor demo" in refused.output
    assert "Traceback" not in refused.output
    assert (real_night / "manifest.json").read_text(encoding="utf-8") == "{}"
    assert not (out / DEMO_MARKER).exists()  # nothing was changed
    assert sorted(p.name for p in out.iterdir()) == ["store"]

    # An --out full of someone else's files is refused too (the demo would overwrite them).
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "report.html").write_text("mine", encoding="utf-8")
    assert CliRunner().invoke(app, [*args, "--out", str(other)]).exit_code == 2
    assert (other / "report.html").read_text(encoding="utf-8") == "mine"

    # The demo's own directory: marked, and rewritten by the next demo.
    mine = tmp_path / "demo"
    (mine).mkdir()
    (mine / ".gitkeep").write_text("", encoding="utf-8")  # hidden files alone are fine
    for _ in range(2):
        ok = CliRunner().invoke(app, [*args, "--out", str(mine)])
        assert ok.exit_code == 0, ok.output
    assert (mine / DEMO_MARKER).is_file()
    assert (mine / "store" / DEMO_MARKER).is_file()
    assert (mine / "report.html").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read fleet file"),
        ("{not json", "not valid JSON"),
        ('{"companies": 3}', "'companies' must be a list"),
    ],
)
def test_a_missing_or_invalid_fleet_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    fleet = tmp_path / "fleet.json"
    if content is not None:
        fleet.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["demo", "--fleet", str(fleet), "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: --fleet:")
    assert message in lines[0]
    assert not out.exists()
