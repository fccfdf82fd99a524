"""Sandbox cost: generating a fleet, building records as of a moving clock, serving them.

    .venv/bin/python benchmarks/bench_sandbox.py [--companies 100000] [--requests 2000]

Prints the generation time, the cost of one company's record at a sandbox time, and the
dataStatus throughput over loopback while the sandbox clock runs an hour per real second
(so answers are rebuilt, not cached), plus the time to list all companies.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta

import httpx

from auditor.sandbox import SandboxOptions, SandboxServer, generate_fleet

NOW = datetime(2024, 5, 1, 6, tzinfo=UTC)


async def _hammer(server: SandboxServer, ids: list[str], concurrency: int) -> float:
    key = base64.b64encode(server.api_key.encode()).decode()
    headers = {"Authorization": f"Basic {key}"}
    queue = list(ids)
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:

        async def worker() -> None:
            while queue:
                company_id = queue.pop()
                response = await client.get(f"/companies/{company_id}/dataStatus")
                assert response.status_code in (200, 404, 500)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    start = time.perf_counter()
    fleet = generate_fleet(args.companies, seed=1, now=NOW)
    print(f"generate_fleet({args.companies}): {time.perf_counter() - start:.2f} s")

    step = max(1, args.companies // 2000)
    sample = range(0, args.companies, step)
    for days in (0, 3, 30):
        at = NOW + timedelta(days=days)
        start = time.perf_counter()
        for i in sample:
            fleet.record_at(i, at)
        per = (time.perf_counter() - start) / len(sample) * 1000
        print(f"record_at, clock +{days:>2} days: {per:.2f} ms per company")

    ids = [fleet.company_ids[i] for i in sample][: args.requests]
    options = SandboxOptions(time_scale=3600.0)  # an hour per second: nothing stays cached
    with SandboxServer(fleet, options) as server:
        elapsed = asyncio.run(_hammer(server, ids, args.concurrency))
        print(
            f"dataStatus over loopback, clock moving, {args.concurrency} connections: "
            f"{len(ids) / elapsed:.0f} req/s ({len(ids)} requests in {elapsed:.2f} s)"
        )
        key = base64.b64encode(server.api_key.encode()).decode()
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Basic {key}"}, timeout=120
        ) as client:
            start = time.perf_counter()
            pages = 0
            page = 1
            while True:
                body = client.get("/companies", params={"page": page, "pageSize": 5000}).json()
                pages += 1
                if "next" not in body["_links"]:
                    break
                page += 1
            listing = time.perf_counter() - start
        print(
            f"list {args.companies} companies ({pages} pages of 5000): {listing:.2f} s "
            f"({args.companies / listing:.0f} companies/s)"
        )


if __name__ == "__main__":
    main()
