"""kill -9 of a listener subprocess in the middle of a stream of webhooks, then a restart and
Codat's redeliveries: every acknowledged event is on disk exactly once, nothing twice."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from auditor.listen import load_events, signed_headers
from auditor.listen.eventlog import iter_segment_ids
from auditor.testing.listen import start_listener as _start_listener

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENTS = 400
KILL_AFTER = 150

pytestmark = pytest.mark.slow


def start_listener(store: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    return _start_listener(store, log, secret=SECRET)


def body(i: int) -> str:
    return json.dumps(
        {
            "id": f"codat-{i}",
            "eventType": "read.completed",
            "generatedDate": "2026-11-30T00:00:00Z",
            "payload": {
                "referenceCompany": {"id": f"company-{i % 37}"},
                "dataTypes": [{"connectionId": "c", "dataType": "invoices", "status": "Complete"}],
            },
        }
    )


async def deliver(
    url: str, ids: list[int], *, kill: subprocess.Popen[str] | None = None
) -> dict[int, str]:
    """Post every event (32 at a time); kill -9 ``kill`` once KILL_AFTER are acknowledged.
    Returns the acknowledged ones and their status."""
    acked: dict[int, str] = {}
    queue = collections.deque(ids)

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            i = queue.popleft()
            text = body(i)
            try:
                async with session.post(
                    url + "/webhooks/codat",
                    data=text,
                    headers=signed_headers(SECRET, f"msg_{i}", text),
                ) as response:
                    if response.status == 200:
                        acked[i] = (await response.json())["status"]
            except (TimeoutError, aiohttp.ClientError):
                continue  # not acknowledged: Codat would redeliver it
            if kill is not None and len(acked) >= KILL_AFTER and kill.poll() is None:
                os.kill(kill.pid, signal.SIGKILL)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(32)))
    return acked


def test_kill_9_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "listener.log"
    first, url = start_listener(store, log)
    try:
        acked = asyncio.run(deliver(url, list(range(EVENTS)), kill=first))
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acked) < EVENTS, len(acked)

    on_disk = collections.Counter(iter_segment_ids(store))
    assert max(on_disk.values()) == 1  # nothing stored twice
    assert all(on_disk[f"msg_{i}"] == 1 for i in acked)  # every acknowledged event, once

    # Restart; Codat redelivers everything (acknowledged or not): nothing is stored twice.
    second, url = start_listener(store, log)
    try:
        again = asyncio.run(deliver(url, list(range(EVENTS))))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    assert len(again) == EVENTS
    assert all(again[i] == "duplicate" for i in acked)
    on_disk = collections.Counter(iter_segment_ids(store))
    assert len(on_disk) == EVENTS
    assert set(on_disk.values()) == {1}
    events = load_events(store)
    assert events["event_id"].is_unique
    assert len(events) == EVENTS
    assert SECRET.removeprefix("whsec_") not in log.read_text()
