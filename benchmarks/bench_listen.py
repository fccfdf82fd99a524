"""Load on the webhook listener: a burst of N events/s for T seconds on loopback.

    python benchmarks/bench_listen.py [--rate 1000] [--seconds 30] [--kill] [--store DIR]

Starts ``auditor listen`` as a subprocess on a fresh store, pre-signs every event, then sends
them on an open-loop schedule (event i at t0 + i/rate, whatever the answers) from one aiohttp
client. A delivery that fails (connection refused/reset, 5xx, timeout) is redelivered 0.5 s
later, as Codat's retries would. With ``--kill`` the listener is killed with SIGKILL halfway
through and restarted at once.

Prints: sent, acknowledged (distinct ids answered 2xx), stored (distinct ids on disk), records
on disk, duplicates on disk, acknowledged-but-missing, ack latency p50/p99/max (from the moment
the request was sent), the schedule lag, and the listener's group-commit batches.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil

from auditor.listen import signed_headers
from auditor.listen.eventlog import iter_segment_ids
from auditor.testing.listen import start_listener as _start_listener

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def start_listener(store: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    profile = (
        ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
        if os.environ.get("BENCH_PROFILE")
        else []
    )
    return _start_listener(store, log, secret=SECRET, python_args=profile, timeout=120)


def event_body(i: int) -> str:
    return json.dumps(
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "eventType": "read.completed",
            "generatedDate": "2026-11-30T00:00:00Z",
            "payload": {
                "referenceCompany": {"id": f"company-{i % 5000:05d}", "name": "Bench Ltd"},
                "modifiedFromDate": "2026-11-29T00:00:00Z",
                "dataTypes": [
                    {
                        "connectionId": f"conn-{i % 5000:05d}",
                        "dataType": "invoices",
                        "recordsModified": True,
                        "status": "Complete",
                        "issues": [],
                    }
                ],
            },
        }
    )


def server_histogram(metrics: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the listener's ack-latency histogram."""
    buckets = []
    for line in metrics.splitlines():
        if line.startswith("codat_webhook_ack_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    return buckets


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> str:
    """The histogram bucket holding quantile ``q`` (an upper bound, as Prometheus would)."""
    if not buckets or not buckets[-1][1]:
        return "n/a"
    target = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= target:
            return f"<= {bound * 1000:g}" if bound != float("inf") else "> 10000"
    return "n/a"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace, store: Path, log: Path) -> None:
        self.args = args
        self.store = store
        self.log = log
        self.total = int(args.rate * args.seconds)
        self.acked: dict[str, str] = {}
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.failures = 0
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.server_cpu = 0.0
        self.server_cpu_split = (0.0, 0.0)
        self.server_buckets: list[tuple[float, float]] = []
        self.client_cpu = 0.0

    async def send(
        self, session: aiohttp.ClientSession, webhook_id: str, body: str, headers: dict[str, str]
    ) -> None:
        while True:
            started = time.perf_counter()
            try:
                async with session.post(
                    self.url + "/webhooks/codat", data=body, headers=headers
                ) as response:
                    if response.status == 200:
                        answer = await response.json()
                        self.latencies.append(time.perf_counter() - started)
                        self.acked.setdefault(webhook_id, answer["status"])
                        return
                    if response.status < 500:
                        raise SystemExit(f"{webhook_id}: rejected {response.status}")
            except (TimeoutError, aiohttp.ClientError):
                pass
            self.failures += 1
            await asyncio.sleep(0.5)

    async def kill_and_restart(self) -> None:
        await asyncio.sleep(self.args.seconds / 2)
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        killed_at = time.perf_counter()
        acked_at_kill = len(self.acked)
        self.proc, self.url = await asyncio.to_thread(start_listener, self.store, self.log)
        print(
            f"killed -9 after {acked_at_kill} acknowledgements; restarted in "
            f"{time.perf_counter() - killed_at:.1f} s",
            flush=True,
        )

    async def run(self) -> None:
        # Signed up front (well within the 5-minute tolerance) so that the client spends its
        # CPU on sending, not on HMACs.
        bodies = [event_body(i) for i in range(self.total)]
        signed = [signed_headers(SECRET, f"msg_{i:07d}", b) for i, b in enumerate(bodies)]
        self.proc, self.url = start_listener(self.store, self.log)
        t0 = time.perf_counter() + 0.2
        killer = asyncio.create_task(self.kill_and_restart()) if self.args.kill else None
        if self.args.client == "raw":
            sent_in, done_in = await self.run_raw(bodies, signed, t0)
        else:
            sent_in, done_in = await self.run_aiohttp(bodies, signed, t0)
        if killer is not None:
            await killer
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url + "/healthz") as response:
                health = await response.json()
            async with session.get(self.url + "/metrics") as response:
                self.server_buckets = server_histogram(await response.text())
        assert self.proc is not None
        cpu = psutil.Process(self.proc.pid).cpu_times()
        self.server_cpu = cpu.user + cpu.system
        self.server_cpu_split = (cpu.user, cpu.system)
        self.client_cpu = time.process_time()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.report(sent_in, done_in, health)

    async def schedule(self, count: int, t0: float) -> AsyncIterator[tuple[int, float]]:
        """Yield event numbers at their due time (open loop: t0 + i/rate)."""
        for i in range(count):
            due = t0 + i / self.args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lags.append(max(0.0, time.perf_counter() - due))
            yield i, due

    async def run_aiohttp(
        self, bodies: list[str], signed: list[dict[str, str]], t0: float
    ) -> tuple[float, float]:
        connector = aiohttp.TCPConnector(limit=self.args.connections)
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = []
            async for i, _due in self.schedule(len(bodies), t0):
                tasks.append(
                    asyncio.create_task(self.send(session, f"msg_{i:07d}", bodies[i], signed[i]))
                )
            sent_in = time.perf_counter() - t0
            await asyncio.gather(*tasks)
        return sent_in, time.perf_counter() - t0

    async def run_raw(
        self, bodies: list[str], signed: list[dict[str, str]], t0: float
    ) -> tuple[float, float]:
        """The same load from hand-written HTTP/1.1 on keep-alive connections (a fraction of
        aiohttp's client CPU): shows the listener's own latency when the client is not the
        bottleneck of a crowded machine."""
        queue: asyncio.Queue[tuple[str, bytes, float] | None] = asyncio.Queue()
        workers = [
            asyncio.create_task(self.raw_worker(queue)) for _ in range(self.args.connections)
        ]
        async for i, due in self.schedule(len(bodies), t0):
            headers = "".join(f"{k}: {v}\r\n" for k, v in signed[i].items() if k != "content-type")
            body = bodies[i].encode()
            request = (
                f"POST /webhooks/codat HTTP/1.1\r\nHost: bench\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{headers}\r\n"
            ).encode() + body
            queue.put_nowait((f"msg_{i:07d}", request, due))
        sent_in = time.perf_counter() - t0
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        return sent_in, time.perf_counter() - t0

    async def raw_worker(self, queue: asyncio.Queue[tuple[str, bytes, float] | None]) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (item := await queue.get()) is not None:
            webhook_id, request, started = item
            while True:
                try:
                    if writer is None or reader is None:
                        host, port = self.url.removeprefix("http://").rsplit(":", 1)
                        reader, writer = await asyncio.open_connection(host, int(port))
                    writer.write(request)
                    status_line = await reader.readline()
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    answer = await reader.readexactly(length)
                    status = int(status_line.split()[1])
                    if status == 200:
                        self.latencies.append(time.perf_counter() - started)
                        outcome = "duplicate" if b"duplicate" in answer else "stored"
                        self.acked.setdefault(webhook_id, outcome)
                        break
                    if status < 500:
                        raise SystemExit(f"{webhook_id}: rejected {status}")
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    pass
                if writer is not None:
                    writer.close()
                reader = writer = None
                self.failures += 1
                await asyncio.sleep(0.5)
                started = time.perf_counter()
        if writer is not None:
            writer.close()

    def report(self, sent_in: float, done_in: float, health: dict[str, object]) -> None:
        on_disk = collections.Counter(iter_segment_ids(self.store))
        records = sum(on_disk.values())
        duplicates = records - len(on_disk)
        missing = [i for i in self.acked if on_disk[i] != 1]
        ms = [x * 1000 for x in self.latencies]
        print(
            f"events sent:            {self.total} in {sent_in:.1f} s "
            f"({self.total / sent_in:.0f}/s offered), all answered in {done_in:.1f} s"
        )
        print(
            f"acknowledged:           {len(self.acked)} "
            f"(stored {sum(1 for s in self.acked.values() if s == 'stored')}, "
            f"duplicate {sum(1 for s in self.acked.values() if s == 'duplicate')})"
        )
        print(f"failed attempts:        {self.failures} (redelivered)")
        print(f"stored (distinct ids):  {len(on_disk)}")
        print(f"records on disk:        {records}")
        print(f"duplicates on disk:     {duplicates}")
        print(f"acknowledged, missing:  {len(missing)}")
        print(
            f"ack latency ms:         p50 {percentile(ms, 0.50):.1f}  "
            f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}  mean {statistics.fmean(ms):.1f}"
        )
        print(
            f"  listener-side (last run, histogram buckets): "
            f"p50 {bucket_quantile(self.server_buckets, 0.5)}  "
            f"p99 {bucket_quantile(self.server_buckets, 0.99)}"
        )
        lag = [x * 1000 for x in self.lags]
        print(f"schedule lag ms:        p99 {percentile(lag, 0.99):.1f}  max {max(lag):.1f}")
        batches = health.get("batches")
        stored_by_last = health.get("stored")
        if isinstance(batches, int) and isinstance(stored_by_last, int) and batches:
            print(
                f"group commit (last run): {stored_by_last} events in {batches} fsyncs "
                f"({stored_by_last / batches:.1f} per fsync)"
            )
        print(
            f"CPU seconds:            listener {self.server_cpu:.1f} (last run; user "
            f"{self.server_cpu_split[0]:.1f}, system {self.server_cpu_split[1]:.1f}), "
            f"client {self.client_cpu:.1f}; machine load {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        ok = len(self.acked) == len(on_disk) == self.total and duplicates == 0 and not missing
        print("RESULT:", "OK" if ok else "FAILED")
        if not ok:
            raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the burst")
    parser.add_argument("--connections", type=int, default=256, help="client connection pool")
    parser.add_argument(
        "--client",
        choices=("aiohttp", "raw"),
        default="aiohttp",
        help="aiohttp's client, or hand-written HTTP/1.1 (cheaper: the listener's own figures)",
    )
    parser.add_argument("--kill", action="store_true", help="kill -9 halfway, restart")
    parser.add_argument("--store", type=Path, help="store directory (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-listen-") as tmp:
        store = args.store or Path(tmp) / "store"
        log = Path(tmp) / "listener.log"
        print(
            f"listener store {store}; {args.rate:.0f} events/s for {args.seconds:.0f} s"
            f"{' with kill -9 halfway' if args.kill else ''}",
            flush=True,
        )
        asyncio.run(Bench(args, store, log).run())
        text = log.read_text()
        assert SECRET.removeprefix("whsec_") not in text


if __name__ == "__main__":
    main()
