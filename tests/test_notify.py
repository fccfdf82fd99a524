"""Notifications (Slack, Teams, JSON webhook) against real aiohttp receivers on 127.0.0.1.

One receiver fixture records every request and answers from a script (e.g. 429 with a
Retry-After, then 200). Payloads are checked against the services' documented shapes and
limits; hostile names must stay inert; the webhook URL must never reach a log line or an error.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest
from aiohttp import web

from auditor.config import ConfigError, load_config
from auditor.email_settings import EmailSettings
from auditor.notify import (
    NotifySettings,
    build_notification,
    deliver_notifications,
    encode_body,
    plan_notifications,
    slack_payload,
    teams_payload,
    webhook_payload,
)
from auditor.notify.slack import (
    MAX_BLOCKS,
    MAX_FIELD_CHARS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    TEXT_BUDGET,
    text_length,
)
from auditor.notify.teams import CARD_CONTENT_TYPE, MAX_PAYLOAD_BYTES
from auditor.report import build_digest, plan_deliveries
from auditor.result import AuditResult, RuleFailure
from auditor.routing import Scope, company_tags_series
from auditor.sandbox import SandboxOptions, SandboxServer, load_fleet
from auditor.testing.synthetic import synthetic_result, tiny_result
from tests.conftest import FLEET_NOW
from tests.hostile_codat import LoopbackServer
from tests.test_nightly_run import nightly

AS_OF = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "notification.schema.json"
#: A company name that tries every trick: Slack pings and links, Teams links and mentions.
EVIL = "<!channel> @here <https://evil.example|click> & [click](https://evil.example) <at>x</at>"
#: The secret part of a webhook URL (what Slack and Teams put in the path).
TOKEN = "T000/B000/SECRETxTOKENx1234567890"


@dataclass
class Receiver:
    """Records requests; answers ``script`` in order, then 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: LoopbackServer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {"path": request.path, "headers": dict(request.headers), "body": json.loads(body)}
        )
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "no")

    def url(self, path: str = f"/services/{TOKEN}") -> str:
        assert self.server is not None
        return f"{self.server.base_url}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with LoopbackServer(rec.handle) as server:
        rec.server = server
        yield rec


def _hostile_result() -> AuditResult:
    result = tiny_result(as_of=AS_OF)
    findings = result.findings.copy()
    findings.loc[0, "company_name"] = EVIL
    findings.loc[0, "message"] = f"stale for {EVIL}"
    return replace(result, findings=findings)


def _settings(**channels: list[dict[str, Any]]) -> NotifySettings:
    return NotifySettings.model_validate(
        {"report_url": "https://ops.example.com/freshness/report.html", **channels}
    )


def _no_sleep(waits: list[float]) -> Any:
    return waits.append


# ------------------------------------------------------------------------------ shapes


def _check_slack(payload: dict[str, Any]) -> None:
    blocks = payload["blocks"]
    assert isinstance(blocks, list)
    assert 0 < len(blocks) <= MAX_BLOCKS
    assert blocks[0]["type"] == "header"
    assert len(blocks[0]["text"]["text"]) <= MAX_HEADER_CHARS
    assert {b["type"] for b in blocks} <= {"header", "section", "context", "divider", "actions"}
    for block in blocks:
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
            assert block["text"]["verbatim"] is True
            assert len(block["text"]["text"]) <= MAX_SECTION_CHARS
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= MAX_FIELD_CHARS for f in block.get("fields", []))
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
    assert isinstance(payload["text"], str)
    assert payload["text"]
    assert text_length(payload) <= TEXT_BUDGET <= 40_000


def _check_teams(payload: dict[str, Any]) -> None:
    assert payload["type"] == "message"
    attachment = payload["attachments"][0]
    assert attachment["contentType"] == CARD_CONTENT_TYPE
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] in ("1.2", "1.3", "1.4", "1.5")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert isinstance(card["body"], list)
    assert card["body"]
    assert {b["type"] for b in card["body"]} <= {"TextBlock", "Container", "FactSet"}
    assert len(encode_body(payload)) <= MAX_PAYLOAD_BYTES


