"""``--store s3://bucket/prefix`` against a real S3-compatible server on loopback (moto in
server mode on 127.0.0.1, a random port): the nightly run end to end, a ``kill -9`` mid-snapshot
and its resume, the lock refusing a second writer, integrity checks and a DuckDB query over
``s3://``. Endpoint and credentials come only from the standard AWS variables."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import filelock
import pytest
import s3fs
from click.testing import Result
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from auditor.cli import app
from auditor.logs import redact
from auditor.sandbox import Fleet, SandboxOptions, SandboxServer, generate_fleet, load_fleet
from auditor.store import (
    SnapshotNotFoundError,
    SnapshotWriter,
    StoreCorruptionError,
    list_snapshots,
    load_findings,
    load_snapshot,
    prune,
    store_root,
)
from auditor.store._lock import LOCK_TTL_ENV, LockHeldError, ObjectLock, store_lock

FIXTURES = Path(__file__).parent / "fixtures"
AS_OF = "2024-05-01T06:00:00Z"
BUCKET = "auditor-test"
#: A made-up secret: it must never appear in any output.
SECRET = "moto-secret-key-9f8e7d6c5b4a"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 (random port), the AWS_* variables that point at it,
    and one bucket."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "moto-access-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(key, raising=False)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(use_listings_cache=False)
        fs.mkdir(BUCKET)
        yield env
    server.stop()
    s3fs.S3FileSystem.clear_instance_cache()


def _fs() -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(use_listings_cache=False)


def _run_cli(*args: str, env: dict[str, str]) -> Result:
    """The real CLI, in this process (a subprocess costs seconds of imports per call)."""
    clean = {k: None for k in os.environ if k.startswith(("SMTP_", "CODAT_"))}
    return CliRunner().invoke(app, list(args), env={**clean, **env}, catch_exceptions=False)


@pytest.fixture
def sandbox(fleet_now: Any) -> Iterator[SandboxServer]:
    fleet = load_fleet(FIXTURES / "fleet_small.json")
    server = SandboxServer(fleet, SandboxOptions(clock=lambda: fleet_now))
    server.start()
    yield server
    server.close()


def test_nightly_run_end_to_end_on_s3(
    s3: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    """``auditor run --store s3://...``: snapshot, audit, findings + ledger and reports, with
    nothing but the AWS_* variables; then the night is read back from the bucket."""
    url = f"s3://{BUCKET}/e2e/store"
    config = tmp_path / "auditor.toml"
    config.write_text("[run]\nmax_attempts = 2\n", encoding="utf-8")
    env = {**s3, "CODAT_API_KEY": sandbox.api_key}
    common = ("--config", str(config), "--store", url, "--base-url", sandbox.base_url)
    first = _run_cli(
        "run", *common, "--out", str(tmp_path / "out"), "--as-of", AS_OF,
        "--progress", "off", "--dry-run", env=env,
    )  # fmt: skip
    assert first.exit_code in (0, 1), first.output
    assert (tmp_path / "out" / "report.html").is_file()
    assert SECRET not in first.output
    assert sandbox.api_key not in first.output

    fs = _fs()
    keys = fs.find(f"{BUCKET}/e2e/store")
    assert not [k for k in keys if k.endswith(".tmp")], "no temporary objects on S3"
    assert not [k for k in keys if ".auditor.lock" in k or "/.lock-" in k], "locks released"
    snaps = list_snapshots(url)
    assert len(snaps) == 1
    assert bool(snaps["complete"].iloc[0])
    assert snaps["path"].iloc[0].startswith(url + "/snapshot_date=2024-05-01/")
    night = load_snapshot(url)
    assert len(night.companies) == len(load_fleet(FIXTURES / "fleet_small.json"))
    findings = load_findings(url)
    assert findings is not None
    assert len(findings) > 0

    # A second night on the same bucket: the ledger reads the first night's findings there.
    second = _run_cli(
        "run", *common, "--out", str(tmp_path / "out2"), "--as-of", "2024-05-01T07:00:00Z",
        "--progress", "off", "--dry-run", env=env,
    )  # fmt: skip
    assert second.exit_code in (0, 1), second.output
    latest = load_findings(url)
    assert latest is not None
    assert set(latest["state"].astype(str)) <= {"ongoing", "new", "regressed"}
    assert "ongoing" in set(latest["state"].astype(str))
    # `auditor audit` on its own reads the night from the bucket and writes the reports.
    audited = _run_cli(
        "audit", "--store", url, "--snapshot", "previous", "--out", str(tmp_path / "out3"),
        env=env,
    )  # fmt: skip
    assert audited.exit_code in (0, 1), audited.output
    assert (tmp_path / "out3" / "report.html").is_file()
    listed = _run_cli("snapshots", "--store", url, env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("2024-05-01") >= 2
    # Each audited night shows its findings count, read from its findings.json on S3.
    night_rows = [line.split() for line in listed.output.splitlines() if "2024-05-0" in line]
    assert night_rows, listed.output
    assert all(row[-1] != "-" for row in night_rows), listed.output

    # DuckDB over s3:// (fsspec filesystem registered with DuckDB; no httpfs download):
    # the night's status files, exactly as its manifest lists them.
    manifest = json.loads(fs.cat_file(f"{snaps['path'].iloc[0][5:]}/manifest.json"))
    files = [f"{snaps['path'].iloc[0]}/{rel}" for rel in manifest["files"]["status"]]
    con = duckdb.connect()
    con.register_filesystem(fs)
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()
    assert rows is not None
    assert rows[0] == manifest["rows"]["status"]
    by_night = con.execute(
        f"SELECT snapshot_date, count(*) FROM read_parquet('{url}/*/*/findings.parquet', "
        "hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    assert sum(n for _, n in by_night) >= len(latest)


def _committed(prefix: str, snapshot_id: str) -> int:
    return len(_fs().glob(f"{prefix}/snapshot_date=*/{snapshot_id}/companies/part-*.parquet"))


def test_kill_minus_nine_mid_snapshot_then_resume_on_s3(s3: dict[str, str], fleet_now: Any) -> None:
    """A snapshot killed by SIGKILL mid-run leaves no visible night (no manifest, readers see
    nothing new) and a stale lease; once it lapses, ``--resume`` completes the night with
    every company exactly once."""
    generated = generate_fleet(120, seed=9, now=fleet_now)
    fleet = Fleet([r for r in generated if r.data_status_error is None], now=fleet_now)
    prefix = f"{BUCKET}/kill/store"
    url = f"s3://{prefix}"
    env = {**s3, LOCK_TTL_ENV: "1"}
    with SandboxServer(fleet, SandboxOptions(latency_ms=25)) as server:
        env["CODAT_API_KEY"] = server.api_key
        args = ("snapshot", "--base-url", server.base_url, "--store", url, "--rate-limit", "0",
                "--progress", "off")  # fmt: skip
        full = {**os.environ, **env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditor", *args, "--snapshot-id", "tonight",
             "--batch-size", "10", "--concurrency", "4"],
            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while _committed(prefix, "tonight") < 3:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no batch was written"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        written = _committed(prefix, "tonight")
        assert 3 <= written < len(fleet) // 10, "the run was not killed mid-way"
        # No half night is visible: no manifest, nothing to load, listed as incomplete.
        assert not _fs().glob(f"{prefix}/snapshot_date=*/tonight/manifest.json")
        with pytest.raises(SnapshotNotFoundError):
            load_snapshot(url)
        snaps = list_snapshots(url)
        assert list(snaps["complete"]) == [False]
        # The killed run's lease is still there (it could not release it).
        assert _fs().glob(f"{prefix}/snapshot_date=*/tonight/.lock-s0of1")

        time.sleep(1.2)  # the lease (1 s here, 300 s by default) lapses
        resumed = _run_cli(*args, "--resume", "--concurrency", "8", env=env)
        assert resumed.exit_code == 0, resumed.output
        assert "complete" in resumed.output
        assert SECRET not in resumed.output
    tonight = load_snapshot(url)
    assert tonight.snapshot_id == "tonight"
    assert tonight.meta["meta"]["companies_skipped"] >= 30
    assert set(tonight.companies["company_id"]) == {r.id for r in fleet}
    assert not tonight.companies.duplicated(["company_id", "connection_id"]).any()
    assert not tonight.status.duplicated(["company_id", "data_type"]).any()


def test_object_lock_refuses_a_second_writer_and_is_renewed(s3: dict[str, str]) -> None:
    root = store_root(f"s3://{BUCKET}/locks")
    first = store_lock(root / ".auditor.lock")
    assert isinstance(first, ObjectLock)
    first.ttl = 1.0
    first.acquire(timeout=0)
    try:
        time.sleep(1.6)  # longer than the lease: renewed in the background, never expires
        second = ObjectLock(root / ".auditor.lock", ttl=1.0)
        with pytest.raises(LockHeldError) as held:
            second.acquire(timeout=0)
        assert isinstance(held.value, filelock.Timeout)  # what every caller already catches
        assert "pid" in str(held.value)
        first.check()  # still ours
    finally:
        first.release()
    assert not _fs().exists(f"{BUCKET}/locks/.auditor.lock")
    assert SECRET not in redact(f"signed with {SECRET}")  # registered by store_root
    again = ObjectLock(root / ".auditor.lock", ttl=0.4)
    again.acquire(timeout=0)
    again.release()


def test_expired_lease_is_taken_over_by_one_run_only(s3: dict[str, str]) -> None:
    """A killed holder's lease lapses; of two runs taking it over, the compare-and-swap on
    its ETag lets one win; the old holder, if it was only stalled, finds it lost."""
    path = store_root(f"s3://{BUCKET}/takeover") / ".auditor.lock"
    stalled = ObjectLock(path, ttl=0.3)
    assert stalled._create()  # taken, never renewed: a killed (or frozen) process
    time.sleep(0.4)
    current = ObjectLock(path, ttl=30)._read()
    assert current is not None
    _, stale_etag = current
    b, c = ObjectLock(path, ttl=30), ObjectLock(path, ttl=30)
    b.acquire(timeout=0)  # takes the expired lease over: a PUT conditional on its ETag
    try:
        assert c._replace(stale_etag) is False  # another taker of the same expired version
        with pytest.raises(LockHeldError):
            c.acquire(timeout=0)
    finally:
        b.release()


def test_snapshot_writer_shard_lock_and_manifest_once_on_s3(s3: dict[str, str]) -> None:
    url = f"s3://{BUCKET}/writer"
    at = datetime(2024, 5, 1, 2, tzinfo=UTC)
    writer = SnapshotWriter.open(url, snapshot_id="n1", snapshot_at=at)
    try:
        with pytest.raises(filelock.Timeout):
            SnapshotWriter.open(url, snapshot_id="n1", snapshot_at=at)
    finally:
        writer.close()
    writer = SnapshotWriter.open(url, snapshot_id="n1", snapshot_at=at)
    assert writer.finish({}) is True
    manifest = f"{BUCKET}/writer/snapshot_date=2024-05-01/n1/manifest.json"
    before = _fs().cat_file(manifest)
    from auditor.store._snapshots import _try_complete

    # A second shard completing "at the same time": the first manifest stands, untouched.
    assert _try_complete(writer.path) is True
    assert _fs().cat_file(manifest) == before
    assert list_snapshots(url)["complete"].tolist() == [True]


def test_corruption_and_prune_on_s3(s3: dict[str, str]) -> None:
    from dataclasses import replace

    from auditor.store import write_snapshot
    from auditor.testing.snapshots import synthetic_snapshot

    snap = synthetic_snapshot(20, seed=3)
    url = f"s3://{BUCKET}/corrupt"
    old = write_snapshot(
        url, replace(snap, snapshot_id="old", snapshot_at=datetime(2024, 1, 1, tzinfo=UTC))
    )
    write_snapshot(url, replace(snap, snapshot_id="new"))
    assert load_snapshot(url, "old").snapshot_id == "old"
    part = f"{str(old)[5:]}/status/part-s0of1-00000.parquet"
    fs = _fs()
    data = bytearray(fs.cat_file(part))
    data[len(data) // 2] ^= 0x01
    fs.pipe_file(part, bytes(data))
    with pytest.raises(StoreCorruptionError, match="sha256"):
        load_snapshot(url, "old")
    deleted = prune(url, keep_days=30, as_of=datetime(2024, 5, 2, tzinfo=UTC))
    assert [p.name for p in deleted] == ["old"]
    assert not fs.glob(f"{BUCKET}/corrupt/snapshot_date=2024-01-01*")
    assert list_snapshots(url)["snapshot_id"].tolist() == ["new"]


def test_listener_refuses_an_object_store(s3: dict[str, str]) -> None:
    result = _run_cli("listen", "--store", f"s3://{BUCKET}/events", env=s3)
    assert result.exit_code == 2
    assert "local directory" in result.output


def test_sharded_night_on_s3_completes_with_the_last_shard(
    s3: dict[str, str], sandbox: SandboxServer, fleet_now: Any
) -> None:
    """Two shards (two pods of the Indexed Job) write one night into one prefix; the night
    is invisible until the last shard's manifest, then holds every company once."""
    import asyncio

    from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
    from auditor.collector import collect_to_store

    url = f"s3://{BUCKET}/shards/store"

    async def shard(k: int) -> bool:
        async with CodatClient(
            sandbox.api_key,
            base_url=sandbox.base_url,
            rate_limit=RateLimitPolicy(requests_per_minute=None),
            retry=RetryPolicy(max_attempts=1),
        ) as client:
            run = await collect_to_store(
                client, url, snapshot_at=fleet_now, shard=(k, 2), batch_size=3, progress="off"
            )
        return run.complete

    assert asyncio.run(shard(1)) is False
    with pytest.raises(SnapshotNotFoundError):
        load_snapshot(url)
    assert asyncio.run(shard(0)) is True
    night = load_snapshot(url)
    assert night.meta["shards"] == 2
    fleet = load_fleet(FIXTURES / "fleet_small.json")
    assert set(night.companies["company_id"]) == {r.id for r in fleet}
    assert not night.companies.duplicated(["company_id", "connection_id"]).any()


def test_auditor_run_refuses_while_another_run_holds_the_store(
    s3: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    url = f"s3://{BUCKET}/busy/store"
    holder = ObjectLock(store_root(url) / ".auditor.lock", ttl=30)
    holder.acquire(timeout=0)
    try:
        result = _run_cli(
            "run", "--store", url, "--out", str(tmp_path / "out"), "--base-url",
            sandbox.base_url, "--as-of", AS_OF, "--progress", "off", "--dry-run",
            env={**s3, "CODAT_API_KEY": sandbox.api_key},
        )  # fmt: skip
    finally:
        holder.release()
    assert result.exit_code == 2, result.output
    assert "another run holds the lock" in result.output
    assert sandbox.stats.by_endpoint == {} or sum(sandbox.stats.by_endpoint.values()) == 0
