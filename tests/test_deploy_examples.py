"""The deployment examples in deploy/ are well-formed, and every ``auditor`` command line they
hold parses with the real CLI (so an option rename cannot silently break a schedule)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from auditor.cli import app

DEPLOY = Path(__file__).parent.parent / "deploy"


def parse_auditor_args(argv: list[str]) -> str:
    """Parse ``auditor ARGV`` with the real CLI without running it (``--help`` stops it after
    parsing; an unknown command or option fails the parse). Returns the command name."""
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"auditor {' '.join(argv)}: {result.output}"
    return argv[0]


def auditor_argv(command_line: str) -> list[str]:
    words = shlex.split(command_line)
    start = next(i for i, w in enumerate(words) if w.endswith("auditor"))
    end = next((i for i, w in enumerate(words[start:], start) if w in (">>", "||", "&&")), None)
    return words[start + 1 : end]


def test_crontab_lines_parse() -> None:
    jobs = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(jobs) == 2
    for line in jobs:
        fields = line.split(None, 5)
        for field in fields[:5]:
            assert all(c in "0123456789*/,-" for c in field), line
        assert parse_auditor_args(auditor_argv(fields[5].split("&&")[-1])) in ("run", "prune")


def test_systemd_units() -> None:
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(DEPLOY / "auditor.service")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["SuccessExitStatus"] == "1"
    argv = auditor_argv(service["Service"]["ExecStart"])
    assert parse_auditor_args(argv) == "run"
    assert argv[argv.index("--log-format") + 1] == "json"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(DEPLOY / "auditor.timer")
    calendar = timer["Timer"]["OnCalendar"]
    if shutil.which("systemd-analyze"):
        check = subprocess.run(
            ["systemd-analyze", "calendar", calendar], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr


def test_kubernetes_cronjob() -> None:
    doc = yaml.safe_load((DEPLOY / "kubernetes-cronjob.yaml").read_text())
    assert doc["kind"] == "CronJob"
    assert doc["apiVersion"] == "batch/v1"
    spec = doc["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert len(spec["schedule"].split()) == 5
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert parse_auditor_args(container["args"]) == "run"


def test_airflow_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the DAG file against a stand-in ``airflow`` (Airflow itself is not installed)."""
    commands: list[str] = []

    class DAG:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

        def __enter__(self) -> DAG:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    class BashOperator:
        def __init__(self, *, task_id: str, bash_command: str, **kwargs: Any) -> None:
            commands.append(bash_command)

        def __rshift__(self, other: BashOperator) -> BashOperator:
            return other

    airflow = types.ModuleType("airflow")
    airflow.DAG = DAG  # type: ignore[attr-defined]
    operators = types.ModuleType("airflow.operators")
    bash = types.ModuleType("airflow.operators.bash")
    bash.BashOperator = BashOperator  # type: ignore[attr-defined]
    for name, module in {
        "airflow": airflow,
        "airflow.operators": operators,
        "airflow.operators.bash": bash,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    source = (DEPLOY / "airflow_dag.py").read_text()
    exec(compile(source, "airflow_dag.py", "exec"), {"__name__": "dag"})
    assert len(commands) == 2
    for command in commands:
        parse_auditor_args(auditor_argv(command.replace("{{ ds }}", "2026-11-23")))


def test_a_renamed_option_would_be_caught() -> None:
    with pytest.raises(AssertionError, match="No such option"):
        parse_auditor_args(["run", "--no-such-option"])