def test_every_channel_arrives_in_its_documented_shape(receiver: Receiver) -> None:
    settings = _settings(
        slack=[{"url_env": "SLACK_URL"}],
        teams=[{"url_env": "TEAMS_URL"}],
        webhook=[{"url_env": "HOOK_URL"}],
    )
    env = {
        "SLACK_URL": receiver.url(f"/slack/{TOKEN}"),
        "TEAMS_URL": receiver.url(f"/teams/{TOKEN}"),
        "HOOK_URL": receiver.url("/hook"),
    }
    outcomes = deliver_notifications(_hostile_result(), settings, env=env)
    assert [(o.channel, o.sent, o.error) for o in outcomes] == [
        ("slack", True, None),
        ("teams", True, None),
        ("webhook", True, None),
    ]
    by_path = {r["path"].split("/")[1]: r for r in receiver.requests}
    assert by_path["slack"]["headers"]["Content-Type"] == "application/json"
    _check_slack(by_path["slack"]["body"])
    _check_teams(by_path["teams"]["body"])
    hook = by_path["hook"]["body"]
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(hook)
    assert hook["entries"]
    assert hook["entries_total"] >= len(hook["entries"])
    # The report link: a Slack button, a Teams OpenUrl action, a field of the webhook.
    slack = by_path["slack"]["body"]
    assert slack["blocks"][-1]["elements"][0]["url"] == settings.report_url
    card = by_path["teams"]["body"]["attachments"][0]["content"]
    assert card["actions"][0] == {
        "type": "Action.OpenUrl", "title": "Open the report", "url": settings.report_url,
    }  # fmt: skip
    assert hook["report_url"] == settings.report_url


def test_entries_are_grouped_per_company_and_rule() -> None:
    result = synthetic_result(200, as_of=AS_OF, seed=3)
    note = build_notification(result, max_items=500)
    keys = [(e.company_id, e.rule) for e in note.entries]
    assert len(keys) == len(set(keys)) == note.entries_total
    active = result.active
    assert note.entries_total == active.groupby(["company_id", "rule"], observed=True).ngroups
    errors = [e.severity == "error" for e in note.entries]
    assert errors == sorted(errors, reverse=True)  # errors first


def test_an_incomplete_audit_says_so_in_every_channel() -> None:
    result = tiny_result(as_of=AS_OF)
    fleet_row = result.findings.iloc[[0]].assign(
        rule="not-collected", company_id=None, company_name=None,
        message="the client's sync settings could not be read",
    )  # fmt: skip
    result = replace(result, findings=pd.concat([result.findings, fleet_row], ignore_index=True))
    assert result.incomplete
    note = build_notification(result)
    assert note.subject.startswith("INCOMPLETE")
    slack = json.dumps(slack_payload(note))
    teams = json.dumps(teams_payload(note))
    hook = webhook_payload(note)
    assert "*INCOMPLETE*" in slack
    assert "sync settings could not be read" in slack
    assert "INCOMPLETE" in teams
    assert "sync settings could not be read" in teams
    assert hook["incomplete"] is True
    assert any("sync settings" in n for n in hook["notices"])


# ------------------------------------------------------------------------------ hostile text


def test_hostile_names_cannot_ping_or_link() -> None:
    note = build_notification(_hostile_result())
    slack = slack_payload(note)
    texts = [json.dumps(b) for b in slack["blocks"]]
    joined = "".join(texts)
    assert "&lt;!channel&gt;" in joined
    for raw in ("<!channel>", "<https://evil", "<at>", "<!here"):
        assert raw not in joined
    teams = teams_payload(note)
    blocks = json.dumps(teams["attachments"][0]["content"]["body"], ensure_ascii=False)
    assert "\\\\[click\\\\]" in blocks  # JSON of a backslash-escaped [click]
    assert "](https://" not in blocks
    assert "https://evil" not in blocks
    assert "<at>" not in blocks
    assert "msteams" not in json.dumps(teams["attachments"][0]["content"]
                                                             ["body"])
    assert EVIL in json.dumps(webhook_payload(note), ensure_ascii=False)  # data stays data


# ------------------------------------------------------------------------------ retries


def test_429_with_retry_after_is_waited_out(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "2"}), (200, {})]
    waits: list[float] = []
    outcomes = deliver_notifications(
        _hostile_result(), _settings(slack=[{"url_env": "U"}]),
        env={"U": receiver.url()}, sleep=_no_sleep(waits),
    )  # fmt: skip
    assert outcomes[0].sent
    assert outcomes[0].error is None
    assert waits == [2.0]
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]


