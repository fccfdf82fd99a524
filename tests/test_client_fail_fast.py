"""Errors no retry can fix fail at once: a host that does not resolve, an unsupported scheme.

The client's whole stack is real (httpx, httpcore, anyio, tenacity); where a test needs a
resolver answer this machine cannot be relied on to give (no DNS server at all in CI), only
``socket.getaddrinfo`` is replaced, so that the error comes up through the real layers as it
does in production. A name under ``.invalid`` (RFC 6761) is refused before any lookup, so the
CLI tests need no DNS server either and never wait for one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hostile_codat import LoopbackServer
from typer.testing import CliRunner

from auditor.cli import app
from auditor.codat import CodatBaseURLError, CodatClient, CodatConnectError, RetryPolicy
from auditor.collector import TransportName, collector_transport

#: Registered as a secret by the client (redacted from every log line in this process): a
#: word that occurs in other tests' log lines, such as "key", would be redacted there too.
API_KEY = "fail-fast-test-api-key"

FAST = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.02, jitter=0.0)
INVALID = "http://does-not-resolve.invalid"


def _failing_resolver(
    monkeypatch: pytest.MonkeyPatch, host: str, errno: int, *, after: int = 0
) -> list[str]:
    """``socket.getaddrinfo`` fails for ``host`` with ``errno`` (after ``after`` good answers);
    other names resolve as usual. Returns the names looked up."""
    real: Callable[..., Any] = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(name: Any, *args: Any, **kwargs: Any) -> Any:
        text = name.decode() if isinstance(name, bytes) else str(name)  # asyncio sends bytes
        looked_up.append(text)
        if text == host:
            if looked_up.count(host) > after:
                raise socket.gaierror(errno, "Name or service not known (test resolver)")
            return real("127.0.0.1", *args, **kwargs)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def _list(client: CodatClient) -> Any:
    async def go() -> Any:
        async with client:
            return await client.list_companies()

    return asyncio.run(go())


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_a_host_that_does_not_resolve_is_not_retried(
    transport: TransportName, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through httpx's pool (``ConnectError``) and through aiohttp, the collector's transport
    (httpx-aiohttp raises ``ConnectTimeout`` for aiohttp's DNS error)."""
    looked_up = _failing_resolver(monkeypatch, "codat.example.test", socket.EAI_NONAME)
    client = CodatClient(
        API_KEY,
        base_url="http://codat.example.test",
        retry=FAST,
        transport=collector_transport(transport),
    )
    with pytest.raises(CodatBaseURLError) as info:
        _list(client)
    assert isinstance(info.value, CodatConnectError)  # callers catching connect errors still do
    assert info.value.request_sent is False
    message = str(info.value)
    assert "codat.example.test" in message
    assert "does not resolve" in message
    assert "CODAT_BASE_URL" in message
    assert "\n" not in message
    assert looked_up.count("codat.example.test") == 1
    assert sum(client.stats.requests.values()) == 1
    assert sum(client.stats.retries.values()) == 0


def test_a_temporary_resolver_failure_fails_fast_before_the_first_answer_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before any answer: the host has never resolved for this client, nothing to wait for.
    _failing_resolver(monkeypatch, "codat.example.test", socket.EAI_AGAIN)
    first = CodatClient(API_KEY, base_url="http://codat.example.test", retry=FAST)
    with pytest.raises(CodatBaseURLError):
        _list(first)
    assert sum(first.stats.requests.values()) == 1

    # After an answer, EAI_AGAIN is a resolver hiccup: retried like a refused connection.
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.json_response(
            {"results": [], "pageNumber": 1, "pageSize": 100, "totalResults": 0}
        )
        response.force_close()  # a new connection (and a new lookup) per request
        return response

    with LoopbackServer(handle) as server:
        monkeypatch.undo()
        _failing_resolver(monkeypatch, "codat.example.test", socket.EAI_AGAIN, after=1)
        client = CodatClient(
            API_KEY, base_url=f"http://codat.example.test:{server.port}", retry=FAST
        )

        async def twice() -> None:
            async with client:
                assert await client.list_companies() == []
                await client.list_companies()

        with pytest.raises(CodatConnectError) as info:
            asyncio.run(twice())
        assert not isinstance(info.value, CodatBaseURLError)
        assert sum(client.stats.requests.values()) == 1 + FAST.max_attempts


def test_an_unsupported_scheme_is_not_retried() -> None:
    client = CodatClient(API_KEY, base_url="ftp://127.0.0.1:9", retry=FAST)
    with pytest.raises(CodatBaseURLError) as info:
        _list(client)
    assert "unsupported scheme ('ftp'" in str(info.value)
    assert sum(client.stats.requests.values()) == 1


def test_a_refused_connection_is_still_retried() -> None:
    client = CodatClient(API_KEY, base_url="http://127.0.0.1:9", retry=FAST)  # nothing listens
    with pytest.raises(CodatConnectError) as info:
        _list(client)
    assert not isinstance(info.value, CodatBaseURLError)
    assert sum(client.stats.requests.values()) == FAST.max_attempts


def test_an_invalid_name_is_refused_without_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = _failing_resolver(monkeypatch, "unused", socket.EAI_NONAME)
    client = CodatClient(API_KEY, base_url=INVALID, retry=FAST)
    with pytest.raises(CodatBaseURLError, match=r"does-not-resolve\.invalid"):
        _list(client)
    assert looked_up == []


@pytest.mark.parametrize(
    ("command", "base_url"),
    [("snapshot", INVALID), ("run", INVALID), ("snapshot", "http://codat.example.test")],
)
def test_cli_fails_fast_with_exit_2_on_a_host_that_does_not_resolve(
    command: str, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.invalid`` needs no lookup; ``codat.example.test`` fails in the (replaced) resolver,
    through the collector's real transport."""
    _failing_resolver(monkeypatch, "codat.example.test", socket.EAI_NONAME)
    monkeypatch.setenv("CODAT_API_KEY", "sk-test-fail-fast")
    for name in ("AUDITOR_CONFIG", "CODAT_BASE_URL", "AUDITOR_HEARTBEAT_URL"):
        monkeypatch.delenv(name, raising=False)
    host = base_url.removeprefix("http://")
    args = [command, "--store", str(tmp_path / "store"), "--base-url", base_url]
    if command == "run":
        args += ["--out", str(tmp_path / "out"), "--progress", "off", "--dry-run"]
    else:
        args += ["--progress", "off"]
    started = time.monotonic()
    result = CliRunner().invoke(app, args)
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert elapsed < 5, elapsed
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    lines = [line for line in output.splitlines() if "does not resolve" in line]
    assert lines, output
    assert host in lines[0]
    assert "CODAT_BASE_URL" in lines[0]
    assert "attempts" not in lines[0]  # "[GET /companies, 1 attempt]": never retried
    assert "sk-test-fail-fast" not in output
    assert "Traceback" not in output
