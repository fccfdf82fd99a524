"""Issue 13, rate limits: a daily quota smaller than the fleet stops the snapshot at once.

docs.codat.io/using-the-api/rate-limits: ``1,000 x (1 + ACCs)`` requests a day, reset at
00:00 UTC, ``X-Rate-Limit-*`` describe that quota, a 429 carries ``Retry-After`` until then.
The sandbox serves both limits (``daily_quota``, ``rate_limit_per_min``); these tests run the
collector and the CLI against it: stop within seconds, exit 2, one message, resumable, and
no company marked not collected for it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from auditor.codat import CodatClient, CodatQuotaExhaustedError, RateLimitPolicy, RetryPolicy
from auditor.collector import collect_to_store
from auditor.sandbox import SANDBOX_API_KEY, SandboxOptions, SandboxServer, generate_fleet
from auditor.store import list_snapshots, load_snapshot

NOON = datetime(2026, 6, 1, 12, tzinfo=UTC)
FLEET = generate_fleet(250, seed=13, now=NOON)
QUOTA = 200
CONCURRENCY = 16


class Clock:
    """Sandbox time under the test's hand (the quota resets when it passes midnight)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def client_for(server: SandboxServer, limits: RateLimitPolicy) -> CodatClient:
    return CodatClient(
        server.api_key,
        base_url=server.base_url,
        rate_limit=limits,
        retry=RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05),
        max_in_flight=CONCURRENCY,
    )


async def test_a_quota_429_stops_every_worker_at_once_and_the_snapshot_resumes(
    tmp_path: Path,
) -> None:
    # Headers not read (as if Codat sent none): the first quota 429 is what stops the run.
    clock = Clock(NOON)
    limits = RateLimitPolicy(requests_per_minute=None, honour_headers=False)
    with SandboxServer(FLEET, SandboxOptions(daily_quota=QUOTA, clock=clock)) as server:
        async with client_for(server, limits) as client:
            with pytest.raises(CodatQuotaExhaustedError) as info:
                await collect_to_store(
                    client,
                    tmp_path,
                    snapshot_at=NOON,
                    progress="off",
                    concurrency=CONCURRENCY,
                    batch_size=10_000,
                )
            stopped = time.monotonic()
        first_429 = server.stats.first_limited["daily-quota"]
        refused = server.stats.limited["daily-quota"]
        served = server.stats.total
        assert info.value.resets_at == datetime(2026, 6, 2, tzinfo=UTC)
        assert "2026-06-02 00:00 UTC" in str(info.value)
        # Within seconds of the first quota 429, and no per-company retries: at most the
        # requests already in flight were refused after it.
        print(f"first quota 429 to stop: {stopped - first_429:.3f} s; {refused} refused")
        assert stopped - first_429 < 2.0
        assert refused <= CONCURRENCY
        snaps = list_snapshots(tmp_path)
        assert len(snaps) == 1
        assert not snaps["complete"].any()  # resumable, never read as a night's snapshot
        # The companies collected before the stop were kept (flushed), not asked again.
        clock.now = NOON + timedelta(hours=12, seconds=1)  # the sandbox's midnight passed
        async with client_for(server, limits) as client:
            resumed = await collect_to_store(
                client, tmp_path, resume=True, progress="off", concurrency=CONCURRENCY
            )
        assert resumed.complete
        assert resumed.companies_skipped > 0
        assert resumed.companies_skipped + resumed.companies_collected == len(FLEET)
        assert server.stats.total - served < QUOTA  # the resume fitted in one day's quota
    complete = list_snapshots(tmp_path, include_incomplete=False)
    assert complete["companies"].tolist() == [len(FLEET)]
    snap = load_snapshot(tmp_path)
    assert not (snap.errors["status_code"] == 429).any()  # no company "not collected" for it


async def test_the_client_stops_at_the_reserve_without_a_single_429(tmp_path: Path) -> None:
    limits = RateLimitPolicy(requests_per_minute=None, quota_reserve=0.10)
    with SandboxServer(FLEET, SandboxOptions(daily_quota=QUOTA, clock=Clock(NOON))) as server:
        async with client_for(server, limits) as client:
            with pytest.raises(CodatQuotaExhaustedError) as info:
                await collect_to_store(
                    client, tmp_path, snapshot_at=NOON, progress="off", concurrency=CONCURRENCY
                )
        assert 429 not in server.stats.by_status
        assert server.stats.total <= QUOTA - QUOTA // 10  # the 10 % reserve is untouched
    assert info.value.status_code is None
    assert "reserve" in str(info.value)
    assert not list_snapshots(tmp_path)["complete"].any()


