"""The deployment examples in deploy/ are well-formed, and every ``auditor`` command line they
hold parses with the real CLI (so an option rename cannot silently break a schedule)."""

from __future__ import annotations

import ast
import configparser
import io
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
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


# --- the container image and the sharded schedules (issue 15) ------------------------------

ROOT = DEPLOY.parent
#: Kubernetes version the manifests are validated against (schemas shipped offline by
#: kubernetes-validate); CronJob.spec.timeZone needs 1.27 or later.
KUBERNETES_VERSION = "1.30"


def kubernetes_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("kubernetes-*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize(
    ("name", "doc"), kubernetes_docs(), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_kubernetes_manifests_validate_against_the_kubernetes_schema(
    name: str, doc: dict[str, Any]
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    # strict: an unknown field (a typo such as completionsMode) is an error, not ignored.
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_indexed_job_runs_n_shards_on_an_object_store() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes-indexed-job.yaml").read_text()))
    cron = next(d for d in docs if d["kind"] == "CronJob")
    job = cron["spec"]["jobTemplate"]["spec"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["completionMode"] == "Indexed"
    container = job["template"]["spec"]["containers"][0]
    args = container["args"]
    assert parse_auditor_args(args) == "run"
    shards = int(args[args.index("--shards") + 1])
    assert job["completions"] == job["parallelism"] == shards > 1
    assert "--shard" not in args  # the index comes from JOB_COMPLETION_INDEX
    # Each index K of the Job is shard K of N, as the real CLI reads it.
    from auditor.cli.run_cmd import _shard_or_exit

    for index in range(shards):
        assert _shard_or_exit(None, shards, index) == (index, shards)
    # Every shard writes the same store: an object store URL, so no pod needs a shared disk
    # (and no PersistentVolumeClaim is left in the file).
    store = args[args.index("--store") + 1]
    assert store.startswith("s3://")
    from auditor.store import is_remote, store_root

    assert is_remote(store_root(store))
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    volumes = job["template"]["spec"]["volumes"]
    assert not [v for v in volumes if "persistentVolumeClaim" in v]


def test_job_completion_index_reaches_the_shard_option() -> None:
    """--shard-index takes JOB_COMPLETION_INDEX from the environment (what the Indexed Job's
    pods get); the CLI parses the manifest's args with it set."""
    result = CliRunner().invoke(
        app, ["run", "--shards", "4", "--help"], env={"JOB_COMPLETION_INDEX": "3"}
    )
    assert result.exit_code == 0, result.output
    assert "JOB_COMPLETION_INDEX" in result.output


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """The DAG file's module-level constants (simple assignments), evaluated without importing
    Airflow."""
    namespace: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            code = compile(ast.Module([node], []), "airflow_dag_sharded.py", "exec")
            exec(code, namespace)
    return namespace


def test_airflow_sharded_dag_maps_one_task_per_shard() -> None:
    source = (DEPLOY / "airflow_dag_sharded.py").read_text()
    tree = ast.parse(source)
    expands = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "expand"
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Attribute)
        and node.func.value.func.attr == "partial"
        and ast.unparse(node.func.value.func.value) == "BashOperator"
    ]
    assert len(expands) == 1, "one BashOperator.partial(...).expand(...) over the shards"
    constants = _module_constants(tree)
    (keyword,) = expands[0].keywords
    assert keyword.arg == "bash_command"
    commands = eval(compile(ast.Expression(keyword.value), "dag", "eval"), constants)
    shards = constants["SHARDS"]
    assert len(commands) == shards > 1
    seen = set()
    for command in commands:
        argv = auditor_argv(command.replace("{{ ds }}", "2026-11-23"))
        assert parse_auditor_args(argv) == "run"
        seen.add(argv[argv.index("--shard") + 1])
    assert seen == {f"{k}/{shards}" for k in range(shards)}
    # The other operators' command lines parse too (prune after the shards).
    others = [
        ast.literal_eval(k.value) if isinstance(k.value, ast.Constant) else
        eval(compile(ast.Expression(k.value), "dag", "eval"), constants)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "BashOperator"
        for k in node.keywords
        if k.arg == "bash_command"
    ]  # fmt: skip
    assert others
    for command in others:
        assert parse_auditor_args(auditor_argv(command)) == "prune"


def dockerfile() -> Any:
    parse = pytest.importorskip("dockerfile_parse")
    parser = parse.DockerfileParser(fileobj=io.BytesIO((ROOT / "Dockerfile").read_bytes()))
    return parser


def test_dockerfile_slim_non_root_auditor_entrypoint() -> None:
    parser = dockerfile()
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    froms = [v for k, v in instructions if k == "FROM"]
    assert froms
    assert all(v.split()[0].endswith("-slim") for v in froms)
    # Only the last stage is the image; its user is not root.
    last_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [v for k, v in last_stage if k == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert f"--uid {user}" in " ".join(v for k, v in last_stage if k == "RUN")
    # The entrypoint is the console script the package installs.
    entrypoint = json.loads(next(v for k, v in last_stage if k == "ENTRYPOINT"))
    assert entrypoint == ["auditor"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["auditor"] == "auditor.cli:main"
    # The default command parses with the real CLI.
    cmd = json.loads(next(v for k, v in last_stage if k == "CMD"))
    assert CliRunner().invoke(app, cmd).exit_code == 0
    # The package is installed from the repository: what it copies exists, and the
    # .dockerignore lets it through.
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for key, value in instructions:
        if key == "COPY" and not value.startswith("--from"):
            for source in value.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in {i.rstrip("/") for i in ignore}, source
    runs = [v for k, v in instructions if k == "RUN"]
    assert any("pip wheel" in v and v.rstrip().endswith(" .") for v in runs)
    # Environment variables it sets are ones the CLI reads.
    from auditor.config import ENV_VARS

    env = dict(parser.envs)
    for name in env:
        if name.startswith("AUDITOR_"):
            assert name in ENV_VARS.values(), name
    # The Kubernetes manifests run the image as the same non-root user.
    for _name, doc in kubernetes_docs():
        if doc["kind"] == "CronJob":
            pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            if "securityContext" in pod:
                assert str(pod["securityContext"]["runAsUser"]) == user


def test_readme_quotes_the_crontab_line_exactly() -> None:
    """The nightly line the README shows is the one in deploy/crontab, character for
    character (a copy that drifts sends people a schedule nobody tests)."""
    readme = (DEPLOY.parent / "README.md").read_text(encoding="utf-8")
    crontab = (DEPLOY / "crontab").read_text(encoding="utf-8").splitlines()
    nightly = [line for line in crontab if "auditor run" in line and not line.startswith("#")]
    assert len(nightly) == 1
    quoted = [
        line.strip() for line in readme.splitlines() if "auditor run" in line and "* * *" in line
    ]
    assert quoted == [nightly[0]], quoted


def test_readme_documents_the_notebooks_extra_and_the_venv() -> None:
    readme = (DEPLOY.parent / "README.md").read_text(encoding="utf-8")
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "notebooks" in project["project"]["optional-dependencies"]
    assert "pip install -e '.[notebooks]'" in readme
    assert ". .venv/bin/activate" in readme
