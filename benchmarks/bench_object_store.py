"""The store on a local directory vs on S3 (moto in server mode on 127.0.0.1): seconds to
write a snapshot, list the store, load the night back (every part verified), and the
requests the S3 side served.

    .venv/bin/python benchmarks/bench_object_store.py [--companies 5000]

moto is an in-memory test server in this process (it shares the CPU and the GIL with the
client), so the S3 figures are an upper bound of the client's own cost, not AWS latency.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import replace

import s3fs
from moto.server import ThreadedMotoServer

from auditor.store import list_snapshots, load_snapshot, write_snapshot
from auditor.testing.snapshots import synthetic_snapshot


def _timed(label: str, fn: object) -> object:
    start = time.perf_counter()
    out = fn()  # type: ignore[operator]
    print(f"  {label:<28} {time.perf_counter() - start:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=5000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    snap = synthetic_snapshot(args.companies, seed=11)
    print(f"{args.companies:,} companies, {len(snap.status):,} status rows")

    with tempfile.TemporaryDirectory() as tmp:
        print("local directory")
        _timed("write_snapshot", lambda: write_snapshot(tmp, replace(snap, snapshot_id="b1")))
        _timed("list_snapshots", lambda: list_snapshots(tmp))
        _timed("load_snapshot (verified)", lambda: load_snapshot(tmp, "b1"))

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        fs = s3fs.S3FileSystem(use_listings_cache=False)
        fs.mkdir("bench")
        url = "s3://bench/store"
        print("s3 (moto on loopback)")
        _timed("write_snapshot", lambda: write_snapshot(url, replace(snap, snapshot_id="b1")))
        _timed("list_snapshots", lambda: list_snapshots(url))
        _timed("load_snapshot (verified)", lambda: load_snapshot(url, "b1"))
        objects = fs.find("bench/store", detail=True)
        size = sum(int(o["size"]) for o in objects.values())
        print(f"  {len(objects)} objects, {size / 1e6:.1f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
