"""Intraday forwarding (``[[notify.forward]]``): the real listener, signed events, a real aiohttp
receiver on 127.0.0.1 as the Slack / webhook endpoint.

A matching event is forwarded once (also when redelivered), a non-matching one is not; company
tags come from the latest snapshot (re-read when a new one lands) or the event; a receiver that
hangs never slows an acknowledgement and its failures are logged without the URL; hostile text
stays inert.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pandas as pd
import pytest
from aiohttp import web

from auditor.config import ConfigError, load_config
from auditor.email_settings import EmailSettings, SmtpSettings
from auditor.listen import ListenerServer, signed_headers
from auditor.notify.forward import Forwarder, describe_event, forward_payload
from auditor.notify_settings import NotifySettings
from auditor.snapshot import Snapshot, tags_json
from auditor.store import write_snapshot
from auditor.testing.listen import start_listener
from tests.hostile_codat import LoopbackServer
from tests.smtp_inbox import plain_smtp_server

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "forward-event.schema.json"
TOKEN = "T000/B000/FORWARDxSECRETx1234567890"
LINK = "https://link-api.codat.io/companies/c-gold/connections/k-gold/start"
EVIL = "<!channel> @here <https://evil.example|click> & [click](https://evil.example) <at>x</at>"


@dataclass
class Receiver:
    """Records every request; ``hang`` seconds before answering ``status``."""

    status: int = 200
    hang: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: LoopbackServer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"path": request.path, "body": json.loads(body)})
        until = time.monotonic() + self.hang
        while self.hang and time.monotonic() < until:  # released at teardown
            await asyncio.sleep(0.02)
        return web.Response(status=self.status, text="ok")

    def url(self, channel: str) -> str:
        assert self.server is not None
        return f"{self.server.base_url}/{channel}/{TOKEN}"

    def bodies(self, channel: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"].startswith(f"/{channel}/")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with LoopbackServer(rec.handle) as server:
        rec.server = server
        yield rec
        rec.hang = 0.0
        time.sleep(0.1)  # let requests still held finish before the receiver stops


def disconnected(company: str, *, name: str = "Gold Co", **extra: Any) -> str:
    return json.dumps(
        {
            "id": f"evt-{company}",
            "eventType": "connection.disconnected",
            "generatedDate": "2026-12-01T14:02:00Z",
            "payload": {
                "referenceCompany": {"id": company, "name": name, **extra},
                "connection": {"id": f"k-{company[2:]}", "status": "Deauthorized",
                               "platformName": "Xero"},
            },
        }
    )  # fmt: skip


def read_completed(company: str) -> str:
    return json.dumps(
        {
            "id": f"read-{company}",
            "eventType": "read.completed",
            "payload": {"referenceCompany": {"id": company}, "dataTypes": []},
        }
    )


def write_night(store: Path, snapshot_id: str, tiers: dict[str, str], day: int = 1) -> None:
    companies = pd.DataFrame(
        {
            "company_id": list(tiers),
            "company_name": [f"{tier.title()} Co" for tier in tiers.values()],
            "connection_id": [f"k-{c[2:]}" for c in tiers],
            "platform": ["Xero"] * len(tiers),
            "link_url": [LINK.replace("gold", c[2:]) for c in tiers],
            "company_tags": [tags_json({"tier": tier}) for tier in tiers.values()],
        }
    )
    at = datetime(2026, 12, day, 2, tzinfo=UTC)
    write_snapshot(store, Snapshot(snapshot_id=snapshot_id, snapshot_at=at, companies=companies))


def settings(**extra: Any) -> NotifySettings:
    return NotifySettings.model_validate(
        {
            "forward": [
                {
                    "name": "gold disconnects",
                    "events": ["connection.disconnected"],
                    "tags": {"tier": "gold"},
                    "slack": ["SLACK_URL"],
                    "webhook": ["HOOK_URL"],
                }
            ],
            **extra,
        }
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession, server: ListenerServer, webhook_id: str, body: str
) -> tuple[int, str, float]:
    started = time.perf_counter()
    headers = signed_headers(SECRET, webhook_id, body)
    async with session.post(server.url + "/webhooks/codat", data=body, headers=headers) as r:
        answer = (await r.json())["status"]
        return r.status, answer, time.perf_counter() - started


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def start(store: Path, forwarder: Forwarder) -> ListenerServer:
    server = ListenerServer(store, SECRET, port=0, sink=forwarder)
    await server.start()
    return server


# ------------------------------------------------------------------------------ forwarding


async def test_a_matching_event_is_forwarded_once_even_when_redelivered(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    store = tmp_path / "store"
    write_night(store, "n1", {"c-gold": "gold", "c-silver": "silver"})
    env = {"SLACK_URL": receiver.url("slack"), "HOOK_URL": receiver.url("hook")}
    forwarder = Forwarder(settings(forward_refresh_seconds=0.1), store, env=env)
    server = await start(store, forwarder)
    try:
        gold = disconnected("c-gold")  # no tags in the event: the snapshot's are used
        answers = [await post(session, server, "msg_1", gold) for _ in range(3)]
        assert [a[1] for a in answers] == ["stored", "duplicate", "duplicate"]
        assert (await post(session, server, "msg_2", disconnected("c-silver")))[1] == "stored"
        assert (await post(session, server, "msg_3", read_completed("c-gold")))[1] == "stored"
        await until(lambda: forwarder.counts["sent"] + forwarder.counts["failed"] >= 2)
        await until(lambda: forwarder.counts["unmatched"] >= 1)
        await asyncio.sleep(0.3)  # nothing else trickles in
        assert forwarder.counts == {"queued": 2, "dropped": 0, "unmatched": 1, "sent": 2,
                                    "failed": 0}  # fmt: skip
        (slack,) = receiver.bodies("slack")
        assert slack["text"] == (
            f"Gold Co (tier gold) on Xero disconnected (Deauthorized) at 14:02 UTC — relink: "
            f"<{LINK}|relink link>"
        )
        assert slack["blocks"][0]["text"]["verbatim"] is True
        (hook,) = receiver.bodies("hook")
        assert hook["schema"] == "codat-freshness-auditor/event"
        jsonschema.validate(hook, json.loads(SCHEMA.read_text()))
        assert (hook["webhook_id"], hook["company_id"], hook["event_type"]) == (
            "msg_1", "c-gold", "connection.disconnected"
        )  # fmt: skip
        assert (hook["tags"], hook["link_url"], hook["at"]) == (
            {"tier": "gold"}, LINK, "2026-12-01T14:02:00Z"
        )  # fmt: skip

        # A new night lands: c-silver is now gold; the directory is re-read, no restart.
        write_night(store, "n2", {"c-gold": "gold", "c-silver": "gold"}, day=2)
        await asyncio.sleep(0.2)
        assert (await post(session, server, "msg_4", disconnected("c-silver")))[1] == "stored"
        await until(lambda: forwarder.counts["sent"] >= 4)
        assert forwarder.directory.snapshot_id == "n2"
        assert receiver.bodies("hook")[-1]["company_id"] == "c-silver"
        metrics = await (await session.get(server.url + "/metrics")).text()
        assert 'codat_forward_sent_total{channel="slack"} 2.0' in metrics
        assert "codat_forward_queued_total 3.0" in metrics
    finally:
        await server.stop()


async def test_tags_in_the_event_win_and_an_event_without_a_snapshot_still_routes(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    store = tmp_path / "store"  # no snapshot at all
    env = {"SLACK_URL": receiver.url("slack"), "HOOK_URL": receiver.url("hook")}
    forwarder = Forwarder(settings(), store, env=env)
    server = await start(store, forwarder)
    try:
        tagged = disconnected("c-new", name="New Co", tags={"tier": "gold"})
        untagged = disconnected("c-gold")  # unknown without a snapshot: tags unknown
        assert (await post(session, server, "m1", tagged))[1] == "stored"
        assert (await post(session, server, "m2", untagged))[1] == "stored"
        await until(lambda: forwarder.counts["sent"] >= 2 and forwarder.counts["unmatched"] >= 1)
        assert [b["company_id"] for b in receiver.bodies("hook")] == ["c-new"]
        # No link in the event nor a snapshot: the message says so rather than inventing one.
        assert receiver.bodies("slack")[0]["text"].endswith("— no usable relink link")
    finally:
        await server.stop()


async def test_a_hanging_receiver_never_slows_acks_and_failures_are_logged_redacted(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    receiver.hang, receiver.status = 60.0, 503  # holds every request until released
    store = tmp_path / "store"
    write_night(store, "n1", {"c-gold": "gold"})
    env = {"SLACK_URL": receiver.url("slack"), "HOOK_URL": receiver.url("hook")}
    notify = settings(forward_queue=4, timeout=30, max_attempts=1, forward_per_second=50)
    forwarder = Forwarder(notify, store, env=env, drain_seconds=0.5)
    server = await start(store, forwarder)
    latencies = []
    try:
        with caplog.at_level(logging.INFO):
            for n in range(40):
                status, answer, took = await post(session, server, f"hang-{n}",
                                                  disconnected("c-gold"))  # fmt: skip
                assert (status, answer) == (200, "stored")
                latencies.append(took)
            await until(lambda: len(receiver.requests) >= 2)
            # Every ack came back while the forwarder was stuck in its first two requests.
            assert (forwarder.counts["sent"], forwarder.counts["failed"]) == (0, 0)
            assert forwarder.counts["dropped"] >= 30  # a queue of 4 behind a stuck receiver
            receiver.hang = 0.0  # the receiver answers 503 now
            await until(lambda: forwarder.counts["failed"] >= 2)
            metrics = await (await session.get(server.url + "/metrics")).text()
    finally:
        receiver.hang = 0.0
        stop_started = time.perf_counter()
        await server.stop()
        stopping = time.perf_counter() - stop_started
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.25, latencies  # an fsync, not a forward
    assert 'codat_forward_dropped_total{reason="queue_full"}' in metrics
    assert "not forwarded (queue full)" in caplog.text
    assert "forward failed: forward slack SLACK_URL" in caplog.text
    assert "HTTP 503" in caplog.text
    ours = " ".join(r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp"))
    assert TOKEN not in ours
    assert receiver.url("slack") not in ours
    assert stopping < 3.0  # the drain is bounded


async def test_an_event_is_mailed_through_smtp(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = tmp_path / "store"
    write_night(store, "n1", {"c-gold": "gold"})
    notify = NotifySettings.model_validate(
        {"forward": [{"events": ["connection.*"], "tags": {"tier": "gold"},
                      "email": ["oncall@example.com", "lead@example.com"]}]}
    )  # fmt: skip
    with plain_smtp_server() as (inbox, port):
        smtp = SmtpSettings(host="127.0.0.1", port=port, security="none", allow_plaintext=True,
                            sender="freshness@example.com")  # fmt: skip
        email = EmailSettings.model_validate({"subject_prefix": "[gold]"})
        forwarder = Forwarder(notify, store, email=email, smtp=smtp,
                              display_tz="Europe/London")  # fmt: skip
        server = await start(store, forwarder)
        try:
            body = disconnected("c-gold", name="Gold\r\nBcc: evil@example.com Co")
            assert (await post(session, server, "mail-1", body))[1] == "stored"
            await until(lambda: forwarder.counts["sent"] >= 1)
        finally:
            await server.stop()
    ((rcpt, msg),) = inbox.messages
    assert sorted(rcpt) == ["lead@example.com", "oncall@example.com"]
    assert msg["Subject"] == (
        "[gold] Gold Bcc: evil@example.com Co (tier gold) on Xero disconnected (Deauthorized) "
        "at 14:02 GMT"
    )
    assert msg["Bcc"] is None  # a name with a line break forges no header
    text = msg.get_content()
    assert f"Relink: {LINK}" in text
    assert "Event: connection.disconnected (mail-1)" in text


# ------------------------------------------------------------------------------ content


def test_hostile_text_is_inert_and_unsafe_links_are_never_shown() -> None:
    event = json.loads(disconnected("c-x", name=EVIL, tags={"tier": "gold"}))
    event["payload"]["connection"]["linkUrl"] = "javascript:alert(1)//link-api.codat.io"
    event["payload"]["connection"]["platformName"] = "Xero\n\u202eINJECTED"
    note = describe_event("w-1", datetime.now(UTC), event)
    assert note.link_url is None
    assert "\n" not in note.text()
    assert "\u202e" not in note.text()
    slack = forward_payload("slack", note)["text"]
    assert "<!channel>" not in slack
    assert "<https://evil" not in slack
    assert "&lt;!channel&gt;" in slack
    teams = forward_payload("teams", note)["attachments"][0]["content"]
    assert "[click](https" not in json.dumps(teams)
    assert "actions" not in teams  # no link to relink with
    hook = forward_payload("webhook", note)
    jsonschema.validate(hook, json.loads(SCHEMA.read_text()))
    assert hook["company_name"] == EVIL  # data, not markup
    assert hook["link_url"] is None
    safe = json.loads(disconnected("c-y"))
    safe["payload"]["connection"]["linkUrl"] = LINK
    teams = forward_payload("teams", describe_event("w-2", datetime.now(UTC), safe))
    assert teams["attachments"][0]["content"]["actions"][0]["url"] == LINK


def test_the_config_section_loads_and_refuses_urls_and_routes_to_nowhere(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[notify]\nforward_queue = 50\n[[notify.forward]]\nevents = ["connection.*"]\n'
        'tags = {tier = ["gold", "platinum"]}\nteams = ["TEAMS_URL"]\n'
        'email = ["oncall@example.com"]\n'
    )
    route = load_config(good).notify.forward[0]
    assert route.wants("connection.reconnected")
    assert not route.wants("read.completed")
    for bad, expected in (
        ('events = ["connection.disconnected"]\n', "somewhere to send"),
        ('events = ["x"]\nslack = ["https://hooks.slack.com/services/' + TOKEN + '"]\n',
         "environment variable"),
        ('events = ["connection disconnected"]\nslack = ["U"]\n', "event types"),
    ):  # fmt: skip
        path = tmp_path / "bad.toml"
        path.write_text("[[notify.forward]]\n" + bad)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert expected in str(caught.value)
        assert TOKEN not in str(caught.value)


# ------------------------------------------------------------------------------ the CLI


def test_auditor_listen_forwards_with_the_config(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    write_night(store, "n1", {"c-gold": "gold", "c-silver": "silver"})
    config = tmp_path / "config.toml"
    config.write_text(
        '[[notify.forward]]\nevents = ["connection.disconnected"]\ntags = {tier = "gold"}\n'
        'webhook = ["HOOK_URL"]\n'
    )
    monkeypatch.setenv("AUDITOR_CONFIG", str(config))
    monkeypatch.setenv("HOOK_URL", receiver.url("hook"))
    log = tmp_path / "listen.log"
    proc, url = start_listener(store, log, secret=SECRET)
    try:
        import httpx

        for webhook_id, body in (("a", disconnected("c-gold")), ("a", disconnected("c-gold")),
                                 ("b", disconnected("c-silver"))):  # fmt: skip
            answer = httpx.post(url + "/webhooks/codat", content=body,
                                headers=signed_headers(SECRET, webhook_id, body))  # fmt: skip
            assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(20)
    assert [b["company_id"] for b in receiver.bodies("hook")] == ["c-gold"]
    assert proc.returncode == 0
    assert TOKEN not in log.read_text()