def _drain(base_url: str) -> float:
    """Spend what is left of the quota, as the customer's own application would; the
    monotonic time of the first quota 429."""
    headers = {"Authorization": "Basic " + base64.b64encode(SANDBOX_API_KEY.encode()).decode()}
    with httpx.Client(base_url=base_url, headers=headers, timeout=5.0) as c:
        while True:
            response = c.get("/profile/syncSettings")
            if response.status_code == 429:
                return time.monotonic()


def test_the_snapshot_command_exits_2_with_one_message_when_the_quota_runs_out(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "CODAT_", "AUDITOR_"))}
    env |= {"CODAT_API_KEY": SANDBOX_API_KEY, "AUDITOR_QUOTA_RESERVE": "0"}
    clock = Clock(NOON)
    options = SandboxOptions(daily_quota=400, clock=clock)
    with SandboxServer(FLEET, options) as server:
        args = ["snapshot", "--store", str(store), "--base-url", server.base_url]
        # 1,200 a minute: the run lasts long enough for the customer's app to spend the rest.
        args += ["--progress", "off", "--concurrency", "8", "--rate-limit", "1200"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditor", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while server.stats.by_endpoint.get("get-company-data-status", 0) < 20:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        spent: list[float] = []
        drainer = threading.Thread(target=lambda: spent.append(_drain(server.base_url)))
        drainer.start()
        drainer.join(60)
        out, err = proc.communicate(timeout=60)
        exited = time.monotonic()
        print(f"quota spent to exit: {exited - spent[0]:.3f} s")
        assert proc.returncode == 2, out + err
        assert exited - spent[0] < 5.0  # seconds, with the interpreter's exit
        assert server.stats.by_status.get(429, 0) <= 1 + 8  # the drain's, and in flight
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err  # one message for the run, not one per company
    assert "daily API quota" in lines[0]
    assert "2026-06-02 00:00 UTC" in lines[0]
    assert "--resume" in lines[0]
    assert SANDBOX_API_KEY not in out + err
    snaps = list_snapshots(store)
    assert len(snaps) == 1
    assert not snaps["complete"].any()


def test_the_run_command_exits_2_with_one_message_at_the_reserve(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "CODAT_", "AUDITOR_"))}
    env["CODAT_API_KEY"] = SANDBOX_API_KEY
    config = tmp_path / "auditor.toml"
    config.write_text(
        '[email]\nto = ["ops@example.com"]\n[run]\nquota_reserve = 0.25\n', encoding="utf-8"
    )
    options = SandboxOptions(daily_quota=100, clock=Clock(NOON))
    with SandboxServer(FLEET, options) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "auditor", "run", "--config", str(config),
             "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
             "--base-url", server.base_url, "--as-of", "2026-06-01T12:00:00Z", "--dry-run",
             "--progress", "off"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert server.stats.total <= 75  # a quarter of the quota left to the customer
        assert 429 not in server.stats.by_status
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "quota" in line]
    assert len(lines) == 1, proc.stderr
    assert "25% reserve" in lines[0]
    assert "2026-06-02 00:00 UTC" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.html"))


def test_quota_settings_resolve_cli_env_file_default() -> None:
    from auditor.config import ConfigError, RunConfig, run_settings

    default = run_settings(env={})
    assert default.quota_reserve == 0.10
    assert default.quota_retry_after_bound == 300.0
    file = RunConfig(quota_reserve=0.2, quota_retry_after_bound="2m")
    assert run_settings(file, env={}).quota_retry_after_bound == 120.0
    env = {"AUDITOR_QUOTA_RESERVE": "0.3", "AUDITOR_QUOTA_RETRY_AFTER_BOUND": "90s"}
    from_env = run_settings(file, env=env)
    assert (from_env.quota_reserve, from_env.quota_retry_after_bound) == (0.3, 90.0)
    given = run_settings(file, env=env, quota_reserve=0.0, quota_retry_after_bound=10)
    assert (given.quota_reserve, given.quota_retry_after_bound) == (0.0, 10.0)
    for bad in ({"AUDITOR_QUOTA_RESERVE": "1"}, {"AUDITOR_QUOTA_RESERVE": "ten"},
                {"AUDITOR_QUOTA_RETRY_AFTER_BOUND": "soon"},
                {"AUDITOR_QUOTA_RETRY_AFTER_BOUND": "2d"}):  # fmt: skip
        with pytest.raises(ConfigError):
            run_settings(env=bad)
    with pytest.raises(ValueError, match="duration"):
        RunConfig(quota_retry_after_bound="five minutes")
