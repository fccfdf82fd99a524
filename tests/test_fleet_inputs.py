"""A fleet-wide input that could not be read is said loudly, never turned into "all clear"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from auditor.codat import CodatClient, CodatServerError, RateLimitPolicy, RetryPolicy
from auditor.collector import collect
from auditor.engine import audit
from auditor.sandbox import SandboxServer, generate_fleet

FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.0)
NO_LIMIT = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)
NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


async def test_unreadable_sync_settings_is_one_fleet_error_and_the_audit_is_incomplete(
    sandbox_server: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sandbox_server(generate_fleet(60, seed=5, now=NOW))

    async def refuse(self: CodatClient) -> None:
        raise CodatServerError("Service Unavailable", status_code=503)

    monkeypatch.setattr(CodatClient, "get_sync_settings", refuse)
    async with CodatClient(server.api_key, base_url=server.base_url, retry=FAST,
                           rate_limit=NO_LIMIT) as client:
        snap = await collect(client, snapshot_at=NOW + timedelta(minutes=30), snapshot_id="t")
    for chunk in (None, 7):  # one partition, and many: still one fleet-level finding
        result = audit(snap, as_of=NOW + timedelta(minutes=30), chunk_size=chunk)
        fleet = result.findings.loc[result.findings["company_id"].isna()]
        assert fleet["rule"].astype(str).tolist() == ["not-collected"]
        assert fleet["severity"].astype(str).tolist() == ["error"]
        assert "client's sync settings" in str(fleet["message"].iloc[0])
        assert result.incomplete
        assert len(result.missing_inputs) == 1
