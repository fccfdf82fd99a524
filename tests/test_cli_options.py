"""CLI options declared once (``auditor.cli.options``) and the precedence of settings
(``auditor.config.run_settings``): command line > environment > ``[run]`` > default."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from auditor import __version__
from auditor.cli import app
from auditor.config import (
    DEFAULT_BASE_URL,
    DEFAULT_RATE_LIMIT,
    DEFAULT_STORE,
    ENV_VARS,
    AuditConfig,
    ConfigError,
    RunConfig,
    run_settings,
)
from auditor.findings import empty_findings
from auditor.result import AuditResult
from auditor.snapshot import Snapshot
from auditor.store import write_findings, write_snapshot

FILE = RunConfig(store="from-file", out="out-file", base_url="http://file", rate_limit=50)
ENV = {
    "AUDITOR_STORE": "from-env",
    "AUDITOR_OUT": "out-env",
    "CODAT_BASE_URL": "http://env",
    "AUDITOR_RATE_LIMIT": "20",
    "AUDITOR_SNOOZES": "snoozes-env.toml",
}


def test_defaults_when_nothing_is_said() -> None:
    settings = run_settings(None, env={})
    assert settings.store == Path(DEFAULT_STORE)
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.rate_limit == DEFAULT_RATE_LIMIT == 1000.0
    assert settings.out is None
    assert settings.snoozes is None
    assert settings.max_attempts is None
    assert settings.timeout == 30.0
    assert run_settings(None, env={}, default_out="reports").out == Path("reports")


def test_config_file_beats_default() -> None:
    settings = run_settings(AuditConfig(run=FILE), env={}, default_out="reports")
    assert settings.store == Path("from-file")
    assert settings.out == Path("out-file")
    assert settings.base_url == "http://file"
    assert settings.rate_limit == 50


def test_environment_beats_config_file() -> None:
    settings = run_settings(FILE, env=ENV, default_out="reports")
    assert settings.store == Path("from-env")
    assert settings.out == Path("out-env")
    assert settings.base_url == "http://env"
    assert settings.rate_limit == 20
    assert settings.snoozes == Path("snoozes-env.toml")


def test_command_line_beats_environment() -> None:
    settings = run_settings(
        FILE,
        env=ENV,
        store=Path("cli"),
        out=Path("out-cli"),
        base_url="http://cli",
        rate_limit=5,
        snoozes=Path("s.toml"),
    )
    assert (settings.store, settings.out, settings.base_url) == (
        Path("cli"),
        Path("out-cli"),
        "http://cli",
    )
    assert settings.rate_limit == 5
    assert settings.snoozes == Path("s.toml")


def test_zero_means_no_limit_and_empty_means_unset() -> None:
    assert run_settings(None, env={}, rate_limit=0).rate_limit is None
    assert run_settings(RunConfig(rate_limit=0), env={}).rate_limit is None
    assert run_settings(FILE, env={"AUDITOR_STORE": ""}).store == Path("from-file")
    with pytest.raises(ConfigError, match="AUDITOR_RATE_LIMIT"):
        run_settings(None, env={"AUDITOR_RATE_LIMIT": "fast"})


def _options() -> dict[str, dict[str, tuple[object, object]]]:
    """Every command's options: command -> flag -> (envvar, help)."""
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    return {
        name: {p.opts[0]: (p.envvar, getattr(p, "help", None)) for p in cmd.params}
        for name, cmd in commands.items()
    }


SHARED = ("--store", "--config", "--base-url", "--rate-limit", "--log-format", "--progress")


