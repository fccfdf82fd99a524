"""Issue 12 items 7-9: corruption is an error (exit 2, naming the file), re-audits never
silently rewrite a night's stored audit, and every kill point of a snapshot write resumes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from auditor import api
from auditor.cli import app
from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.collector import collect_to_store
from auditor.config import AuditConfig
from auditor.nightly import EXIT_RUN_FAILED, RunFailedError, run_nightly
from auditor.pipeline import AuditRefusedError, audit_store, config_hash
from auditor.sandbox import Fleet, SandboxServer, generate_fleet
from auditor.snapshot import FRAME_NAMES, Snapshot
from auditor.store import (
    FindingsConflictError,
    SnapshotNotFoundError,
    StoreCorruptionError,
    _fs,
    complete_stranded,
    list_snapshots,
    load_snapshot,
    write_findings,
    write_snapshot,
)

FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)
FLEET_NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
AT = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
KEYS = {
    "status": ["company_id", "data_type"],
    "companies": ["company_id", "connection_id"],
    "errors": ["company_id", "endpoint", "error"],
    "pull_operations": ["company_id", "dataset_id"],
    "sync_settings": ["company_id", "data_type"],
}


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(12, seed=7, now=FLEET_NOW)


@pytest.fixture(scope="module")
def server(fleet: Fleet) -> Iterator[SandboxServer]:
    with SandboxServer(fleet) as srv:
        yield srv


def _to_store(server: SandboxServer, store: Path, **kwargs: Any) -> Any:
    async def run() -> Any:
        async with CodatClient(
            server.api_key, base_url=server.base_url, retry=FAST, rate_limit=NO_LIMIT
        ) as client:
            kwargs.setdefault("snapshot_at", AT)
            return await collect_to_store(
                client, store, batch_size=4, concurrency=1, progress="off", **kwargs
            )

    return asyncio.run(run())


@pytest.fixture(scope="module")
def two_nights(server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with night-1 (audited) and night-2 (the latest, not audited yet)."""
    store = tmp_path_factory.mktemp("two-nights")
    _to_store(server, store, snapshot_id="night-1", snapshot_at=AT)
    audit_store(store, which="night-1", as_of=AT + timedelta(minutes=5))
    _to_store(server, store, snapshot_id="night-2", snapshot_at=AT + timedelta(days=1))
    return store


