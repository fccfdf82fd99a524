"""Benchmark: does intraday forwarding (``[[notify.forward]]``) cost the acknowledgements anything?

Runs the real listener in-process on a fresh store and sends signed ``connection.disconnected``
events (every one matching a forward route to a Slack-style endpoint and a JSON webhook) on an
open-loop schedule, in three modes:

* ``off``      no forward route (the listener alone);
* ``fast``     forwarding to a receiver that answers 200 at once;
* ``hanging``  forwarding to a receiver that holds every request 5 s and answers 503 (a receiver
               "down" the slow way: every attempt costs its whole timeout).

A receiver is an aiohttp server on 127.0.0.1 in its own thread. Prints, per mode: events acked,
ack latency p50 / p99 / max (client side, request sent to answer), messages sent / failed,
events dropped (queue full).

Usage::

    .venv/bin/python benchmarks/bench_forward.py [--events 2000] [--rate 500] [--queue 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from auditor.listen import ListenerServer, signed_headers
from auditor.notify.forward import Forwarder
from auditor.notify_settings import NotifySettings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    def __init__(self, hang: float, status: int) -> None:
        self.hang, self.status, self.count = hang, status, 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        if self.hang:
            await asyncio.sleep(self.hang)
        return web.Response(status=self.status, text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    def __enter__(self) -> Receiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def body(n: int) -> str:
    return json.dumps(
        {
            "id": f"evt-{n}",
            "eventType": "connection.disconnected",
            "generatedDate": "2026-12-01T14:02:00Z",
            "payload": {
                "referenceCompany": {"id": f"c-{n % 500}", "name": f"Company {n % 500}",
                                     "tags": {"tier": "gold"}},
                "connection": {"id": f"k-{n}", "status": "Deauthorized", "platformName": "Xero"},
            },
        }
    )  # fmt: skip


async def run(
    mode: str, events: int, rate: float, queue: int, per_second: float
) -> dict[str, Any]:
    receiver = None
    forwarder = None
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        if mode != "off":
            receiver = Receiver(5.0, 503) if mode == "hanging" else Receiver(0.0, 200)
            receiver.__enter__()
            base = f"http://127.0.0.1:{receiver.port}"
            settings = NotifySettings.model_validate(
                {
                    "forward_queue": queue,
                    "forward_per_second": per_second,
                    "timeout": 2.0,
                    "max_attempts": 2,
                    "max_seconds": 10,
                    "forward": [{"events": ["connection.disconnected"], "tags": {"tier": "gold"},
                                 "slack": ["S_URL"], "webhook": ["W_URL"]}],
                }
            )  # fmt: skip
            forwarder = Forwarder(
                settings, store, env={"S_URL": f"{base}/s/T0/B0/x", "W_URL": f"{base}/w/x"},
                drain_seconds=1.0,
            )  # fmt: skip
        server = ListenerServer(store, SECRET, port=0, sink=forwarder)
        await server.start()
        payloads = [(f"m{n}", body(n)) for n in range(events)]
        signed = [(b, signed_headers(SECRET, i, b)) for i, b in payloads]
        latencies: list[float] = []
        acked = 0
        conn = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def send(data: str, headers: dict[str, str]) -> None:
                nonlocal acked
                started = time.perf_counter()
                async with session.post(server.url + "/webhooks/codat", data=data,
                                        headers=headers) as r:  # fmt: skip
                    await r.read()
                    if r.status == 200:
                        acked += 1
                latencies.append(time.perf_counter() - started)

            t0 = time.perf_counter()
            tasks = []
            for n, (data, headers) in enumerate(signed):
                due = t0 + n / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(data, headers)))
            await asyncio.gather(*tasks)
        if forwarder is not None and mode == "fast" and per_second >= 100:
            deadline = time.monotonic() + 30
            while forwarder.counts["sent"] < 2 * forwarder.counts["queued"] and (
                time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
        await server.stop()
        if receiver is not None:
            receiver.__exit__()
    latencies.sort()
    counts = forwarder.counts if forwarder is not None else {}
    return {
        "mode": mode,
        "acked": acked,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        **{k: counts.get(k, 0) for k in ("queued", "sent", "failed", "dropped")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--queue", type=int, default=1000)
    parser.add_argument("--per-second", type=float, default=5.0, help="forward_per_second")
    parser.add_argument("--modes", nargs="+", default=["off", "fast", "hanging"])
    args = parser.parse_args()
    print(f"{args.events} events at {args.rate:.0f}/s, forward queue {args.queue}, "
          f"forward_per_second {args.per_second:g}")
    print("mode     acked  ack p50   ack p99   ack max   queued  sent  failed  dropped")
    for mode in args.modes:
        r = asyncio.run(run(mode, args.events, args.rate, args.queue, args.per_second))
        print(f"{r['mode']:8} {r['acked']:5}  {r['p50_ms']:6.1f}ms  {r['p99_ms']:6.1f}ms  "
              f"{r['max_ms']:6.1f}ms  {r['queued']:6}  {r['sent']:4}  {r['failed']:6}  "
              f"{r['dropped']:7}")  # fmt: skip


if __name__ == "__main__":
    main()