def test_every_command_declares_a_shared_option_the_same_way() -> None:
    seen: dict[str, list[tuple[str, object, object]]] = {}
    for name, options in _options().items():
        if name == "sandbox":  # serves the API: its --rate-limit is the server's 429 limit
            continue
        for flag, (envvar, help_) in options.items():
            if flag in SHARED:
                seen.setdefault(flag, []).append((name, envvar, help_))
    assert set(seen) == set(SHARED)
    for flag, uses in seen.items():
        assert len({(env, help_) for _, env, help_ in uses}) == 1, (flag, uses)
    assert {flag: uses[0][1] for flag, uses in seen.items()} == {
        "--store": ENV_VARS["store"],
        "--config": ENV_VARS["config"],
        "--base-url": ENV_VARS["base_url"],
        "--rate-limit": ENV_VARS["rate_limit"],
        "--log-format": ENV_VARS["log_format"],
        "--progress": ENV_VARS["progress"],
    }
    assert {n for n, *_ in seen["--store"]} >= {"audit", "snapshot", "refresh", "run", "prune"}


def test_version_flags_and_help_text() -> None:
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0
    assert version.output.strip() == f"auditor {__version__}"
    for command in ("run", "refresh", "snapshot", "audit"):
        text = runner.invoke(app, [command, "--help"]).output
        assert "<bool>" not in text
        assert not re.search(r"\S [.,](\s|$)", text), text  # no markup eaten before a stop
    run_help = " ".join(runner.invoke(app, ["run", "--help"]).output.split())
    assert "--dry-run " in run_help
    assert "[default: run.store, else ./store]" in run_help


def test_store_option_reads_the_environment(tmp_path: Path) -> None:
    store = tmp_path / "store"
    at = datetime(2024, 5, 1, 2, tzinfo=UTC)
    write_snapshot(store, Snapshot(snapshot_id="n0", snapshot_at=at))
    write_findings(store, AuditResult(snapshot_id="n0", as_of=at, findings=empty_findings()))
    write_snapshot(store, Snapshot(snapshot_id="n1", snapshot_at=at.replace(day=2)))
    result = CliRunner().invoke(app, ["snapshots"], env={"AUDITOR_STORE": str(store)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["snapshot_id", "date", "complete", "companies", "findings"]
    assert lines[1].split() == ["n0", "2024-05-01", "yes", "0", "0"]
    assert lines[2].split() == ["n1", "2024-05-02", "yes", "0", "-"]
    assert lines[-1] == f"2 snapshots in {store} (2 complete)"
    config = tmp_path / "auditor.toml"
    config.write_text(f'[run]\nstore = "{store}"\n', encoding="utf-8")
    from_file = CliRunner().invoke(app, ["snapshots", "--config", str(config)], env={})
    assert from_file.output == result.output
    empty = CliRunner().invoke(app, ["snapshots", "--store", str(tmp_path / "none")])
    assert empty.exit_code == 0
    assert "no snapshots" in empty.output


def test_quiet_and_log_level_apply_to_every_command(tmp_path: Path) -> None:
    import logging

    from auditor.logs import configure_logging, set_cli_defaults

    runner = CliRunner()
    try:
        loud = runner.invoke(app, ["snapshots", "--store", str(tmp_path)])
        quiet = runner.invoke(app, ["--quiet", "snapshots", "--store", str(tmp_path)])
        assert loud.exit_code == quiet.exit_code
        assert loud.stdout.strip()
        assert quiet.stdout == ""  # --quiet: errors only, the exit code still tells
        missing = runner.invoke(app, ["-q", "audit", "--store", str(tmp_path / "none")])
        assert missing.exit_code == 2
        assert "error:" in missing.stderr  # errors are never silenced
        runner.invoke(app, ["--log-level", "debug", "snapshots", "--store", str(tmp_path)])
        configure_logging(run_id="t")
        assert logging.getLogger("auditor").level == logging.DEBUG
        bad = runner.invoke(app, ["--log-level", "loud", "snapshots"])
        assert bad.exit_code == 2
    finally:
        set_cli_defaults()


def test_no_color_is_honoured_by_the_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    monkeypatch.setenv("NO_COLOR", "1")
    assert Console(stderr=True).no_color
