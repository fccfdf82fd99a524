"""The listener's deployment examples are well-formed and their command lines parse with the
real CLI (so an option rename cannot silently break them)."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from auditor.cli import app

DEPLOY = Path(__file__).parent.parent / "deploy"


def parses(argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"auditor {' '.join(argv)}: {result.output}"


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "auditor-listen.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["KillSignal"] == "SIGTERM"
    words = shlex.split(service["ExecStart"])
    assert words[0].endswith("/auditor")
    assert words[1] == "listen"
    assert words[words.index("--log-format") + 1] == "json"
    parses(words[1:])
    assert "CODAT_WEBHOOK_SECRET" not in service.get("Environment", "")  # only from the file


def test_kubernetes_deployment_and_service() -> None:
    deployment, service = yaml.safe_load_all((DEPLOY / "kubernetes-listen.yaml").read_text())
    assert (deployment["kind"], deployment["apiVersion"]) == ("Deployment", "apps/v1")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    container = spec["template"]["spec"]["containers"][0]
    assert container["args"][0] == "listen"
    parses(container["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (env,) = container["env"]
    assert env["name"] == "CODAT_WEBHOOK_SECRET"
    assert "secretKeyRef" in env["valueFrom"]
    port = container["args"][container["args"].index("--port") + 1]
    assert container["ports"][0]["containerPort"] == int(port)
    assert service["kind"] == "Service"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
