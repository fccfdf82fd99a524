"""The sandbox keeps serving while it scans the fleet for webhooks and posts them.

A generated fleet posts to a real in-process listener. The script times ``GET dataStatus``
requests (one client, sequential) while the sandbox is idle, then while it walks a sandbox
day of webhooks (``flush_webhooks`` after moving the clock a day, in 4-hour steps), and
prints the scan's duration, the events and the request latencies (p50 / p99 / max).

    python benchmarks/bench_sandbox_webhooks.py [--companies 500]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from auditor.listen.background import BackgroundListener
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _latencies(client: httpx.Client, ids: list[str], stop: threading.Event) -> list[float]:
    out: list[float] = []
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        client.get(f"/companies/{ids[i % len(ids)]}/dataStatus")
        out.append(time.perf_counter() - started)
        i += 1
    return out


def _summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"n={len(ms)} p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=500)
    args = parser.parse_args()
    start = datetime(2026, 11, 1, 6, tzinfo=UTC)
    clock = Clock(start)
    store = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    listener = BackgroundListener(store, clock=clock).start()
    options = SandboxOptions(
        clock=clock, webhook_url=listener.url, webhook_secret=listener.secret,
        webhook_step_minutes=240,
    )  # fmt: skip
    with SandboxServer(generate_fleet(args.companies, 1, start), options=options) as server:
        auth = {"Authorization": "Basic " + base64.b64encode(server.api_key.encode()).decode()}
        ids = list(server.fleet.company_ids)
        with httpx.Client(base_url=server.base_url, headers=auth) as client:
            stop = threading.Event()
            timer = threading.Timer(3.0, stop.set)
            timer.start()
            idle = _latencies(client, ids, stop)
            print(f"idle:        {_summary(idle)}")
            stop = threading.Event()
            result: list[float] = []
            worker = threading.Thread(
                target=lambda: result.extend(_latencies(client, ids, stop)), daemon=True
            )
            worker.start()
            clock.now = start + timedelta(days=1)
            began = time.perf_counter()
            assert server.flush_webhooks(timeout=600)
            scan = time.perf_counter() - began
            stop.set()
            worker.join()
            print(f"during scan: {_summary(result)}")
        stats = server.webhook_stats
    counts = listener.stop()
    print(
        f"scan + delivery of one sandbox day ({args.companies} companies, 6 steps): {scan:.1f} s; "
        f"events {stats.events if stats else {}}; listener {counts}"
    )


if __name__ == "__main__":
    main()