def test_500_then_200_is_retried_with_backoff(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (503, {}), (200, {})]
    waits: list[float] = []
    outcomes = deliver_notifications(
        _hostile_result(), _settings(teams=[{"url_env": "U"}]),
        env={"U": receiver.url()}, sleep=_no_sleep(waits),
    )  # fmt: skip
    assert outcomes[0].sent
    assert waits == [0.5, 1.0]
    assert len(receiver.requests) == 3


def test_a_retry_after_past_the_budget_fails_at_once(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "3600"})]
    waits: list[float] = []
    outcomes = deliver_notifications(
        _hostile_result(), _settings(slack=[{"url_env": "U"}]),
        env={"U": receiver.url()}, sleep=_no_sleep(waits),
    )  # fmt: skip
    assert outcomes[0].failed
    assert "HTTP 429" in (outcomes[0].error or "")
    assert waits == []
    assert len(receiver.requests) == 1


def test_a_failure_never_shows_the_url(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script = [(500, {})] * 10
    waits: list[float] = []
    url = receiver.url()
    settings = _settings(slack=[{"url_env": "U", "name": "ops"}], webhook=[{"url_env": "MISSING"}])
    with caplog.at_level(logging.DEBUG):
        outcomes = deliver_notifications(
            _hostile_result(), settings, env={"U": url}, sleep=_no_sleep(waits)
        )
    slack, hook = outcomes
    assert slack.failed
    assert "not delivered after 4 attempts" in (slack.error or "")
    assert "slack ops" in (slack.error or "")
    assert hook.failed
    assert "MISSING is not set" in (hook.error or "")
    assert len(receiver.requests) == 4
    assert len(waits) == 3
    ours = [r for r in caplog.records if not r.name.startswith("aiohttp")]  # not the receiver
    seen = " ".join(r.getMessage() for r in ours) + " ".join(o.error or "" for o in outcomes)
    assert "notification failed" in caplog.text
    assert url not in seen
    assert TOKEN not in seen


def test_a_4xx_is_not_retried_and_plain_http_elsewhere_is_refused(receiver: Receiver) -> None:
    receiver.script = [(400, {})]
    out = deliver_notifications(
        _hostile_result(), _settings(slack=[{"url_env": "U"}]), env={"U": receiver.url()}
    )
    assert out[0].failed
    assert "refused: HTTP 400" in (out[0].error or "")
    assert len(receiver.requests) == 1
    out = deliver_notifications(
        _hostile_result(),
        _settings(slack=[{"url_env": "U"}]),
        env={"U": f"http://hooks.example.com/services/{TOKEN}"},
    )
    assert out[0].failed
    assert "https" in (out[0].error or "")
    assert TOKEN not in (out[0].error or "")


def test_dry_run_writes_the_bodies_and_sends_nothing(receiver: Receiver, tmp_path: Path) -> None:
    out = deliver_notifications(
        _hostile_result(), _settings(slack=[{"url_env": "U"}]), env={}, dry_run=True,
        out_dir=tmp_path,
    )  # fmt: skip
    assert out[0].path == tmp_path / "notify-slack-0.json"
    assert not out[0].sent
    _check_slack(json.loads(out[0].path.read_text()))
    assert receiver.requests == []


# ------------------------------------------------------------------------------ routing


def _tagged_result() -> AuditResult:
    result = synthetic_result(300, as_of=AS_OF, seed=5)
    ids = sorted(result.findings["company_id"].astype(str).unique())
    tags = {cid: json.dumps({"owner": "team-a" if i % 2 else "team-b"}, separators=(",", ":"))
            for i, cid in enumerate(ids)}  # fmt: skip
    return replace(result, company_tags=company_tags_series(tags))


def _team_a(result: AuditResult) -> set[str]:
    tags = result.company_tags
    return {c for c, t in tags.items() if '"team-a"' in str(t)}


def test_email_routes_by_tags_and_min_nights() -> None:
    result = _tagged_result()
    email = EmailSettings.model_validate(
        {"routes": [{"to": ["a@example.com"], "tags": {"owner": "team-a"}, "min_nights": 3}]}
    )
    (delivery,) = plan_deliveries(result, email)
    scoped = delivery.scope.apply(result)
    assert len(scoped.findings) > 0
    assert set(scoped.findings["company_id"]) <= _team_a(result)
    assert (scoped.findings["nights_open"] >= 3).all()
    expected = result.findings.loc[
        result.findings["company_id"].isin(_team_a(result)) & (result.findings["nights_open"] >= 3)
    ]
    assert len(scoped.findings) == len(expected)
    assert delivery.scope.label() == "tag owner=team-a & open 3+ nights"
    # The team's digest leads with the team's actions (Start here and actions.csv).
    msg = build_digest(result, recipients=delivery.recipients, scope=delivery.scope)
    html = str(msg.get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert 'id="start-here"' in html
    (attachment,) = [a for a in msg.iter_attachments() if a.get_filename() == "actions.csv"]
    content = attachment.get_content()
    raw = content if isinstance(content, bytes) else content.encode()
    if attachment.get_content_type() == "application/gzip":
        raw = gzip.decompress(raw)
    rows = pd.read_csv(io.BytesIO(raw))
    assert len(rows) > 0
    assert set(rows["company_id"]) <= _team_a(result)


def test_slack_routes_by_tags_and_min_nights(receiver: Receiver) -> None:
    result = _tagged_result()
    settings = _settings(
        slack=[{"url_env": "A", "tags": {"owner": ["team-a"]}, "min_nights": 3, "max_items": 200},
               {"url_env": "B", "tags": {"owner": "nobody"}}],
    )  # fmt: skip
    plans = plan_notifications(result, settings)
    assert [p.url_env for p in plans] == ["A"]  # nobody's scope is empty: no message
    out = deliver_notifications(result, settings, env={"A": receiver.url("/a")})
    assert out[0].sent
    names = {n for n in result.findings["company_name"].astype(str)}
    team_a = _team_a(result)
    body = json.dumps(receiver.requests[0]["body"])
    allowed = set(result.findings.loc[result.findings["company_id"].isin(team_a), "company_name"])
    shown = {n for n in names if f"*{n}*" in body}
    assert shown
    assert shown <= allowed
    note = build_notification(result, scope=plans[0].scope, max_items=10_000)
    assert all(e.nights_open >= 3 and e.company_id in team_a for e in note.entries)


def test_a_tag_route_matches_nothing_without_tags() -> None:
    result = synthetic_result(50, as_of=AS_OF)
    scope = Scope.of(EmailSettings.model_validate(
        {"routes": [{"to": ["a@example.com"], "tags": {"owner": "x"}}]}
    ).routes)  # fmt: skip
    assert scope.apply(result).findings.empty


# ------------------------------------------------------------------------------ config


def test_config_reads_notify_routes_and_refuses_a_url(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[notify]\nreport_url = "https://ops.example.com/r.html"\n'
        '[[notify.slack]]\nurl_env = "SLACK_WEBHOOK_URL"\nseverities = ["error"]\n'
        'tags = {owner = "team-a", tier = ["gold", "platinum"]}\nmin_nights = 2\n'
        '[[notify.teams]]\nurl_env = "TEAMS_WEBHOOK_URL"\n'
        '[[email.routes]]\nto = ["a@example.com"]\ntags = {owner = "team-a"}\nmin_nights = 3\n'
    )
    cfg = load_config(good)
    assert cfg.notify.slack[0].tags == {"owner": "team-a", "tier": ["gold", "platinum"]}
    assert cfg.email.routes[0].min_nights == 3
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[notify.slack]]\nurl = "https://hooks.slack.com/services/{TOKEN}"\n'
                   'url_env = "X"\n')  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "notify.slack.0.url" in str(err.value)
    assert TOKEN not in str(err.value)
    bad.write_text('[[notify.slack]]\nurl_env = "https://hooks.slack.com/x"\n')
    with pytest.raises(ConfigError, match="environment variable name"):
        load_config(bad)