@pytest.fixture
def store(two_nights: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(two_nights, copy)
    return copy


def _dir(store: Path, snapshot_id: str) -> Path:
    (path,) = store.glob(f"snapshot_date=*/{snapshot_id}")
    return path


def _stored_audit_bytes(store: Path, snapshot_id: str) -> dict[str, bytes]:
    path = _dir(store, snapshot_id)
    names = ("findings.parquet", "resolved.parquet", "expired_snoozes.parquet", "findings.json")
    return {n: (path / n).read_bytes() for n in names if (path / n).exists()}


def _sorted(snap: Snapshot) -> dict[str, pd.DataFrame]:
    return {
        name: snap.frames()[name]
        .sort_values(KEYS[name], na_position="first")
        .reset_index(drop=True)
        .astype({c: "string" for c in ("company_id", "company_name", "connection_id")
                 if c in snap.frames()[name].columns})
        for name in FRAME_NAMES
    }  # fmt: skip


def _audit_cli(store: Path, out: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["audit", "--store", str(store), "--out", str(out), *args]
    )


# --- item 7: corruption ----------------------------------------------------------------

MANIFEST_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "garbage": lambda b: b"\x8f\x00\xffnot json at all\xfe",
    "truncated": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "list": lambda b: b"[]",
    "no-files": lambda b: json.dumps(
        {k: v for k, v in json.loads(b).items() if k != "files"}
    ).encode(),
    "wrong-type": lambda b: json.dumps({**json.loads(b), "files": "status"}).encode(),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_corrupt_latest_manifest_is_an_error_not_the_previous_night(
    store: Path, tmp_path: Path, damage: str
) -> None:
    manifest = _dir(store, "night-2") / "manifest.json"
    manifest.write_bytes(MANIFEST_DAMAGE[damage](manifest.read_bytes()))
    before = _stored_audit_bytes(store, "night-1")

    with pytest.raises(StoreCorruptionError, match=r"manifest\.json") as err:
        load_snapshot(store, "latest")
    assert err.value.path == manifest
    # Listed (not hidden), so "latest" never falls back to night-1: in no selector.
    assert list_snapshots(store)["snapshot_id"].tolist() == ["night-1", "night-2"]
    for which in ("latest", "night-2", "2024-05-02"):
        with pytest.raises(StoreCorruptionError):
            api.load_snapshot(store, which)
    with pytest.raises(StoreCorruptionError):
        audit_store(store, which="latest", as_of=AT + timedelta(days=1, hours=1))

    result = _audit_cli(store, tmp_path / "out", "--snapshot", "latest",
                        "--as-of", "2024-05-02T08:00:00Z")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert str(manifest) in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    # night-1's stored findings and ledger are untouched.
    assert _stored_audit_bytes(store, "night-1") == before
    # The night before stays readable by id.
    assert load_snapshot(store, "night-1").snapshot_id == "night-1"


def _part(store: Path, snapshot_id: str, frame: str) -> Path:
    return sorted((_dir(store, snapshot_id) / frame).glob("part-*.parquet"))[0]


def _drop_checksums(store: Path, snapshot_id: str) -> None:
    manifest = _dir(store, snapshot_id) / "manifest.json"
    doc = json.loads(manifest.read_bytes())
    del doc["checksums"]
    manifest.write_text(json.dumps(doc))


@pytest.mark.parametrize("legacy", [False, True], ids=["checksummed", "old-manifest"])
def test_truncated_part_is_an_error_naming_it(store: Path, tmp_path: Path, legacy: bool) -> None:
    if legacy:
        _drop_checksums(store, "night-2")
    part = _part(store, "night-2", "status")
    part.write_bytes(part.read_bytes()[:-200])
    with pytest.raises(StoreCorruptionError, match=part.name) as err:
        load_snapshot(store, "night-2")
    assert err.value.path == part
    result = _audit_cli(store, tmp_path / "out", "--as-of", "2024-05-02T08:00:00Z")
    assert result.exit_code == 2, result.output
    assert str(part) in result.output
    assert "Traceback" not in result.output


def _silent_flip(data: bytes) -> bytes:
    """``data`` with one bit flipped such that Parquet still reads it, with other values."""
    original = pq.read_table(io.BytesIO(data))
    for pos in range(4, len(data) - 8):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[pos] ^= 1 << bit
            try:
                table = pq.read_table(io.BytesIO(bytes(flipped)))
            except Exception:  # an unreadable flip: try the next byte
                break
            if not table.equals(original):
                return bytes(flipped)
    raise AssertionError("no silent one-bit flip found")  # pragma: no cover


def test_one_flipped_bit_in_a_companies_part_is_caught(store: Path) -> None:
    part = _part(store, "night-2", "companies")
    part.write_bytes(_silent_flip(part.read_bytes()))
    pq.read_table(part)  # plain Parquet readers do not notice...
    with pytest.raises(StoreCorruptionError, match="sha256") as err:
        load_snapshot(store, "night-2")
    assert err.value.path == part


def test_missing_part_is_an_error(store: Path) -> None:
    part = _part(store, "night-2", "status")
    part.unlink()
    with pytest.raises(StoreCorruptionError, match="missing"):
        load_snapshot(store, "night-2")


def test_checksums_recorded_and_old_manifests_stay_readable(store: Path) -> None:
    path = _dir(store, "night-2")
    manifest = json.loads((path / "manifest.json").read_text())
    listed = [rel for rels in manifest["files"].values() for rel in rels]
    assert sorted(manifest["checksums"]) == sorted(listed)
    for rel in listed:
        entry = manifest["checksums"][rel]
        assert entry["size"] == (path / rel).stat().st_size
        assert len(entry["sha256"]) == 64
    shard = json.loads((path / "_shards" / "s0of1.json").read_text())
    assert shard["checksums"] == manifest["checksums"]
    new = load_snapshot(store, "night-2")
    _drop_checksums(store, "night-2")
    old = load_snapshot(store, "night-2")
    for name in FRAME_NAMES:
        pd.testing.assert_frame_equal(new.frames()[name], old.frames()[name])


def test_corrupt_part_blocks_the_manifest(server: SandboxServer, tmp_path: Path) -> None:
    """A part altered between its shard record and the manifest: no manifest is written."""
    _to_store(server, tmp_path, snapshot_id="n", shard=(0, 2))
    part = _part(tmp_path, "n", "status")
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(StoreCorruptionError, match=part.name):
        _to_store(server, tmp_path, snapshot_id="n", shard=(1, 2))
    assert not (_dir(tmp_path, "n") / "manifest.json").exists()


def test_snapshot_and_run_commands_exit_2_on_corruption(
    server: SandboxServer, tmp_path: Path
) -> None:
    _to_store(server, tmp_path, snapshot_id="n", shard=(0, 2))
    record = _dir(tmp_path, "n") / "_shards" / "s0of2.json"
    record.write_text('{"files": ')
    env = {"CODAT_API_KEY": server.api_key}
    result = CliRunner().invoke(
        app,
        ["snapshot", "--base-url", server.base_url, "--store", str(tmp_path), "--snapshot-id",
         "n", "--shard", "1/2", "--rate-limit", "0", "--progress", "off"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert str(record) in result.output
    assert "Traceback" not in result.output


def test_damaged_stored_findings_are_corruption(store: Path, tmp_path: Path) -> None:
    """The ledger's input (night-1's findings) is checksummed too (findings.json)."""
    findings = _dir(store, "night-1") / "findings.parquet"
    meta = json.loads((_dir(store, "night-1") / "findings.json").read_text())
    assert meta["checksums"]["findings.parquet"]["size"] == findings.stat().st_size
    findings.write_bytes(_silent_flip(findings.read_bytes()))
    result = _audit_cli(store, tmp_path / "out", "--as-of", "2024-05-02T08:00:00Z")
    assert result.exit_code == 2, result.output
    assert str(findings) in result.output
    assert "Traceback" not in result.output
    assert not (_dir(store, "night-2") / "findings.json").exists()


def test_nightly_run_fails_with_exit_2_on_corruption(
    server: SandboxServer, tmp_path: Path
) -> None:
    first = _to_store(server, tmp_path / "store", shard=(0, 2))
    record = first.path / "_shards" / "s0of2.json"
    record.write_text("[]")
    with pytest.raises(RunFailedError, match=r"s0of2\.json") as err:
        run_nightly(
            api_key=server.api_key,
            base_url=server.base_url,
            store=tmp_path / "store",
            out_dir=tmp_path / "out",
            config=AuditConfig(),
            as_of=AT,
            run_id="t",
            dry_run=True,
            shard=(1, 2),
            rate_limit=None,
            retry=FAST,
            progress="off",
        )
    assert "store corruption" in str(err.value)
    assert EXIT_RUN_FAILED == 2


# --- item 8: re-audits -----------------------------------------------------------------


def test_as_of_before_the_snapshot_is_refused(store: Path, tmp_path: Path) -> None:
    before = _stored_audit_bytes(store, "night-1")
    with pytest.raises(AuditRefusedError, match="before snapshot night-1"):
        audit_store(store, which="night-1", as_of=AT - timedelta(hours=1))
    result = _audit_cli(store, tmp_path / "out", "--snapshot", "night-1",
                        "--as-of", "2024-05-01T05:00:00Z")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "negative" in result.output
    assert _stored_audit_bytes(store, "night-1") == before


def test_re_audit_with_another_config_or_as_of_keeps_the_nights_audit(
    store: Path, tmp_path: Path
) -> None:
    before = _stored_audit_bytes(store, "night-1")
    strict = tmp_path / "strict.toml"
    strict.write_text("[rules.stale]\nwarn_after = 1\nerror_after = 2\n")
    for i, args in enumerate(
        (
            ["--config", str(strict), "--as-of", "2024-05-01T06:35:00Z"],
            ["--as-of", "2024-05-03T00:00:00Z"],
        )
    ):
        out = tmp_path / f"out-{i}"
        result = _audit_cli(store, out, "--snapshot", "night-1", *args)
        assert result.exit_code in (0, 1), result.output
        assert "not stored" in result.output
        assert (out / "report.html").is_file()  # the reports are still written
        assert _stored_audit_bytes(store, "night-1") == before

    # The same audit as the night's own is idempotent: allowed, same content.
    run = audit_store(store, which="night-1", as_of=AT + timedelta(minutes=5))
    assert run.stored
    meta = json.loads(_stored_audit_bytes(store, "night-1")["findings.json"])
    assert meta["config_hash"] == config_hash(AuditConfig())
    assert meta["as_of"] == (AT + timedelta(minutes=5)).isoformat()

    # Explicitly asked: replaced, and the replaced audit is recorded.
    forced = _audit_cli(store, tmp_path / "forced", "--snapshot", "night-1",
                        "--as-of", "2024-05-03T00:00:00Z", "--overwrite")  # fmt: skip
    assert forced.exit_code in (0, 1), forced.output
    assert "not stored" not in forced.output
    meta = json.loads(_stored_audit_bytes(store, "night-1")["findings.json"])
    assert meta["as_of"] == "2024-05-03T00:00:00+00:00"
    assert meta["replaces"]["as_of"] == (AT + timedelta(minutes=5)).isoformat()


def test_write_findings_refuses_to_replace_another_audit(store: Path) -> None:
    run = audit_store(store, which="night-2", as_of=AT + timedelta(days=1, minutes=5))
    assert run.stored
    later = replace(run.result, as_of=run.result.as_of + timedelta(hours=1))
    with pytest.raises(FindingsConflictError, match="already has its own audit"):
        write_findings(store, later, config_hash=config_hash(AuditConfig()))
    write_findings(store, later, config_hash=config_hash(AuditConfig()), overwrite=True)


# --- item 9: kill points ---------------------------------------------------------------


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException: no `except Exception`)."""


def _commits(
    server: SandboxServer,
    tmp_path: Path,
    prepare: Callable[[Path], object] | None = None,
    **kwargs: Any,
) -> list[str]:
    """The files an uninterrupted write commits (each an os.replace), in order."""
    seen: list[str] = []
    real = os.replace
    store = tmp_path / "count"
    if prepare is not None:
        prepare(store)

    def spy(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        if str(dst).startswith(str(store)):
            seen.append(Path(dst).name)
        real(src, dst, *a, **kw)

    orig = _fs.os.replace
    _fs.os.replace = spy  # type: ignore[assignment]
    try:
        _to_store(server, store, **kwargs)
    finally:
        _fs.os.replace = orig  # type: ignore[assignment]
    return seen


def _kill_at(n: int, after: bool, store: Path) -> Callable[..., None]:
    real = os.replace
    count = [0]

    def crashing(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        if not str(dst).startswith(str(store)):
            real(src, dst, *a, **kw)
            return
        count[0] += 1
        if count[0] == n and not after:
            raise Killed  # the temporary file is written, the rename never happens
        real(src, dst, *a, **kw)
        if count[0] == n:
            raise Killed  # the file is in place, nothing after it happens

    return crashing


def _killed_run(
    server: SandboxServer, store: Path, n: int, after: bool, **kwargs: Any
) -> None:
    """Run ``collect_to_store`` and kill it at its ``n``-th commit (it must die there)."""
    orig = _fs.os.replace
    _fs.os.replace = _kill_at(n, after, store)  # type: ignore[assignment]
    died: BaseException | None = None
    try:
        _to_store(server, store, **kwargs)
    except BaseException as exc:  # Killed, maybe wrapped by the collector's task group
        died = exc
    finally:
        _fs.os.replace = orig  # type: ignore[assignment]
    assert died is not None, f"the run never reached commit {n}"
    if not isinstance(died, Killed):
        assert "Killed" in repr(died), repr(died)


@pytest.fixture(scope="module")
def uninterrupted(server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    store = tmp_path_factory.mktemp("uninterrupted")
    _to_store(server, store, snapshot_id="tonight")
    return load_snapshot(store, "tonight")


def _check_same(store: Path, fleet: Fleet, expected: Snapshot) -> None:
    got = load_snapshot(store, "tonight")
    assert set(got.companies["company_id"].astype(str)) == {r.id for r in fleet}
    assert not got.companies.duplicated(["company_id", "connection_id"]).any()
    assert not got.status.duplicated(["company_id", "data_type"]).any()
    want, have = _sorted(expected), _sorted(got)
    for name in FRAME_NAMES:
        pd.testing.assert_frame_equal(want[name], have[name], obj=name)


@pytest.mark.slow
def test_every_kill_point_of_a_snapshot_write_resumes(
    server: SandboxServer, fleet: Fleet, uninterrupted: Snapshot, tmp_path: Path
) -> None:
    """Killed before and after each commit in turn, then resumed: `--resume` and
    `--snapshot-id` alternate, both are tried at the last three commits (where they differ)."""
    commits = _commits(server, tmp_path, snapshot_id="tonight")
    # _run.json, the parts of 3 batches, profile.parquet, the shard record, the manifest.
    assert commits[0] == "_run.json"
    assert commits[-3:] == ["profile.parquet", "s0of1.json", "manifest.json"]
    tried = 0
    cases = [
        (n, after, how)
        for n in range(1, len(commits) + 1)
        for after in (False, True)
        for how in ("resume", "snapshot-id")
        if n > len(commits) - 3 or (n + after) % 2 == (how == "resume")
    ]
    for n, after, how in cases:
        store = tmp_path / f"kill-{n}-{after}-{how}"
        _killed_run(server, store, n, after, snapshot_id="tonight")
        where = f"kill {'after' if after else 'before'} commit {n} ({commits[n - 1]})"
        if not list(store.glob("*/tonight/manifest.json")):
            with pytest.raises(SnapshotNotFoundError):
                load_snapshot(store, "latest")
            resume = {"resume": True} if how == "resume" else {"snapshot_id": "tonight"}
            run = _to_store(server, store, **resume)
            assert run.complete, where
        try:
            _check_same(store, fleet, uninterrupted)
        except AssertionError as exc:  # pragma: no cover - names the kill point
            raise AssertionError(f"{where}: {exc}") from exc
        tried += 1
    assert tried == 2 * len(commits) + 6


@pytest.mark.slow
def test_every_kill_point_of_the_last_shard_resumes(
    server: SandboxServer, fleet: Fleet, uninterrupted: Snapshot, tmp_path: Path
) -> None:
    """Sharded: shard 0 finished; shard 1 killed at each commit; either shard resumes it."""

    def shard_0(store: Path) -> object:
        return _to_store(server, store, snapshot_id="tonight", shard=(0, 2))

    commits = _commits(server, tmp_path, shard_0, snapshot_id="tonight", shard=(1, 2))
    assert commits[-2:] == ["s1of2.json", "manifest.json"]
    for n in range(1, len(commits) + 1):
        for after in (False, True):
            store = tmp_path / f"kill-{n}-{after}"
            shard_0(store)
            _killed_run(server, store, n, after, snapshot_id="tonight", shard=(1, 2))
            if not list(store.glob("*/tonight/manifest.json")):
                done = list(store.glob("*/tonight/_shards/s1of2.json"))
                # Once shard 1 has its record, shard 0's run completes the night too.
                again = (0, 2) if done else (1, 2)
                assert _to_store(server, store, snapshot_id="tonight", shard=again).complete
            _check_same(store, fleet, uninterrupted)


def test_stranded_before_manifest_resumes_from_the_cli(
    server: SandboxServer, tmp_path: Path
) -> None:
    """The reported case: SIGKILL after _shards/s0of1.json, before manifest.json."""
    _to_store(server, tmp_path / "done", snapshot_id="tonight")
    env = {"CODAT_API_KEY": server.api_key}
    base = ["snapshot", "--base-url", server.base_url, "--rate-limit", "0", "--progress", "off"]
    for how in (["--resume"], ["--snapshot-id", "tonight"]):
        store = tmp_path / how[0].strip("-")
        shutil.copytree(tmp_path / "done", store)
        (_dir(store, "tonight") / "manifest.json").unlink()  # exactly the killed state
        refused = _audit_cli(store, tmp_path / "out", "--snapshot", "tonight",
                             "--as-of", "2024-05-01T07:00:00Z")  # fmt: skip
        assert refused.exit_code == 2
        assert "not complete" in refused.output
        result = CliRunner().invoke(app, [*base, "--store", str(store), *how], env=env)
        assert result.exit_code == 0, result.output
        assert "complete" in result.output
        assert load_snapshot(store, "latest").snapshot_id == "tonight"
        ok = _audit_cli(store, tmp_path / "out", "--snapshot", "tonight",
                        "--as-of", "2024-05-01T07:00:00Z")  # fmt: skip
        assert ok.exit_code in (0, 1), ok.output


def test_the_next_night_completes_a_stranded_one(server: SandboxServer, tmp_path: Path) -> None:
    _to_store(server, tmp_path, snapshot_id="night-1")
    (_dir(tmp_path, "night-1") / "manifest.json").unlink()
    assert complete_stranded(tmp_path, "other") == []
    _to_store(server, tmp_path, snapshot_id="night-2", snapshot_at=AT + timedelta(days=1))
    assert list_snapshots(tmp_path, include_incomplete=False)["snapshot_id"].tolist() == [
        "night-1", "night-2"
    ]  # fmt: skip
    assert complete_stranded(tmp_path) == []  # idempotent
    assert load_snapshot(tmp_path, "night-1").snapshot_id == "night-1"


def test_write_snapshot_round_trip_still_checks(tmp_path: Path, uninterrupted: Snapshot) -> None:
    path = write_snapshot(tmp_path, replace(uninterrupted, snapshot_id="copy"))
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["checksums"]) == {r for rs in manifest["files"].values() for r in rs}
