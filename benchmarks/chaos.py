"""Chaos run: collect a fleet from a sandbox that misbehaves on purpose, and count.

    .venv/bin/python benchmarks/chaos.py [--companies 1000] [--seed 7]

The sandbox injects 5xx answers, hangs (past the client's timeout), connection resets and
malformed JSON at the given rates, and rate-limits at --rate-limit per window. The script
prints the faults the sandbox injected, the retries the client made, the requests that still
failed after retries (given up: they become rows of the snapshot's errors frame, the run
finishes), and the wall time. Every fault is drawn from the seed, so a run is reproducible.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.collector import collect
from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-rate", type=float, default=0.03)
    parser.add_argument("--timeout-rate", type=float, default=0.005)
    parser.add_argument("--reset-rate", type=float, default=0.01)
    parser.add_argument("--malformed-rate", type=float, default=0.01)
    parser.add_argument("--rate-limit", type=int, default=400, help="per 10 s window")
    parser.add_argument(
        "--ignore-headers",
        action="store_true",
        help="ignore X-Rate-Limit-* so that 429s happen (default: slow down before them)",
    )
    args = parser.parse_args()

    now = datetime(2026, 11, 23, 6, tzinfo=UTC)
    fleet = generate_fleet(args.companies, seed=args.seed, now=now)
    options = SandboxOptions(
        fault_rate=args.fault_rate,
        timeout_rate=args.timeout_rate,
        reset_rate=args.reset_rate,
        malformed_rate=args.malformed_rate,
        timeout_hang_seconds=5.0,
        rate_limit_per_min=args.rate_limit,
        rate_limit_window_seconds=10.0,
        seed=args.seed,
        clock=lambda: now,
    )
    with SandboxServer(fleet, options) as server:

        async def run() -> tuple[object, dict[str, dict[str, int]]]:
            async with CodatClient(
                server.api_key,
                base_url=server.base_url,
                timeout=2.0,
                # Our limit a little above the sandbox's and its X-Rate-Limit-* headers
                # ignored, so that the 429 + Retry-After path is exercised too.
                rate_limit=RateLimitPolicy(
                    requests_per_minute=args.rate_limit * 6 * 1.1,
                    window_seconds=10.0,
                    honour_headers=args.ignore_headers is False,
                ),
                retry=RetryPolicy(max_attempts=5, initial_wait=0.05, max_wait=1.0, jitter=0.05),
            ) as client:
                snap = await collect(client, snapshot_at=now)
                return snap, client.stats.as_dict()

        started = time.perf_counter()
        snap, client_stats = asyncio.run(run())
        elapsed = time.perf_counter() - started
        faults = server.stats.faults
        by_status = server.stats.by_status
    designed = sum(1 for record in fleet if record.data_status_error is not None)
    injected = sum(faults.values())
    given_up = client_stats["failures"]["total"]
    retries = client_stats["retries"]["total"]
    errors = snap.errors  # type: ignore[attr-defined]
    print(f"companies                      {args.companies}")
    print(f"requests sent (incl. retries)  {client_stats['requests']['total']}")
    print(f"faults injected                {injected}  {dict(sorted(faults.items()))}")
    print(f"429 answers                    {by_status.get(429, 0)}")
    print(f"retries made                   {retries}")
    recovered = injected + by_status.get(429, 0) - (given_up - designed)
    print(f"recovered (retried, then ok)   {recovered}")
    print(f"given up after retries         {given_up}")
    print(f"  of which the fleet's own      {designed}  (companies whose dataStatus always fails)")
    print(f"companies in the errors frame  {errors['company_id'].nunique()}")
    print(f"companies collected            {snap.status['company_id'].nunique()}")  # type: ignore[attr-defined]
    print(f"wall time                      {elapsed:.1f} s")
    if len(errors):
        print("given up, by cause:")
        causes = errors.groupby(["endpoint", "status_code", "attempts"], dropna=False).size()
        print(causes.to_string())


if __name__ == "__main__":
    main()
