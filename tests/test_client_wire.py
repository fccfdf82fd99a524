"""The Codat client against the real sandbox over loopback: sockets, timeouts, resets, 429s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from auditor.codat import (
    CodatAuthError,
    CodatClient,
    CodatNotFoundError,
    CodatQuotaExhaustedError,
    CodatTimeoutError,
    DatasetAlreadyInProgressError,
    RateLimitPolicy,
    RetryPolicy,
)
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet

FAST = RetryPolicy(max_attempts=6, initial_wait=0.01, max_wait=0.05, jitter=0.01)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)
FLEET = generate_fleet(25, seed=7)
#: Companies whose dataStatus the fleet serves (a few have a ``dataStatusError`` instead).
READABLE = [r for r in FLEET if r.data_status_error is None]
#: Sandbox time for the quota tests: 12 h before the quota resets.
NOON = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(FLEET, SandboxOptions(seed=3)) as server:
        yield server


def connect(
    server: SandboxServer,
    *,
    retry: RetryPolicy = FAST,
    rate_limit: RateLimitPolicy = NO_LIMIT,
    timeout: float = 5.0,
    key: str | None = None,
) -> CodatClient:
    return CodatClient(
        key or server.api_key,
        base_url=server.base_url,
        retry=retry,
        rate_limit=rate_limit,
        timeout=timeout,
    )


async def test_paging_across_three_pages(sandbox: SandboxServer) -> None:
    async with connect(sandbox) as client:
        companies = await client.list_companies(page_size=10)
        assert client.stats.requests["list-companies"] == 3
    assert [c.id for c in companies] == [r.id for r in FLEET]
    assert all(c.data_connections for c in companies[:5])


async def test_every_read_endpoint(sandbox: SandboxServer) -> None:
    company_id = READABLE[0].id
    async with connect(sandbox) as client:
        company = await client.get_company(company_id)
        connections = await client.list_connections(company_id, page_size=1)
        statuses = await client.get_data_status(company_id)
        history = await client.list_pull_operations(company_id, page_size=2, order_by="-requested")
        settings = await client.get_sync_settings()
        company_settings = await client.get_company_sync_settings(company_id)
    assert company.id == company_id
    assert [c.id for c in connections] == [c.id for c in company.data_connections]
    assert statuses
    assert all(op.company_id in (None, company_id) for op in history)
    assert settings.settings
    assert company_settings.settings
    if history:
        async with connect(sandbox) as client:
            op = await client.get_pull_operation(company_id, history[0].id)
        assert op.id == history[0].id


async def test_wrong_key_is_an_auth_error(sandbox: SandboxServer) -> None:
    async with connect(sandbox, key="not-the-key") as client:
        with pytest.raises(CodatAuthError) as info:
            await client.get_sync_settings()
    assert info.value.status_code == 401
    assert info.value.attempts == 1
    assert "not-the-key" not in str(info.value)


async def test_unknown_company_and_dataset_are_not_found(sandbox: SandboxServer) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    async with connect(sandbox) as client:
        with pytest.raises(CodatNotFoundError) as info:
            await client.get_data_status(unknown)
        with pytest.raises(CodatNotFoundError):
            await client.get_pull_operation(next(iter(FLEET)).id, unknown)
    assert info.value.status_code == 404
    assert info.value.path == f"/companies/{unknown}/dataStatus"


async def test_refresh_then_already_in_progress() -> None:
    company_id = READABLE[3].id
    with SandboxServer(FLEET) as server:
        async with connect(server) as client:
            statuses = await client.get_data_status(company_id)
            data_type = next(t for t, s in statuses.items() if s.current_status != "NotSupported")
            op = await client.refresh_data_type(company_id, data_type)
            with pytest.raises(DatasetAlreadyInProgressError) as info:
                await client.refresh_data_type(company_id, data_type)
            again = await client.get_pull_operation(company_id, op.id)
            await client.refresh_all(company_id)
    assert op.data_type == data_type
    assert info.value.dataset_id == op.id
    assert info.value.data_type == data_type
    assert info.value.attempts == 1
    assert again.id == op.id


async def test_retry_after_is_honoured_and_measured() -> None:
    # 3 requests per 1-s window, headers ignored so that the 4th really gets a 429.
    options = SandboxOptions(rate_limit_per_min=3, rate_limit_window_seconds=1.0)
    limits = RateLimitPolicy(requests_per_minute=None, honour_headers=False)
    with SandboxServer(FLEET, options) as server:
        async with connect(server, rate_limit=limits) as client:
            for _ in range(3):
                await client.get_sync_settings()
            start = time.monotonic()
            await client.get_sync_settings()  # 429, Retry-After: 1, then 200
            waited = time.monotonic() - start
            assert client.stats.rate_limited["get-profile-syncSettings"] == 1
            assert client.stats.retries["get-profile-syncSettings"] == 1
    assert 1.0 <= waited < 2.0  # the sandbox said "Retry-After: 1"
    assert server.stats.by_status[429] == 1


async def test_a_retry_after_too_long_gives_up_with_a_typed_error() -> None:
    # The per-minute ceiling asks for 30 s, past a quota bound of 2 s: taken as the quota
    # spent, not waited for, and nothing more is sent.
    options = SandboxOptions(rate_limit_per_min=1, rate_limit_window_seconds=30.0)
    limits = RateLimitPolicy(
        requests_per_minute=None, honour_headers=False, quota_retry_after_bound=2.0
    )
    retry = RetryPolicy(max_attempts=3, initial_wait=0.01)
    with SandboxServer(FLEET, options) as server:
        async with connect(server, rate_limit=limits, retry=retry) as client:
            await client.get_sync_settings()
            with pytest.raises(CodatQuotaExhaustedError) as info:
                await client.get_sync_settings()
            with pytest.raises(CodatQuotaExhaustedError):
                await client.get_sync_settings()
    assert info.value.retry_after is not None
    assert info.value.retry_after > 2.0
    assert info.value.attempts == 1
    assert server.stats.by_status[429] == 1


async def test_the_client_keeps_the_quota_reserve_of_the_sandbox() -> None:
    # A daily quota of 10 and a 20 % reserve: 8 requests, then the client stops by itself
    # before the sandbox ever answers 429.
    options = SandboxOptions(daily_quota=10, start_time=NOON)
    limits = RateLimitPolicy(requests_per_minute=None, quota_reserve=0.2)
    with SandboxServer(FLEET, options) as server:
        async with connect(server, rate_limit=limits) as client:
            for _ in range(8):
                await client.get_sync_settings()
            with pytest.raises(CodatQuotaExhaustedError) as info:
                await client.get_sync_settings()
            assert client.limiter.quota.remaining == 2
    assert 429 not in server.stats.by_status
    assert server.stats.total == 8
    assert info.value.status_code is None
    assert info.value.resets_at == NOON.replace(hour=0) + timedelta(days=1)


async def test_the_sandbox_quota_429_stops_the_client() -> None:
    # No reserve: the 11th request gets the sandbox's 429 with Retry-After until midnight.
    options = SandboxOptions(daily_quota=10, start_time=NOON)
    limits = RateLimitPolicy(requests_per_minute=None, quota_reserve=0.0)
    with SandboxServer(FLEET, options) as server:
        async with connect(server, rate_limit=limits) as client:
            for _ in range(10):
                await client.get_sync_settings()
            assert client.limiter.quota.remaining == 0
            with pytest.raises(CodatQuotaExhaustedError):  # refused by us: 0 left
                await client.get_sync_settings()
    with SandboxServer(FLEET, options) as server:
        limits = RateLimitPolicy(requests_per_minute=None, honour_headers=False)
        async with connect(server, rate_limit=limits) as client:
            for _ in range(10):
                await client.get_sync_settings()
            with pytest.raises(CodatQuotaExhaustedError) as info:
                await client.get_sync_settings()
    assert info.value.status_code == 429
    assert server.stats.limited == {"daily-quota": 1}
    assert info.value.retry_after is not None
    assert info.value.retry_after > 11 * 3600
    assert info.value.resets_at == datetime(2026, 6, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("knob", "fault"),
    [
        ("fault_rate", "server_error"),
        ("reset_rate", "reset"),
        ("timeout_rate", "timeout"),
        ("malformed_rate", "malformed"),
    ],
)
async def test_reads_recover_from_injected_faults(
    knob: str, fault: str, sandbox: SandboxServer
) -> None:
    async with connect(sandbox) as client:
        expected = [await client.get_data_status(r.id) for r in READABLE]
    options = SandboxOptions(seed=11, timeout_hang_seconds=5.0, **{knob: 0.3})  # type: ignore[arg-type]
    retry = RetryPolicy(max_attempts=10, initial_wait=0.01, max_wait=0.05, jitter=0.01)
    with SandboxServer(FLEET, options) as server:
        async with connect(server, retry=retry, timeout=0.3) as client:
            results = await asyncio.gather(*(client.get_data_status(r.id) for r in READABLE))
            stats = client.stats.as_dict()
        injected = server.stats.faults.get(fault, 0)
    assert results == expected
    assert injected > 0
    # Every injected fault cost exactly one retry; nothing was given up.
    assert stats["retries"]["total"] == injected
    assert stats["failures"]["total"] == 0


async def test_every_request_has_a_timeout() -> None:
    with SandboxServer(FLEET, SandboxOptions(latency_ms=500)) as server:
        retry = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.01, jitter=0.0)
        async with connect(server, retry=retry, timeout=0.1) as client:
            start = time.monotonic()
            with pytest.raises(CodatTimeoutError) as info:
                await client.get_sync_settings()
            elapsed = time.monotonic() - start
    assert info.value.attempts == 2
    assert info.value.request_sent is True
    assert elapsed < 0.45


@pytest.mark.serial  # its throughput figure means nothing beside other tests on 2 cores
async def test_limiter_keeps_a_run_under_the_sandbox_limit() -> None:
    # The sandbox allows 200 requests per 1-s window; the client is told the same limit
    # (12,000/min in 1-s windows) and runs 600 requests from 60 concurrent tasks.
    options = SandboxOptions(rate_limit_per_min=200, rate_limit_window_seconds=1.0)
    limits = RateLimitPolicy(requests_per_minute=12_000, window_seconds=1.0)
    ids = [r.id for r in READABLE]
    with SandboxServer(FLEET, options) as server:
        async with connect(server, rate_limit=limits) as client:
            queue: asyncio.Queue[str] = asyncio.Queue()
            for i in range(600):
                queue.put_nowait(ids[i % len(ids)])

            async def worker() -> None:
                while not queue.empty():
                    await client.get_data_status(queue.get_nowait())

            start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(60)))
            elapsed = time.monotonic() - start
            assert client.stats.rate_limited.total() == 0
            assert client.stats.requests.total() == 600
    assert 429 not in server.stats.by_status
    throughput = 600 / elapsed / 200  # share of the server's limit we used
    assert throughput >= 0.85, f"{throughput:.0%} of the limit"
