"""``auditor run`` end to end: a real sandbox and a real SMTP server on loopback, the CLI in a
real subprocess; checks each exit code, the lock, JSON logs and that no secret leaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import filelock
import pytest
from smtp_inbox import Inbox, plain_smtp_server

from auditor.nightly import LOCK_FILE, crosses_fail_level
from auditor.result import AuditResult
from auditor.sandbox import SandboxOptions, SandboxServer, load_fleet

FIXTURES = Path(__file__).parent / "fixtures"
AS_OF = "2024-05-01T06:00:00Z"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with plain_smtp_server() as server:
        yield server


@pytest.fixture
def sandbox(fleet_now: Any) -> Iterator[SandboxServer]:
    fleet = load_fleet(FIXTURES / "fleet_small.json")
    server = SandboxServer(fleet, SandboxOptions(clock=lambda: fleet_now))
    server.start()
    yield server
    server.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "auditor.toml"
    # Quick retries: the fixture fleet has a company whose dataStatus always fails.
    path.write_text(
        '[email]\nto = ["ops@example.com"]\n\n[run]\nmax_attempts = 2\n', encoding="utf-8"
    )
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "CODAT_"))}
    if api_key is not None:
        full_env["CODAT_API_KEY"] = api_key
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def nightly(
    sandbox: SandboxServer, tmp_path: Path, config: Path, *extra: str, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "run",
        "--config",
        str(config),
        "--store",
        str(kw.pop("store", tmp_path / "store")),
        "--out",
        str(tmp_path / "out"),
        "--base-url",
        sandbox.base_url,
        "--as-of",
        kw.pop("as_of", AS_OF),
        "--progress",
        "off",
        *extra,
        api_key=kw.pop("api_key", sandbox.api_key),
        **kw,
    )


def smtp_env(port: int) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "SMTP_ALLOW_PLAINTEXT": "true",
        "SMTP_FROM": "auditor@example.com",
    }


def test_exit_codes_email_and_ledger_over_two_nights(
    sandbox: SandboxServer, tmp_path: Path, config: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    # Night 1: every error is new -> exit 1 (default --fail-on new-error), digest emailed.
    first = nightly(sandbox, tmp_path, config, env=smtp_env(port))
    assert first.returncode == 1, first.stderr
    assert "exit 1" in first.stdout
    assert len(inbox.messages) == 1
    recipients, msg = inbox.messages[0]
    assert recipients == ["ops@example.com"]
    assert msg["To"] == "ops@example.com"
    assert msg["Subject"].startswith("[freshness]")
    assert "new error" in msg["Subject"]
    filenames = {p.get_filename() for p in msg.iter_attachments()}
    assert {"findings.csv", "summary.csv", "incidents.csv"} <= filenames
    assert (tmp_path / "out" / "report.html").is_file()

    # Night 2, same data: nothing new -> exit 0 with new-error, 1 with error, 0 with never.
    later = "2024-05-01T06:30:00Z"
    second = nightly(sandbox, tmp_path, config, env=smtp_env(port), as_of=later)
    assert second.returncode == 0, second.stderr
    assert len(inbox.messages) == 2
    assert "new error" not in inbox.messages[1][1]["Subject"]
    third = nightly(
        sandbox, tmp_path, config, "--fail-on", "error", "--dry-run", as_of="2024-05-01T07:00:00Z"
    )
    assert third.returncode == 1, third.stderr
    assert len(inbox.messages) == 2  # --dry-run sends nothing...
    assert (tmp_path / "out" / "digest.eml").is_file()  # ...it writes the digest instead
    never = nightly(
        sandbox, tmp_path, config, "--fail-on", "never", "--dry-run", as_of="2024-05-01T07:30:00Z"
    )
    assert never.returncode == 0, never.stderr
    # The same night twice is refused (the snapshot exists): a run failure, exit 2.
    again = nightly(sandbox, tmp_path, config, "--dry-run", as_of="2024-05-01T07:30:00Z")
    assert again.returncode == 2
    assert "already complete" in again.stderr


def test_exit_2_on_wrong_key_bad_config_and_bad_store(
    sandbox: SandboxServer, tmp_path: Path, config: Path
) -> None:
    wrong = nightly(sandbox, tmp_path, config, "--dry-run", api_key="not-the-key")
    assert wrong.returncode == 2
    assert "refused the API key" in wrong.stderr
    assert "not-the-key" not in wrong.stderr + wrong.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text("[rules.stale]\nwarn_after = -3\n", encoding="utf-8")
    bad_config = nightly(sandbox, tmp_path, bad, "--dry-run")
    assert bad_config.returncode == 2
    assert "bad.toml" in bad_config.stderr

    store_is_a_file = tmp_path / "a-file"
    store_is_a_file.write_text("not a directory", encoding="utf-8")
    broken_store = nightly(sandbox, tmp_path, config, "--dry-run", store=store_is_a_file)
    assert broken_store.returncode == 2


def test_exit_2_when_no_company_is_reachable(tmp_path: Path, config: Path, fleet_now: Any) -> None:
    fleet = load_fleet(FIXTURES / "fleet_small.json")
    data = fleet.to_dict()
    for entry in data["companies"]:
        entry["dataStatusError"] = {"statusCode": 500, "error": "boom", "canBeRetried": "false"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with SandboxServer(load_fleet(path), SandboxOptions(clock=lambda: fleet_now)) as server:
        proc = nightly(server, tmp_path, config, "--dry-run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no company reachable" in proc.stderr


def test_lock_refuses_a_second_run(sandbox: SandboxServer, tmp_path: Path, config: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with filelock.FileLock(str(store / LOCK_FILE)):
        proc = nightly(sandbox, tmp_path, config, "--dry-run")
    assert proc.returncode == 2
    assert "another run holds the lock" in proc.stderr
    assert not list(store.glob("snapshot_date=*"))  # it collected nothing
    # Once released, a run goes through.
    assert nightly(sandbox, tmp_path, config, "--dry-run").returncode in (0, 1)


def test_json_logs_carry_the_run_id_and_no_secret(
    sandbox: SandboxServer, tmp_path: Path, config: Path
) -> None:
    proc = nightly(sandbox, tmp_path, config, "--dry-run", "--log-format", "json")
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) >= 4
    run_ids = {line["run_id"] for line in lines}
    assert len(run_ids) == 1
    assert next(iter(run_ids))
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    assert sandbox.api_key not in proc.stderr + proc.stdout


def test_a_killed_run_leaves_the_previous_night_intact(
    tmp_path: Path, config: Path, fleet_now: Any
) -> None:
    fleet = load_fleet(FIXTURES / "fleet_small.json")
    # Slow sandbox: the second run is killed mid-collection, once its snapshot directory
    # exists (it has started writing) and long before it can finish.
    opts = SandboxOptions(clock=lambda: fleet_now, latency_ms=1500)
    store = tmp_path / "store"
    with SandboxServer(fleet, opts) as server:
        assert nightly(server, tmp_path, config, "--dry-run").returncode == 1
        before = sorted(p.name for p in (tmp_path / "out").iterdir())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "CODAT_"))}
        env["CODAT_API_KEY"] = server.api_key
        later = (fleet_now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditor", "run", "--config", str(config),
             "--store", str(store), "--out", str(tmp_path / "out"),
             "--base-url", server.base_url, "--as-of", later, "--progress", "off", "--dry-run"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(list(store.glob("snapshot_date=*/*/"))) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
        from auditor.store import list_snapshots, load_snapshot

        snaps = list_snapshots(store)
        assert int(snaps["complete"].sum()) == 1  # the killed night is not complete...
        latest = load_snapshot(store, "latest")  # ...and readers see the old one
        assert latest.snapshot_at == fleet_now
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before
        # The dead run's lock went with it: the same night runs again and completes.
        again = nightly(server, tmp_path, config, "--dry-run", as_of=later)
        assert again.returncode in (0, 1), again.stderr
        assert load_snapshot(store, "latest").snapshot_at == fleet_now + timedelta(hours=1)


def test_fail_levels() -> None:
    import pandas as pd

    from auditor.findings import conform_findings

    def result(rows: list[dict[str, Any]]) -> AuditResult:
        frame = conform_findings(pd.DataFrame(rows))
        return AuditResult("s", pd.Timestamp("2024-05-01", tz="UTC").to_pydatetime(), frame)

    ongoing_error = {"severity": "error", "state": "ongoing", "snoozed": False}
    new_warning = {"severity": "warning", "state": "new", "snoozed": False}
    new_error_snoozed = {"severity": "error", "state": "new", "snoozed": True}
    r = result([ongoing_error, new_warning, new_error_snoozed])
    assert not crosses_fail_level(r, "never")
    assert not crosses_fail_level(r, "new-error")  # the new error is snoozed
    assert crosses_fail_level(r, "error")
    assert crosses_fail_level(r, "new-warning")
    assert crosses_fail_level(r, "warning")
    assert not crosses_fail_level(result([new_error_snoozed]), "warning")
