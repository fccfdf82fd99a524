"""results.json and the Prometheus metrics of real runs: ``auditor run`` against the sandbox
in a subprocess, ``auditor audit`` on its store; results.json validated against
``schemas/results.schema.json``, the metrics read back with Prometheus' own text parser, a
Pushgateway played by a loopback HTTP server."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_nightly_run import config, nightly, run_cli, sandbox  # noqa: F401 (fixtures)

from auditor.metrics import LAST_SUCCESS, METRICS_JOB, metrics_settings
from auditor.sandbox import SandboxServer

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "results.schema.json").read_text("utf-8")
)


def valid_results(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text("utf-8"))
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    return doc


def metrics_of(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{metric: {sorted label items: value}}`` as Prometheus' parser reads ``text``."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_run_writes_results_and_metrics_and_a_failed_run_keeps_the_last_success(
    sandbox: SandboxServer,  # noqa: F811
    tmp_path: Path,
    config: Path,  # noqa: F811
) -> None:
    prom = tmp_path / "textfile" / "auditor.prom"
    first = nightly(sandbox, tmp_path, config, "--dry-run", "--metrics-textfile", str(prom))
    assert first.returncode == 1, first.stderr
    doc = valid_results(tmp_path / "out" / "results.json")
    assert doc["command"] == "run"
    assert doc["exit_code"] == 1
    assert doc["status"] == "findings"
    assert doc["as_of"] == "2024-05-01T06:00:00Z"
    assert doc["incomplete"] is False
    assert doc["run_id"] in first.stderr
    # Counts agree with findings.csv, the human-facing export of the same audit.
    with (tmp_path / "out" / "findings.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_rule = doc["counts"]["by_rule"]
    active = [r for r in by_rule if not r["snoozed"] and r["state"] != "resolved"]
    assert sum(r["count"] for r in active) == doc["counts"]["findings"] > 0
    assert doc["counts"]["findings"] == len(rows)
    for row in active:
        same = [
            r
            for r in rows
            if (r["rule"], r["severity"], r["state"])
            == (row["rule"], row["severity"], row["state"])
        ]
        assert len(same) == row["count"], row
    collection = doc["collection"]
    assert collection["complete"] is True
    assert collection["requests"] > 0
    assert collection["companies_collected"] == doc["snapshot"]["companies"] == 6
    assert collection["companies_with_errors"] >= 1  # one fixture company always fails
    assert set(doc["stages"]) == {"collect", "audit", "deliver"}
    assert doc["paths"]["report_html"] == str(tmp_path / "out" / "report.html")
    assert Path(doc["paths"]["findings_csv"]).is_file()

    # The textfile: Prometheus' parser reads it; it agrees with results.json.
    assert not list(prom.parent.glob(".*"))  # no temporary file left behind
    m = metrics_of(prom.read_text("utf-8"))
    for row in active:
        labels = (("rule", row["rule"]), ("severity", row["severity"]), ("state", row["state"]))
        assert m["auditor_findings"][labels] == row["count"]
    assert m["auditor_requests"][()] == collection["requests"]
    assert m["auditor_companies_collected"][()] == 6
    assert m["auditor_companies_not_collected"][()] == collection["companies_with_errors"]
    assert m["auditor_rate_limited_responses"][()] == collection["rate_limited"]
    assert set(m["auditor_stage_duration_seconds"]) == {
        (("stage", s),) for s in ("collect", "audit", "deliver")
    }
    assert m["auditor_last_run_exit_code"][()] == 1
    success = m[LAST_SUCCESS][()]
    assert success == m["auditor_last_run_timestamp_seconds"][()]
    assert abs(success - time.time()) < 120  # wall clock, not the sandbox's as_of

    # A failed run (wrong key): exit 2, results.json says so, the last success is kept.
    wrong = nightly(
        sandbox,
        tmp_path,
        config,
        "--dry-run",
        "--metrics-textfile",
        str(prom),
        api_key="nope",
        as_of="2024-05-02T06:00:00Z",
    )
    assert wrong.returncode == 2
    failed = valid_results(tmp_path / "out" / "results.json")
    assert failed["exit_code"] == 2
    assert failed["status"] == "failed"
    assert "refused the API key" in failed["reason"]
    assert failed["snapshot"] is None
    assert failed["collection"] is None
    assert "nope" not in (tmp_path / "out" / "results.json").read_text("utf-8")
    after = metrics_of(prom.read_text("utf-8"))
    assert after["auditor_last_run_exit_code"][()] == 2
    assert after[LAST_SUCCESS][()] == success
    assert after["auditor_last_run_timestamp_seconds"][()] >= success
    assert "auditor_findings" not in after  # no audit ran: no findings to report

    # auditor audit writes its own results.json for the stored night.
    audit = run_cli(
        "audit",
        "--store",
        str(tmp_path / "store"),
        "--out",
        str(tmp_path / "audit"),
        "--as-of",
        "2024-05-01T06:00:00Z",
        "--config",
        str(config),
    )
    assert audit.returncode == 0, audit.stderr
    audited = valid_results(tmp_path / "audit" / "results.json")
    assert audited["command"] == "audit"
    assert audited["collection"] is None
    assert audited["snapshot"] == doc["snapshot"]
    assert audited["counts"] == doc["counts"]


def test_a_failed_audit_writes_results_json(tmp_path: Path) -> None:
    proc = run_cli("audit", "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    doc = valid_results(tmp_path / "out" / "results.json")
    assert doc["exit_code"] == 2
    assert doc["command"] == "audit"
    assert doc["reason"].startswith("audit failed:")


class _Receiver(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str, bytes]]] = []

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str, str, bytes]]]]:
    seen: ClassVar[list[tuple[str, str, str, bytes]]] = []
    handler = type("Receiver", (_Receiver,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_metrics_are_pushed_to_a_pushgateway_with_its_credentials_kept_secret(
    sandbox: SandboxServer,  # noqa: F811
    tmp_path: Path,
    config: Path,  # noqa: F811
    pushgateway: tuple[str, list[tuple[str, str, str, bytes]]],
) -> None:
    host, seen = pushgateway
    url = f"http://pusher:s3cret-pw@{host}"
    proc = nightly(
        sandbox,
        tmp_path,
        config,
        "--dry-run",
        "--log-format",
        "json",
        env={"AUDITOR_PUSHGATEWAY_URL": url},
    )
    assert proc.returncode == 1, proc.stderr
    assert len(seen) == 1
    method, path, auth, body = seen[0]
    assert method == "POST"  # replaces same-named metrics, keeps the others
    assert path == f"/metrics/job/{METRICS_JOB}"
    assert auth.startswith("Basic ")
    m = metrics_of(body.decode())
    assert m["auditor_last_run_exit_code"][()] == 1
    assert LAST_SUCCESS in m
    assert "s3cret-pw" not in proc.stderr + proc.stdout
    assert url not in proc.stderr
    assert "metrics pushed" in proc.stderr

    # A failed run pushes no last-success time: the Pushgateway keeps the one it has.
    wrong = nightly(
        sandbox,
        tmp_path,
        config,
        "--dry-run",
        env={"AUDITOR_PUSHGATEWAY_URL": url},
        api_key="nope",
        as_of="2024-05-02T06:00:00Z",
    )
    assert wrong.returncode == 2
    assert len(seen) == 2
    failed = metrics_of(seen[1][3].decode())
    assert failed["auditor_last_run_exit_code"][()] == 2
    assert LAST_SUCCESS not in failed


def test_an_unreachable_pushgateway_is_logged_and_does_not_change_the_exit_code(
    sandbox: SandboxServer,  # noqa: F811
    tmp_path: Path,
    config: Path,  # noqa: F811
) -> None:
    url = "http://user:hunter2@127.0.0.1:9"  # discard port: nothing listens
    proc = nightly(sandbox, tmp_path, config, "--dry-run", env={"AUDITOR_PUSHGATEWAY_URL": url})
    assert proc.returncode == 1, proc.stderr
    assert "could not push the metrics" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_shards_from_job_completion_index(
    sandbox: SandboxServer,  # noqa: F811
    tmp_path: Path,
    config: Path,  # noqa: F811
) -> None:
    """``--shards N`` takes K from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job): the shard
    that completes the night audits and writes results.json, the other its shard file."""
    codes = []
    for index in ("0", "1"):
        proc = nightly(
            sandbox, tmp_path, config, "--dry-run", "--shards", "2",
            env={"JOB_COMPLETION_INDEX": index},
        )  # fmt: skip
        codes.append(proc.returncode)
        assert proc.returncode in (0, 1), proc.stderr
    assert codes[0] == 0
    shard0 = valid_results(tmp_path / "out" / "results.shard-0-of-2.json")
    assert shard0["collection"]["shard"] == {"index": 0, "count": 2}
    assert shard0["collection"]["complete"] is False
    assert shard0["snapshot"] is None
    night = valid_results(tmp_path / "out" / "results.json")
    assert night["collection"]["shard"] == {"index": 1, "count": 2}
    assert night["snapshot"]["companies"] == 6
    assert night["exit_code"] == codes[1]


def test_shard_options_refuse_contradictions(tmp_path: Path) -> None:
    both = run_cli("run", "--shard", "0/2", "--shards", "2", api_key="k")
    assert both.returncode == 2
    assert "not both" in both.stderr
    alone = run_cli("run", "--shards", "2", api_key="k", env={"JOB_COMPLETION_INDEX": ""})
    assert alone.returncode == 2
    assert "--shard-index" in alone.stderr
    out_of_range = run_cli("run", "--shards", "2", "--shard-index", "2", api_key="k")
    assert out_of_range.returncode == 2


def test_metrics_settings_order_and_secret() -> None:
    s = metrics_settings(
        textfile=None,
        file_textfile="/from/file.prom",
        file_pushgateway_url="http://file:9091",
        env={"AUDITOR_PUSHGATEWAY_URL": "http://u:topsecret@env:9091"},
    )
    assert s.textfile == Path("/from/file.prom")
    assert s.pushgateway_url == "http://u:topsecret@env:9091"
    from auditor.logs import redact

    assert "topsecret" not in redact("pushing to http://u:topsecret@env:9091 failed")
    cli = metrics_settings(
        textfile=Path("cli.prom"),
        file_textfile="/from/file.prom",
        file_pushgateway_url=None,
        env={"AUDITOR_METRICS_TEXTFILE": "env.prom"},
    )
    assert cli.textfile == Path("cli.prom")
    assert not metrics_settings(
        textfile=None, file_textfile=None, file_pushgateway_url=None, env={}
    ).enabled


def test_a_bad_pushgateway_url_in_the_config_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    from auditor.config import ConfigError, load_config

    path = tmp_path / "auditor.toml"
    path.write_text('[run]\npushgateway_url = "ftp://u:pa55word@gw"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value) + " ".join(getattr(info.value, "problems", ()))
    assert "pushgateway_url" in text
    assert "pa55word" not in text
    good = tmp_path / "good.toml"
    good.write_text(
        '[run]\npushgateway_url = "https://u:pw@gw:9091"\nmetrics_textfile = "m.prom"\n',
        encoding="utf-8",
    )
    run = load_config(good).run
    assert run.metrics_textfile == "m.prom"
    assert run.pushgateway_url == "https://u:pw@gw:9091"


def test_a_run_that_fails_after_collecting_reports_what_it_collected(
    tmp_path: Path,
    config: Path,  # noqa: F811
    fleet_now: Any,
) -> None:
    from auditor.sandbox import SandboxOptions, load_fleet

    fixtures = Path(__file__).parent / "fixtures"
    data = load_fleet(fixtures / "fleet_small.json").to_dict()
    for entry in data["companies"]:
        entry["dataStatusError"] = {"statusCode": 500, "error": "boom", "canBeRetried": "false"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    prom = tmp_path / "auditor.prom"
    with SandboxServer(load_fleet(broken), SandboxOptions(clock=lambda: fleet_now)) as server:
        proc = nightly(server, tmp_path, config, "--dry-run", "--metrics-textfile", str(prom))
    assert proc.returncode == 2, proc.stderr
    doc = valid_results(tmp_path / "out" / "results.json")
    assert "no company reachable" in doc["reason"]
    assert doc["collection"]["companies_with_errors"] == 6
    assert doc["collection"]["requests"] > 0
    assert set(doc["stages"]) == {"collect"}
    m = metrics_of(prom.read_text("utf-8"))
    assert m["auditor_companies_not_collected"][()] == 6
    assert m["auditor_last_run_exit_code"][()] == 2
    assert LAST_SUCCESS not in m  # never succeeded: absent, so absent() alerts can fire
