"""The sandbox posts Codat's webhooks: sandbox -> ``auditor listen`` -> event log, end to end.

Every body is validated against the ``webhooks`` section of the real ``Codat-Platform.json``
(the schema each event type's ``requestBody`` names), signatures are verified by the real
listener (and rejected with the wrong secret), failed deliveries are retried, and duplicate
deliveries are recognised by ``webhook-id``: stored once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from oas import SPEC_PATH, requires_spec
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from standardwebhooks.webhooks import Webhook

from auditor.listen import load_events, load_raw_events
from auditor.listen.background import BackgroundListener
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet

NOW = datetime(2024, 5, 1, 6, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def _walk_days(server: SandboxServer, clock: Clock, days: int, step_hours: int = 12) -> None:
    for _ in range(days * 24 // step_hours):
        clock.now += timedelta(hours=step_hours)
        assert server.flush_webhooks(timeout=60)


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """120 companies over 4 sandbox days posting to a real (in-process) listener, with a
    daily quota of 5 requests spent on the first day."""
    store = tmp_path_factory.mktemp("store")
    clock = Clock(NOW)
    listener = BackgroundListener(store, clock=clock).start()
    options = SandboxOptions(
        clock=clock,
        webhook_url=listener.url,
        webhook_secret=listener.secret,
        webhook_step_minutes=12 * 60,
        webhook_duplicate_rate=0.1,
        daily_quota=5,
    )
    try:
        with SandboxServer(generate_fleet(120, seed=3, now=NOW), options=options) as server:
            auth = {"Authorization": "Basic " + base64.b64encode(server.api_key.encode()).decode()}
            with httpx.Client(base_url=server.base_url, headers=auth) as client:
                codes = [client.get("/companies").status_code for _ in range(6)]
            assert codes == [200] * 5 + [429]
            _walk_days(server, clock, 4)
            stats = server.webhook_stats
            assert stats is not None
        counts = listener.stop()
    except BaseException:
        listener.stop()
        raise
    return {"store": store, "stats": stats, "counts": counts}


@requires_spec
def test_every_body_validates_against_the_spec_webhook_schema(fleet_run: dict[str, Any]) -> None:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        "urn:codat", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    hooks = spec["webhooks"]
    raw = load_raw_events(fleet_run["store"]).to_pylist()
    kinds: Counter[str] = Counter()
    for row in raw:
        body = json.loads(row["raw"])
        kinds[body["eventType"]] += 1
        ref = hooks[body["eventType"]]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"]
        validator = OAS31Validator(
            {"$ref": "urn:codat" + ref},
            registry=registry,
            format_checker=OAS31Validator.FORMAT_CHECKER,
        )
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (body["eventType"], errors[:3])
    for kind in ("read.completed", "connection.disconnected", "connection.reconnected",
                 "client.rateLimit.reached", "client.rateLimit.reset"):  # fmt: skip
        assert kinds[kind] >= 1, kinds
    # the validator is not vacuous: a wrong status and a wrong data type are caught
    bad = json.loads(next(r["raw"] for r in raw if '"read.completed"' in r["raw"]))
    bad["payload"]["dataTypes"][0]["status"] = "Done"
    bad["payload"]["dataTypes"][0]["dataType"] = "notAType"
    ref = "urn:codat#/components/schemas/ReadCompletedWebhook"
    assert len(list(OAS31Validator({"$ref": ref}, registry=registry).iter_errors(bad))) == 2


def test_events_land_once_in_the_event_log_with_issues_and_statuses(
    fleet_run: dict[str, Any],
) -> None:
    stats, counts = fleet_run["stats"], fleet_run["counts"]
    assert stats.failed == 0
    assert stats.delivered == stats.total  # every event acknowledged
    assert stats.duplicates_sent > 0  # at-least-once: some sent twice ...
    assert counts["duplicates"] == stats.duplicates_sent  # ... and recognised by webhook-id
    assert counts["stored"] == stats.total
    assert counts["rejected"] == 0  # signatures verified
    raw = load_raw_events(fleet_run["store"])
    assert raw.num_rows == stats.total == len(set(raw.column("event_id").to_pylist()))
    events = load_events(fleet_run["store"])
    reads = events[events["event_type"] == "read.completed"]
    with_issues = reads[reads["issues"].fillna("[]") != "[]"]
    assert len(with_issues) > 0
    issue = json.loads(with_issues["issues"].iloc[0])[0]
    assert issue["type"] == "warning.validation"
    assert "/validation" in issue["links"]["logs"]
    assert {"Complete", "AuthError"} <= set(reads["status"].dropna())
    # received_at follows the sandbox clock: the events spread over the 4 days
    days = set(events["received_at"].dt.date)
    assert len(days) >= 4
    assert min(events["received_at"]) > NOW


def test_read_events_match_the_data_status(tmp_path: Path) -> None:
    """What a read.completed says is what the dataStatus then shows."""
    clock = Clock(NOW)
    listener = BackgroundListener(tmp_path, clock=clock).start()
    options = SandboxOptions(
        clock=clock, webhook_url=listener.url, webhook_secret=listener.secret,
        webhook_duplicate_rate=0.0,
    )  # fmt: skip
    try:
        with SandboxServer(generate_fleet(20, seed=5, now=NOW), options=options) as server:
            _walk_days(server, clock, 1, step_hours=6)
            statuses = {
                cid: server.current_data_status(server.fleet.record_at(i, clock.now), clock.now)  # type: ignore[attr-defined]
                for i, cid in enumerate(server.fleet.company_ids)
            }
    finally:
        listener.stop()
    events = load_events(tmp_path)
    reads = events[events["event_type"] == "read.completed"]
    assert len(reads) > 20
    last = reads.sort_values("received_at").groupby(["company_id", "data_type"]).tail(1)
    for row in last.itertuples():
        entry = statuses[row.company_id][row.data_type]
        if entry["currentStatus"] in ("Complete", "AuthError", "FetchError"):
            assert entry["currentStatus"] == row.status


class _Flaky:
    """A webhook endpoint that verifies signatures and fails the first attempt of every id."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.attempts: Counter[str] = Counter()
        self.bad = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.verifier.verify(body, dict(request.headers))
        except Exception:
            self.bad += 1
            return web.Response(status=401)
        webhook_id = request.headers["webhook-id"]
        self.attempts[webhook_id] += 1
        return web.Response(status=503 if self.attempts[webhook_id] == 1 else 200)


