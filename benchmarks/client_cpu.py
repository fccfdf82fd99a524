"""Client CPU per ``get_data_status`` call, and limiter throughput against the sandbox.

The sandbox runs in a separate process (so its CPU is not counted), on loopback, with no
latency. The client process's CPU time (user + system) is divided by the calls made.

    .venv/bin/python benchmarks/client_cpu.py                 # CPU per call
    .venv/bin/python benchmarks/client_cpu.py --limiter 1000  # + 1,000/min throughput run

Figures are printed as ratios (µs per call, share of the configured limit).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from typing import Any

from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.sandbox import SANDBOX_API_KEY, SandboxOptions, SandboxServer, generate_fleet


def _serve(port_out: Any, companies: int, rate_limit: int | None, window: float) -> None:
    options = SandboxOptions(rate_limit_per_min=rate_limit, rate_limit_window_seconds=window)
    server = SandboxServer(generate_fleet(companies, seed=1), options).start()
    port_out.put(server.port)
    server.serve_forever()


def start_sandbox(companies: int, rate_limit: int | None = None, window: float = 60.0) -> Any:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(queue, companies, rate_limit, window), daemon=True)
    proc.start()
    return proc, queue.get(timeout=60)


async def cpu_run(port: int, calls: int, concurrency: int, limited: bool) -> dict[str, float]:
    fleet = generate_fleet(200, seed=1)
    ids = [r.id for r in fleet if r.data_status_error is None]
    # "limited": per-company slots, pause gate and bucket all active, the bucket too large
    # to ever make us wait (we measure CPU, not the limit).
    rpm = 10_000_000.0 if limited else None
    policy = RateLimitPolicy(requests_per_minute=rpm, max_concurrent_per_company=10)
    async with CodatClient(
        SANDBOX_API_KEY,
        base_url=f"http://127.0.0.1:{port}",
        rate_limit=policy,
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        # Warm the pool and the caches.
        await asyncio.gather(*(client.get_data_status(ids[i % len(ids)]) for i in range(200)))
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(calls):
            queue.put_nowait(ids[i % len(ids)])
        entries = 0

        async def worker() -> None:
            nonlocal entries
            while not queue.empty():
                found = len(await client.get_data_status(queue.get_nowait()))
                entries += found  # not `entries += len(await ...)`: that reads first

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "cpu_us_per_call": cpu / calls * 1e6,
        "wall_us_per_call": wall / calls * 1e6,
        "entries_per_call": entries / calls,
        "calls_per_s": calls / wall,
    }


async def limiter_run(port: int, rpm: int, window: float, seconds: float) -> dict[str, float]:
    fleet = generate_fleet(200, seed=1)
    ids = [r.id for r in fleet if r.data_status_error is None]
    policy = RateLimitPolicy(requests_per_minute=rpm * 60.0 / window, window_seconds=window)
    async with CodatClient(
        SANDBOX_API_KEY, base_url=f"http://127.0.0.1:{port}", rate_limit=policy
    ) as client:
        done = 0
        deadline = time.monotonic() + seconds

        async def worker(n: int) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await client.get_data_status(ids[(n + done) % len(ids)])
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(200)))
        elapsed = time.monotonic() - start
        stats = client.stats.as_dict()
    return {
        "requests": done,
        "elapsed_s": elapsed,
        "share_of_limit": done / (elapsed / window * rpm),
        "429s": stats["rate_limited"]["total"],
        "retries": stats["retries"]["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--limiter", type=int, default=0, help="requests per window (0: skip)")
    parser.add_argument("--window", type=float, default=60.0, help="window length in seconds")
    parser.add_argument("--seconds", type=float, default=150.0, help="limiter run length")
    args = parser.parse_args()

    proc, port = start_sandbox(200)
    try:
        for limited in (False, True):
            figures = asyncio.run(cpu_run(port, args.calls, args.concurrency, limited))
            label = "with limiter gates" if limited else "no limiter       "
            print(
                f"get_data_status {label}: {figures['cpu_us_per_call']:.0f} µs CPU/call, "
                f"{figures['wall_us_per_call']:.0f} µs wall/call "
                f"({figures['calls_per_s']:.0f} calls/s, "
                f"{figures['entries_per_call']:.0f} entries/call, sandbox in another process)"
            )
    finally:
        proc.terminate()

    if args.limiter:
        proc, port = start_sandbox(200, rate_limit=args.limiter, window=args.window)
        try:
            figures = asyncio.run(limiter_run(port, args.limiter, args.window, args.seconds))
        finally:
            proc.terminate()
        print(
            f"limiter at {args.limiter}/{args.window:g}s vs sandbox limit {args.limiter}/"
            f"{args.window:g}s (fixed window), 200 tasks, {figures['elapsed_s']:.0f} s: "
            f"{figures['requests']:.0f} requests = {figures['share_of_limit']:.1%} of the limit, "
            f"{figures['429s']:.0f} × 429, {figures['retries']:.0f} retries"
        )


if __name__ == "__main__":
    main()
