"""The heartbeat of ``auditor run`` (healthchecks.io convention): a real aiohttp receiver on
127.0.0.1, the CLI in a real subprocess against the sandbox. Start + success on a run that
works, start + fail on a run that fails (exit 2), and a receiver that is down changes nothing
but a warning that does not show the URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from hostile_codat import LoopbackServer
from test_nightly_run import config, nightly, sandbox  # noqa: F401 (fixtures)

from auditor.heartbeat import HEARTBEAT_URL_ENV, Heartbeat, heartbeat, ping_url
from auditor.sandbox import SandboxServer

CHECK = "5e7c1f0a-4d2b-4c5e-9a61-2f3b8d9e0c11"  # the check's UUID: the secret part


@dataclass
class Receiver:
    """What the receiver saw: (method, path, query, body) per ping; ``statuses`` to answer."""

    seen: list[tuple[str, str, dict[str, list[str]], str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        with self.lock:
            self.seen.append((request.method, request.path, parse_qs(request.query_string), body))
            status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="OK")

    def kinds(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] if path.endswith(("start", "fail")) else "success"
                for _, path, _, _ in self.seen]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    with LoopbackServer(state.handle) as server:
        yield state, f"{server.base_url}/ping/{CHECK}"


def test_start_and_success_on_a_good_run_start_and_fail_on_a_failing_one(
    sandbox: SandboxServer,  # noqa: F811
    tmp_path: Path,
    config: Path,  # noqa: F811
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    good = nightly(
        sandbox, tmp_path, config, "--dry-run", "--fail-on", "never",
        env={HEARTBEAT_URL_ENV: url},
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert state.kinds() == ["start", "success"]
    (m1, p1, q1, b1), (m2, p2, q2, b2) = state.seen
    assert (m1, p1, m2, p2) == ("POST", f"/ping/{CHECK}/start", "POST", f"/ping/{CHECK}")
    assert q1["rid"] == q2["rid"]  # one run id pairs the start with its end
    assert "started" in b1
    assert "exit 0: ok" in b2
    assert CHECK not in good.stderr + good.stdout  # the URL is a secret
    assert "heartbeat success ping sent" in good.stderr

    state.seen.clear()
    bad = nightly(
        sandbox, tmp_path, config, "--dry-run", api_key="wrong-key",
        as_of="2024-05-02T06:00:00Z", env={HEARTBEAT_URL_ENV: url},
    )  # fmt: skip
    assert bad.returncode == 2
    assert state.kinds() == ["start", "fail"]
    assert state.seen[0][2]["rid"] == state.seen[1][2]["rid"] != q1["rid"]
    assert "exit 2" in state.seen[1][3]
    assert "wrong-key" not in state.seen[1][3]  # the API key is redacted from the body too
    assert CHECK not in bad.stderr + bad.stdout


def test_a_receiver_that_is_down_changes_nothing_but_a_warning(
    sandbox: SandboxServer,  # noqa: F811
    tmp_path: Path,
    config: Path,  # noqa: F811
) -> None:
    """A run that fails at once (a wrong API key) keeps the test short: its exit code, its
    results.json and its log are what they are without a heartbeat, plus two warnings."""
    url = f"http://127.0.0.1:9/ping/{CHECK}"  # discard port: nothing listens
    proc = nightly(
        sandbox, tmp_path, config, "--dry-run", api_key="wrong-key", env={HEARTBEAT_URL_ENV: url}
    )
    assert proc.returncode == 2, proc.stderr  # the wrong key's exit code, not the heartbeat's
    assert "Codat refused the API key" in proc.stderr
    assert "heartbeat start ping failed after 3 attempts" in proc.stderr
    assert "heartbeat fail ping failed after 3 attempts" in proc.stderr
    assert "WARNING" in proc.stderr
    assert CHECK not in proc.stderr + proc.stdout
    assert (tmp_path / "out" / "results.json").is_file()


def test_retries_on_5xx_and_429_not_on_4xx(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    beat = Heartbeat(url=url, run_id="r1", backoff=0.01)
    state.statuses = [503, 429, 200]
    assert beat.start() is True
    assert len(state.seen) == 3
    state.seen.clear()
    state.statuses = [404]
    assert beat.finish(0, "ok") is False  # a wrong URL: refused, not retried
    assert len(state.seen) == 1
    assert beat.finish(0, "ok") is True  # one end per run: not sent again
    assert len(state.seen) == 1


def test_ping_urls_keep_a_query_and_settings_order() -> None:
    base = "https://hc-ping.com/abc/my-job?create=1"
    start = urlsplit(ping_url(base, "start", "r-1"))
    assert start.path == "/abc/my-job/start"
    assert parse_qs(start.query) == {"create": ["1"], "rid": ["r-1"]}
    assert urlsplit(ping_url(base + "/", "fail")).path == "/abc/my-job/fail"
    assert urlsplit(ping_url(base, "success")).path == "/abc/my-job"
    env = {HEARTBEAT_URL_ENV: "http://env.example/ping/aaaaaaaa-env"}
    assert heartbeat("r", file_url="http://file.example/x", env=env).url == env[HEARTBEAT_URL_ENV]
    assert heartbeat("r", file_url="http://file.example/x", env={}).url == "http://file.example/x"
    assert not heartbeat("r", env={}).enabled
    assert heartbeat("r", env={}).finish(2) is True  # no URL: nothing to do
    assert heartbeat("r", env={HEARTBEAT_URL_ENV: "ftp://x/y"}).url is None


def test_a_bad_heartbeat_url_in_the_config_is_refused_without_echoing_it(tmp_path: Path) -> None:
    from auditor.config import ConfigError, load_config

    path = tmp_path / "auditor.toml"
    path.write_text('[run]\nheartbeat_url = "hc-ping.com/s3cret-uuid"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value) + " ".join(getattr(info.value, "problems", ()))
    assert "heartbeat_url" in text
    assert "s3cret-uuid" not in text