def _serve(app: web.Application) -> tuple[str, asyncio.AbstractEventLoop, web.AppRunner]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    runner = web.AppRunner(app)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/"

    return asyncio.run_coroutine_threadsafe(start(), loop).result(), loop, runner


def test_failed_deliveries_are_retried_and_a_wrong_secret_is_rejected() -> None:
    secret = _secret()
    flaky = _Flaky(secret)
    app = web.Application()
    app.router.add_post("/", flaky.handle)
    url, loop, runner = _serve(app)
    clock = Clock(NOW)
    try:
        options = SandboxOptions(
            clock=clock, webhook_url=url, webhook_secret=secret,
            webhook_retry_seconds=(0.0, 0.05), webhook_duplicate_rate=0.0,
        )  # fmt: skip
        with SandboxServer(generate_fleet(8, seed=2, now=NOW), options=options) as server:
            _walk_days(server, clock, 1)
            stats = server.webhook_stats
            assert stats is not None
        assert stats.total > 0
        assert stats.delivered == stats.total
        assert stats.retried == stats.total  # one retry each
        assert set(flaky.attempts.values()) == {2}
        assert flaky.bad == 0
        # signed with another secret: every delivery refused, the sender gives up
        options = SandboxOptions(
            clock=clock, webhook_url=url, webhook_secret=_secret(),
            webhook_retry_seconds=(0.0,), webhook_duplicate_rate=0.0,
        )  # fmt: skip
        with SandboxServer(generate_fleet(8, seed=2, now=NOW), options=options) as server:
            _walk_days(server, clock, 1)
            wrong = server.webhook_stats
            assert wrong is not None
        assert wrong.total > 0
        assert wrong.failed == wrong.total
        assert wrong.delivered == 0
        assert flaky.bad == 2 * wrong.total
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)


def test_repr_and_options_keep_the_url_and_secret_out() -> None:
    secret = _secret()
    options = SandboxOptions(webhook_url="http://127.0.0.1:9/hook-token-xyz", webhook_secret=secret)
    assert "hook-token-xyz" not in repr(options)
    assert secret not in repr(options)
    with pytest.raises(ValueError, match="whsec_"):
        SandboxOptions(webhook_url="http://127.0.0.1:9/", webhook_secret="plain")


def test_cli_webhook_url_needs_a_whsec_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    monkeypatch.delenv("CODAT_WEBHOOK_SECRET", raising=False)
    url = "http://127.0.0.1:9/hooks/tok-123"
    result = CliRunner().invoke(app, ["sandbox", "--companies", "1", "--webhook-url", url])
    assert result.exit_code == 2
    assert "CODAT_WEBHOOK_SECRET" in result.output
    assert "tok-123" not in result.output
