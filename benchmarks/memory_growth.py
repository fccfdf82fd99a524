"""Benchmark: peak RSS of ``auditor snapshot`` and ``auditor audit`` as the fleet grows.

Every figure is one real process of the CLI (``auditor audit`` / ``auditor snapshot``) or of
the store reader, started from here; its peak RSS is the child's ``VmHWM`` (the peak of its
own memory since it started, read from ``/proc`` every 50 ms until it exits). Not
``ru_maxrss``: that one keeps the high-water mark of the process it was forked from, so the
2.6 GB this script holds while it builds a 100,000-company fleet file was once reported as
the collector's peak. A child whose RSS passes
``--limit-gb`` is killed (shown as ``killed > N GB``) so that the shared machine survives.

Stages:

* ``audit``: a synthetic fleet (``auditor.testing.snapshots``, realistic profile) of N
  companies x 43 data types, built and stored slice by slice with the store's own batch writer
  (``--batch`` companies per Parquet part, as the collector writes them), so that building a
  million companies needs no more memory than building ``--batch``. Then, each in a fresh
  process: ``read (whole)`` = ``auditor.load_snapshot`` (the whole snapshot as DataFrames),
  ``read (stream)`` = ``auditor.store.iter_partitions`` (the company-complete partitions the
  audit reads, each dropped after it is read), and ``auditor audit`` (all rules, provider
  incidents, ledger, reports: ``report.html`` + CSVs + ``results.json``).
* ``collect``: the sandbox's generated fleet of N companies (seed 7) served by
  ``auditor sandbox --companies N`` (another process, zero latency, no rate limit; its memory
  is printed apart, not counted) and collected by ``auditor snapshot --rate-limit 0`` into a
  fresh store. The generated fleet includes the 0.5 % of companies whose dataStatus the
  sandbox refuses (404 or 500, retried), as a real fleet would.

Usage::

    .venv/bin/python benchmarks/memory_growth.py audit --companies 10000 100000 1000000
    .venv/bin/python benchmarks/memory_growth.py collect --companies 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

AS_OF = "2024-06-01T10:00:00Z"  # the synthetic fleet's snapshot time + the realistic delay


@dataclass
class Measured:
    label: str
    peak_gb: float
    wall_s: float
    cpu_s: float  # user + system CPU of the child: steadier than wall on a shared machine
    killed: bool
    returncode: int


def run(label: str, command: list[str], *, limit_gb: float,
        env: dict[str, str] | None = None) -> Measured:
    """Run ``command``; its peak RSS (the child's VmHWM), wall and CPU time."""
    start = time.perf_counter()
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read below
    # cwd: not this checkout, so that ``python -c`` imports the interpreter's own auditor.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors,
                            cwd=tempfile.gettempdir())
    killed = False
    status_file = Path(f"/proc/{proc.pid}/status")
    hwm_kb = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            fields = {
                line.split(":")[0]: int(line.split()[1])
                for line in status_file.read_text().splitlines()
                if line.startswith(("VmRSS:", "VmHWM:"))
            }
        except (OSError, ValueError, IndexError):
            fields = {}
        rss_kb = fields.get("VmRSS", 0)
        # VmHWM: the peak of the process's own memory since it exec'd. Not ru_maxrss, which
        # keeps the high-water mark of the fork it started from: a parent that built a big
        # fleet file in memory would be counted as the child's peak.
        hwm_kb = max(hwm_kb, fields.get("VmHWM", 0), rss_kb)
        if rss_kb > limit_gb * 1024 * 1024:
            proc.kill()
            killed = True
        time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    peak_kb = hwm_kb or usage.ru_maxrss
    errors.seek(0)
    err = errors.read()
    errors.close()
    if code not in (0, 1, 2) and not killed:
        print(f"  {label} exited {code}:\n{err[-3000:]}", file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(label, peak_kb / 1024 / 1024, wall, cpu, killed, code)


def build(n: int, batch: int, store: Path) -> None:
    """Store a synthetic realistic fleet of ``n`` companies, ``batch`` companies a part."""
    from auditor.store import SnapshotWriter
    from auditor.testing.snapshots import AS_OF as SNAP_AT
    from auditor.testing.snapshots import REALISTIC, SNAPSHOT_ID, synthetic_snapshot

    shutil.rmtree(store, ignore_errors=True)
    writer = SnapshotWriter.open(store, snapshot_id=SNAPSHOT_ID, snapshot_at=SNAP_AT)
    profile = None
    for i, first in enumerate(range(0, n, batch)):
        part = synthetic_snapshot(min(batch, n - first), seed=7 + i, profile=REALISTIC,
                                  first_company=first)
        writer.write_batch(part.frames())
        profile = part.sync_settings
    assert profile is not None
    writer.write_profile_settings(profile)
    assert writer.finish({"synthetic": True})


_READ_WHOLE = "import sys; from auditor.store import load_snapshot; load_snapshot(sys.argv[1])"
_READ_STREAM = (
    "import sys; from auditor.store import iter_partitions\n"
    "for part in iter_partitions(sys.argv[1]): del part"
)


def bench_audit(sizes: list[int], batch: int, folder: Path, limit_gb: float,
                reuse: bool, py: str) -> list[tuple[int, list[Measured]]]:
    rows = []
    auditor = str(Path(py).parent / "auditor")
    for n in sizes:
        store = folder / f"store-{n}"
        if not (reuse and (store / "built").exists()):
            t0 = time.perf_counter()
            build(n, batch, store)
            (store / "built").write_text("ok")
            print(f"built {n:,} companies in {time.perf_counter() - t0:.0f} s", flush=True)
        out = folder / f"out-{n}"
        measured = []
        for label, command in (
            ("imports only", [auditor, "--help"]),
            ("read (whole)", [py, "-c", _READ_WHOLE, str(store)]),
            ("read (stream)", [py, "-c", _READ_STREAM, str(store)]),
            ("auditor audit", [auditor, "audit", "--store", str(store),
                               "--snapshot", "bench", "--as-of", AS_OF, "--out", str(out),
                               "--overwrite"]),
        ):
            m = run(label, command, limit_gb=limit_gb, env=_child_env())
            print(f"  {n:>9,}  {_line(m)}", flush=True)
            measured.append(m)
        rows.append((n, measured))
    return rows


def bench_collect(sizes: list[int], folder: Path, limit_gb: float,
                  py: str) -> list[tuple[int, list[Measured]]]:
    rows = []
    for n in sizes:
        work = folder / f"collect-{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        with generated_sandbox(n, py) as (base_url, api_key, sandbox_pid):
            env = {**_child_env(), "CODAT_API_KEY": api_key}
            m = run("auditor snapshot", [
                str(Path(py).parent / "auditor"), "snapshot", "--base-url", base_url,
                "--store", str(work / "store"), "--progress", "off",
                # The sandbox has no limit: measure memory, not the 1,000/min DoS ceiling
                # (at the default a 100k fleet takes two hours of mostly waiting).
                "--rate-limit", "0",
            ], limit_gb=limit_gb, env=env)
            served_gb = _hwm_gb(sandbox_pid)
        print(f"  {n:>9,}  {_line(m)}  [sandbox peak {served_gb:.2f} GiB]", flush=True)
        rows.append((n, [m]))
    return rows


SANDBOX_NOW = "2024-05-01T06:00:00Z"


@contextmanager
def generated_sandbox(n: int, py: str) -> Iterator[tuple[str, str, int]]:
    """``auditor sandbox --companies n`` (the generated fleet, seed 7) in another process:
    (base URL, API key, pid). The generated fleet is held as arrays (the sandbox peaked at
    0.49 GiB for 100,000 companies, 2.2 GiB for 1,000,000), so a million companies can be
    served here; a fleet *file* of that size could not (its JSON is parsed into Python
    objects: 5.4 GB at 100,000 companies)."""
    proc = subprocess.Popen(
        [str(Path(py).parent / "auditor"), "sandbox", "--companies", str(n), "--seed", "7",
         "--now", SANDBOX_NOW, "--port", "0", "--latency-ms", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tempfile.gettempdir(),
    )
    assert proc.stdout is not None
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_collector import sandbox_banner  # type: ignore[import-not-found]

    base_url, api_key = sandbox_banner(proc.stdout)
    if not base_url:
        proc.kill()
        raise RuntimeError("the sandbox did not start")
    try:
        yield base_url, api_key, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _hwm_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


_CHILD_PYTHONPATH: list[str | None] = [None]


def _child_env() -> dict[str, str]:
    """The children's environment: ``--child-pythonpath`` (if given) as PYTHONPATH."""
    env = dict(os.environ)
    want = _CHILD_PYTHONPATH[0]
    if want is not None:
        env.pop("PYTHONPATH", None)
        if want:
            env["PYTHONPATH"] = want
    return env


def _line(m: Measured) -> str:
    peak = f"killed > {m.peak_gb:.1f} GB" if m.killed else f"{m.peak_gb:.2f} GiB"
    return (f"{m.label:<16} peak RSS {peak:<18} wall {m.wall_s:7.1f} s  CPU {m.cpu_s:7.1f} s"
            f"  (exit {m.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("stage", choices=["audit", "collect"])
    parser.add_argument("--companies", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch", type=int, default=5000,
                        help="companies per stored part (the collector's --batch-size)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mem-growth")
    parser.add_argument("--limit-gb", type=float, default=8.0)
    parser.add_argument("--reuse", action="store_true", help="reuse stores built earlier")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter (and its auditor) measured, e.g. another "
                        "checkout's .venv/bin/python to measure it on the same stores")
    parser.add_argument("--child-pythonpath", default=None,
                        help="PYTHONPATH of the measured processes ('' for none)")
    args = parser.parse_args()
    _CHILD_PYTHONPATH[0] = args.child_pythonpath
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"{'companies':>11}  stage")
    if args.stage == "audit":
        bench_audit(args.companies, args.batch, args.dir, args.limit_gb, args.reuse,
                    args.python)
    else:
        bench_collect(args.companies, args.dir, args.limit_gb, args.python)


if __name__ == "__main__":
    main()