# ------------------------------------------------------------------------------ size


@pytest.mark.parametrize("companies", [500, 20_000])
def test_sizes_stay_within_limits_at_fleet_scale(companies: int) -> None:
    result = synthetic_result(companies, as_of=AS_OF, realistic=True)
    note = build_notification(result, max_items=200, report_url="https://ops.example.com/r.html")
    slack = slack_payload(note)
    _check_slack(slack)
    _check_teams(teams_payload(note))
    more = slack["blocks"][-2]["elements"][0]["text"]
    assert more.startswith("and ")
    assert more.endswith("more — see the report")


# ------------------------------------------------------------------------------ auditor run


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    fleet = load_fleet(Path(__file__).parent / "fixtures" / "fleet_small.json")
    server = SandboxServer(fleet, SandboxOptions(clock=lambda: FLEET_NOW))
    server.start()
    yield server
    server.close()


def test_auditor_run_exits_2_when_a_notification_fails(
    sandbox: SandboxServer, receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "auditor.toml"
    config.write_text(
        '[run]\nmax_attempts = 2\n[notify]\nmax_attempts = 2\n'
        '[[notify.slack]]\nurl_env = "SLACK_URL"\nname = "ops"\n'
        '[[notify.webhook]]\nurl_env = "HOOK_URL"\n'
    )
    receiver.script = [(500, {}), (500, {})]  # Slack fails twice; the webhook then gets 200
    env = {"SLACK_URL": receiver.url(f"/slack/{TOKEN}"), "HOOK_URL": receiver.url("/hook")}
    run = nightly(sandbox, tmp_path, config, "--fail-on", "never", env=env)
    assert run.returncode == 2, run.stderr
    assert "notification failed: slack ops: not delivered after 2 attempts" in run.stderr
    assert [r["path"] for r in receiver.requests] == [f"/slack/{TOKEN}"] * 2 + ["/hook"]
    assert TOKEN not in run.stdout + run.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["exit_code"] == 2
    assert "notification failed" in results["reason"]
    assert [(n["channel"], n["route"], n["sent"]) for n in results["notifications"]] == [
        ("slack", "slack ops", False), ("webhook", "webhook HOOK_URL", True),
    ]
    schema = json.loads((SCHEMA.parent / "results.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(results)

    # --dry-run writes the bodies instead of sending them (one more night: a run per night).
    dry = nightly(sandbox, tmp_path, config, "--fail-on", "never", "--dry-run", env=env,
                  as_of="2024-05-01T07:00:00Z")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert len(receiver.requests) == 3
    assert (tmp_path / "out" / "notify-slack-0.json").is_file()
    assert (tmp_path / "out" / "notify-webhook-1.json").is_file()


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("1. Acme", "1\\. Acme"),
        ("- Acme", "\\- Acme"),
        ("# Acme", "\\# Acme"),
        ("**Acme** _x_ `y`", "\\*\\*Acme\\*\\* \\_x\\_ \\`y\\`"),
        ("see https://evil.example", "see https:\u2060//evil.example"),
        ("Acme Ltd. - UK", "Acme Ltd. - UK"),
    ],
)
def test_teams_markdown_is_escaped(raw: str, escaped: str) -> None:
    from auditor.notify.teams import escape

    assert escape(raw) == escaped


def test_slack_escape_keeps_entities_whole() -> None:
    from auditor.notify.slack import _cut, escape

    assert escape("a & <b> > c") == "a &amp; &lt;b&gt; &gt; c"
    assert _cut("x" * 10 + "&amp;", 12) == "x" * 10 + "…"


def test_an_empty_night_says_so_and_never_all_clear_when_incomplete() -> None:
    result = tiny_result(as_of=AS_OF)
    empty = replace(result, findings=result.findings.head(0), resolved=result.resolved.head(0))
    slack = json.dumps(slack_payload(build_notification(empty)))
    assert "Nothing open in scope tonight." in slack
    _check_slack(json.loads(slack))
    _check_teams(teams_payload(build_notification(empty)))
    failure = RuleFailure("stale", "FA101", "boom", fleet_wide=True)
    broken = replace(empty, rule_failures=(failure,))
    teams = json.dumps(teams_payload(build_notification(broken)))
    assert "the audit is incomplete" in teams
    assert "Nothing open in scope tonight" not in teams


def test_with_the_actions_table_an_entry_is_one_ranked_action() -> None:
    from auditor.actions import build_actions

    result = synthetic_result(300, as_of=AS_OF, seed=5)
    actions = build_actions(result)
    note = build_notification(result, max_items=10, actions=actions)
    assert note.entries_total == len(actions)
    top = actions.head(10)
    assert [e.company_id for e in note.entries] == top["company_id"].fillna("").astype(str).tolist()
    for entry, text in zip(note.entries, top["action_text"].astype(str), strict=True):
        assert entry.remedy.startswith(text[:40])  # the one action to take, not the rule's remedy
