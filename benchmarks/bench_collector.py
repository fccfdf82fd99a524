"""Collector benchmarks (issue 5). Prints ratios from one run; not a timed test.

Run from a clean clone (after ``pip install -e '.[dev,bench]'``)::

    .venv/bin/python benchmarks/bench_collector.py            # 1, 2, 3 and memory
    .venv/bin/python benchmarks/bench_collector.py 1          # one of: 1 2 3 memory

1. 1,000 companies, sandbox limit 6,000/min, 50 ms latency, two nights of a nightly job
   into one store (the second night is the steady state: it reuses the pull operations of
   syncs still stuck since the first): wall time / (requests / limit) (goal <= 1.05) and
   requests per company (goal <= 1.02), for each night.
2. Same fleet, no limit, 100 ms latency: our collector vs a sequential loop over the official
   ``codat-platform`` SDK reading the same dataStatus (goal >= 10x).
3. Zero latency, 20,000 companies: CPU seconds per company of the collector process
   (goal <= 1 ms) and its peak RSS.
memory. 100,000 companies x 43 data types through the frame builder: frame size and RSS.

The sandbox always runs in a separate process (``auditor sandbox``), so its CPU does not count
against the collector. Fleets are generated (seed 7) without the companies whose dataStatus
the sandbox refuses, so that retry back-offs of permanent 500s do not blur the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
SEED = 7


@dataclass
class Sandbox:
    base_url: str
    api_key: str
    proc: subprocess.Popen[str]

    def stop(self) -> int | None:
        """Stop the sandbox; the number of requests it served."""
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        match = re.search(r"requests served: (\d+)", out)
        return int(match[1]) if match else None


def _fleet_file(companies: int, folder: Path) -> Path:
    from auditor.sandbox import Fleet, generate_fleet

    generated = generate_fleet(companies, seed=SEED, now=NOW)
    clean = [r for r in generated if r.data_status_error is None]
    return Fleet(clean, generated.sync_settings, now=NOW).to_file(folder / "fleet.json")


def _night_files(companies: int, folder: Path, nights: int = 2) -> list[tuple[datetime, Path]]:
    """The generated fleet as of ``nights`` consecutive nights (a day apart), one frozen file
    each, without the companies whose dataStatus the sandbox refuses."""
    from auditor.sandbox import Fleet, generate_fleet

    generated = generate_fleet(companies, seed=SEED, now=NOW)
    keep = [i for i, r in enumerate(generated) if r.data_status_error is None]
    out = []
    for night in range(nights):
        at = NOW + timedelta(days=night)
        records = [generated.record_at(i, at) for i in keep]
        path = Fleet(records, generated.sync_settings, now=at).to_file(
            folder / f"fleet-night{night + 1}.json"
        )
        out.append((at, path))
    return out


@contextmanager
def sandbox(fleet: Path, *, latency_ms: float, rate_limit: int | None) -> Iterator[Sandbox]:
    cmd = [
        sys.executable, "-c", "from auditor.cli import main; main()", "sandbox",
        "--fleet", str(fleet), "--latency-ms", str(latency_ms), "--port", "0",
    ]  # fmt: skip
    if rate_limit:
        cmd += ["--rate-limit", str(rate_limit)]
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the sandbox
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    base_url, api_key = sandbox_banner(proc.stdout)
    if not base_url:
        proc.kill()
        errors.seek(0)
        raise RuntimeError(f"the sandbox did not start:\n{errors.read()[-2000:]}")
    box = Sandbox(base_url, api_key, proc)
    try:
        yield box
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sandbox_banner(stdout: Iterator[str]) -> tuple[str, str]:
    """(base URL, API key) from the lines ``auditor sandbox`` prints as it starts ("" if absent)."""
    base_url = api_key = ""
    for line in stdout:
        if "base URL:" in line:
            base_url = line.split("base URL:")[1].strip()
        if "API key:" in line:
            api_key = line.split("API key:")[1].split()[0]
        if base_url and api_key:
            break
    return base_url, api_key


TRANSPORT = "auto"


def _client(box: Sandbox, rate_limit: float | None, connections: int = 64) -> Any:
    from auditor.codat import CodatClient, RateLimitPolicy
    from auditor.collector import collector_transport

    transport = collector_transport(TRANSPORT, max_connections=connections)  # type: ignore[arg-type]
    return CodatClient(
        box.api_key,
        base_url=box.base_url,
        rate_limit=RateLimitPolicy(requests_per_minute=rate_limit, max_concurrent_per_company=10),
        max_connections=connections,
        max_in_flight=connections,
        transport=transport,
    )


async def _collect(box: Sandbox, rate_limit: float | None, **kwargs: Any) -> tuple[Any, Any]:
    from auditor.collector import collect

    concurrency = kwargs.pop("concurrency", 32)
    async with _client(box, rate_limit, concurrency) as client:
        snap = await collect(
            client, snapshot_at=NOW, concurrency=concurrency, progress="off", **kwargs
        )
        return snap, client.stats


async def _collect_night(
    box: Sandbox, rate_limit: float | None, store: Path, at: datetime, concurrency: int = 32
) -> tuple[Any, Any]:
    from auditor.collector import collect_to_store

    async with _client(box, rate_limit, concurrency) as client:
        run = await collect_to_store(
            client, store, snapshot_at=at, concurrency=concurrency, progress="off"
        )
        return run, client.stats


def bench_1(folder: Path, companies: int = 1000) -> None:
    """Two nights of a nightly job into one store; the second is the steady state (it reuses
    the pull operations of stuck syncs that the first night fetched)."""
    from auditor.constants import IN_PROGRESS_STATUSES
    from auditor.store import load_snapshot

    limit = 6000
    store = folder / "store"
    for night, (at, fleet) in enumerate(_night_files(companies, folder), start=1):
        with sandbox(fleet, latency_ms=50, rate_limit=limit) as box:
            t0 = time.perf_counter()
            run, stats = asyncio.run(_collect_night(box, limit, store, at))
            wall = time.perf_counter() - t0
            served = box.stop()
        snap = load_snapshot(store, run.snapshot_id, frames=("companies", "status"))
        n = len(snap.companies["company_id"].unique())
        status = snap.status
        running = status.loc[
            status["current_status"].isin(IN_PROGRESS_STATUSES) & status["latest_sync_id"].notna()
        ]
        with_running = running["company_id"].nunique()
        sent = stats.requests.total()
        requests = served or sent
        ideal = requests / (limit / 60.0)
        by = dict(stats.requests)
        pulls = by.get("get-pull-operation", 0) + by.get("list-pull-operations", 0)
        label = "steady state" if night > 1 else "first night of an empty store"
        print(
            f"[1] night {night} ({label}): {n:,} companies, sandbox limit {limit:,}/min, "
            f"50 ms latency, {TRANSPORT}"
        )
        print(
            f"    requests: {requests:,} (client sent {sent:,}; 429 answers: "
            f"{stats.rate_limited.total()})"
        )
        print(
            f"    wall {wall:.2f} s, ideal {ideal:.2f} s -> wall / (requests / limit) = "
            f"{wall / ideal:.3f}  (goal <= 1.05)"
        )
        print(
            f"    requests per company: {requests / n:.3f}  (goal <= 1.02); without pull "
            f"operations {(requests - pulls) / n:.3f}"
        )
        print(
            f"    companies with a sync in progress: {with_running:,} "
            f"({with_running / n:.1%}; {len(running):,} data types); pull-operation requests "
            f"{pulls:,}; pull operations reused from the previous snapshot "
            f"{run.pull_operations_reused:,}"
        )
        info = load_snapshot(store, run.snapshot_id, frames=()).meta.get("meta", {})
        fetched = int(info.get("error_details_fetched", 0))
        print(
            f"    sync errors: error pull operations fetched {fetched:,} "
            f"({fetched / n:.4f} requests per company), carried from the previous night "
            f"{int(info.get('error_details_carried', 0)):,}, over the budget "
            f"{int(info.get('error_details_over_budget', 0)):,}"
        )
        sys.stdout.flush()


def _sdk_loop(box: Sandbox) -> tuple[float, int, int]:
    """What users write today: list the companies, then get each dataStatus in turn."""
    import base64

    from codat_platform import CodatPlatform  # type: ignore[attr-defined,unused-ignore]
    from codat_platform.models import shared

    token = base64.b64encode(box.api_key.encode()).decode()
    t0 = time.perf_counter()
    ok = failed = 0
    with CodatPlatform(
        security=shared.Security(  # type: ignore[attr-defined,unused-ignore]
            auth_header=f"Basic {token}"
        ),
        server_url=box.base_url,
    ) as sdk:
        page = sdk.companies.list(  # type: ignore[attr-defined,unused-ignore]
            request={"page": 1, "page_size": 5000}
        )
        for company in page.results or []:
            try:
                sdk.refresh_data.get(request={"company_id": company.id})
                ok += 1
            except Exception:
                failed += 1
    return time.perf_counter() - t0, ok, failed


def bench_2(folder: Path, companies: int = 1000) -> None:
    fleet = _fleet_file(companies, folder)
    with sandbox(fleet, latency_ms=100, rate_limit=None) as box:
        t0 = time.perf_counter()
        snap, _ = asyncio.run(_collect(box, None, pull_operations=False, concurrency=64))
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        snap_full, _ = asyncio.run(_collect(box, None, concurrency=64))
        ours_full = time.perf_counter() - t0
        sdk, ok, failed = _sdk_loop(box)
    n = len(snap.companies["company_id"].unique())
    print(f"[2] {n:,} companies, no limit, 100 ms latency, transport {TRANSPORT}")
    print(
        f"    official SDK loop (list + get data status each): {sdk:.1f} s "
        f"({ok:,} ok, {failed:,} failed)"
    )
    print(
        f"    our collector, same dataStatus: {ours:.2f} s -> {sdk / ours:.1f}x faster "
        f"(goal >= 10x)"
    )
    print(
        f"    our collector with pull operations of running syncs: {ours_full:.2f} s -> "
        f"{sdk / ours_full:.1f}x; status rows {len(snap_full.status):,}"
    )


def bench_3(folder: Path, companies: int = 20000) -> None:
    from auditor.collector import _frames

    fleet = _fleet_file(companies, folder)
    spent = {"builder": 0.0}
    add, build = _frames.BatchBuilder.add_company, _frames.BatchBuilder.build

    def timed_add(self: Any, *args: Any, **kwargs: Any) -> None:
        t = time.thread_time()
        add(self, *args, **kwargs)
        spent["builder"] += time.thread_time() - t

    def timed_build(self: Any) -> Any:
        t = time.thread_time()
        out = build(self)
        spent["builder"] += time.thread_time() - t
        return out

    _frames.BatchBuilder.add_company = timed_add  # type: ignore[method-assign]
    _frames.BatchBuilder.build = timed_build  # type: ignore[method-assign]
    with sandbox(fleet, latency_ms=0, rate_limit=None) as box:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        snap, stats = asyncio.run(_collect(box, None, concurrency=16))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    _frames.BatchBuilder.add_company, _frames.BatchBuilder.build = add, build  # type: ignore[method-assign]
    n = len(snap.companies["company_id"].unique())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"[3] {n:,} companies, zero latency, no limit, transport {TRANSPORT} "
        f"({stats.requests.total():,} requests, retries {stats.retries.total()}, "
        f"failures {stats.failures.total()})"
    )
    print(
        f"    CPU {cpu:.1f} s -> {1000 * cpu / n:.3f} ms per company (goal <= 1 ms); "
        f"wall {wall:.1f} s"
    )
    print(
        f"    of which frame building (add_company + build): "
        f"{1000 * spent['builder'] / n:.3f} ms per company; the rest is the HTTP client "
        "(httpx + transport, JSON, pydantic), the event loop and the worker pool"
    )
    print(
        f"    peak RSS {rss:,.0f} MB (interpreter, pandas and the {len(snap.status):,}-row "
        "snapshot included)"
    )


def bench_memory(companies: int = 100_000) -> None:
    """100,000 companies x 43 data types through BatchBuilder, as collect() builds them."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    from auditor.codat import Company, Connection, DataStatus
    from auditor.collector import BatchBuilder
    from auditor.constants import ALL_DATA_TYPES
    from auditor.snapshot import STATUS_SCHEMA
    from auditor.store import canonical, frame_from_tables

    t0 = time.perf_counter()
    parts = []
    builder = BatchBuilder(NOW)
    synced = [NOW - timedelta(hours=h) for h in range(1, 200)]
    for i in range(companies):
        conn = Connection.model_construct(
            id=str(uuid.uuid4()), platform_name="Xero", integration_key="gbol",
            source_type="Accounting", status="Linked", last_sync=None, created=None,
        )  # fmt: skip
        company = Company.model_construct(
            id=str(uuid.uuid4()), name=f"Company {i}", created=None, last_sync=None,
            data_connections=[conn],
        )  # fmt: skip
        statuses = {
            dt: DataStatus.model_construct(
                data_type=dt,
                current_status="Complete",
                last_successful_sync=synced[(i + j) % len(synced)],
                latest_sync_id=str(uuid.uuid4()),
                latest_successful_sync_id=str(uuid.uuid4()),
            )
            for j, dt in enumerate(ALL_DATA_TYPES)
        }
        builder.add_company(company, statuses)
        if builder.companies == 1000:
            parts.append(pa.Table.from_pandas(builder.build()["status"], preserve_index=False))
            builder = BatchBuilder(NOW)
    if builder.companies:
        parts.append(pa.Table.from_pandas(builder.build()["status"], preserve_index=False))
    status = canonical(frame_from_tables(parts), STATUS_SCHEMA)
    size = status.memory_usage(deep=True).sum() / 1e6
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"[memory] {companies:,} companies x {len(ALL_DATA_TYPES)} types = {len(status):,} "
        f"status rows in {time.perf_counter() - t0:.0f} s"
    )
    print(
        f"    status frame {size:,.0f} MB in memory (deep); peak RSS of the whole process "
        f"{rss:,.0f} MB (goal: well under 2 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "which", nargs="*", help="Which benchmarks: 1, 2, 3, memory (default: all)."
    )
    parser.add_argument("--companies", type=int, default=None, help="Override the fleet size.")
    parser.add_argument(
        "--transport",
        choices=["auto", "httpx", "aiohttp"],
        default="auto",
        help="httpx's own pool (httpcore), or aiohttp under httpx (httpx-aiohttp).",
    )
    args = parser.parse_args()
    args.which = args.which or ["1", "2", "3", "memory"]
    unknown = set(args.which) - {"1", "2", "3", "memory"}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    global TRANSPORT
    TRANSPORT = args.transport
    if len(args.which) > 1:  # one process each, so that peak RSS figures stay apart
        for which in args.which:
            argv = ["--companies", str(args.companies)] if args.companies else []
            argv += ["--transport", args.transport]
            subprocess.run([sys.executable, __file__, which, *argv], check=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for which in args.which:
            extra: dict[str, Any] = {"companies": args.companies} if args.companies else {}
            if which == "1":
                bench_1(folder, **extra)
            elif which == "2":
                bench_2(folder, **extra)
            elif which == "3":
                bench_3(folder, **extra)
            else:
                bench_memory(**extra)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
