"""Benchmark: what reading the webhook event log adds to a night's audit.

Writes one day of events with the listener's own framing (``encode_record``) into a fresh
store: for ``--companies`` companies, ``--reads`` ``read.completed`` events each (3 data types
per event, 2 % of data types with a ``warning.validation``), 2 % of companies with a
disconnected + reconnected pair, and the rate-limit events. Then times (best of
``--repeat``):

* ``read``  :func:`auditor.events.read_event_window` (segments parsed, CRC checked,
  de-duplicated, one row per event and data type);
* ``audit`` :func:`auditor.engine.audit` of a synthetic snapshot of the same companies, with
  and without the events (all rules; the difference is validation-warning, the ledger's
  unread companies and connection incidents).

Usage::

    .venv/bin/python benchmarks/bench_events.py [--companies 20000] [--reads 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from auditor.engine import audit
from auditor.events import read_event_window
from auditor.listen.eventlog import encode_record
from auditor.testing.snapshots import AS_OF, REALISTIC, synthetic_snapshot

TYPES = ("invoices", "bills", "customers")


def write_log(store: Path, company_ids: list[str], reads: int) -> int:
    start = AS_OF - timedelta(hours=20)
    day = store / "events" / f"date={start.date().isoformat()}"
    day.mkdir(parents=True)
    lines = []
    n = 0
    for i, company in enumerate(company_ids):
        for r in range(reads):
            at = start + timedelta(seconds=(i * reads + r) % 60000)
            body = json.dumps({
                "id": f"rc-{i}-{r}", "eventType": "read.completed",
                "generatedDate": at.isoformat(),
                "payload": {"referenceCompany": {"id": company, "name": f"Company {i}"},
                            "dataTypes": [
                                {"connectionId": f"{company}-conn", "dataType": t,
                                 "recordsModified": True, "status": "Complete",
                                 "issues": [{"type": "warning.validation", "message": "look",
                                             "links": {"logs": "https://api.codat.io/x"}}]
                                 if (i + k) % 50 == 0 else []}
                                for k, t in enumerate(TYPES)]}})  # fmt: skip
            lines.append(encode_record(f"m-{n}", at, body))
            n += 1
        if i % 50 == 0:
            for kind, minutes in (("disconnected", 10), ("reconnected", 90)):
                at = start + timedelta(minutes=minutes)
                body = json.dumps({
                    "id": f"{kind}-{i}", "eventType": f"connection.{kind}",
                    "generatedDate": at.isoformat(),
                    "payload": {"referenceCompany": {"id": company},
                                "connection": {"id": f"{company}-conn",
                                               "status": "Linked"}}})  # fmt: skip
                lines.append(encode_record(f"m-{n}", at, body))
                n += 1
    (day / "log-20000101T000000000000Z-1.jsonl").write_bytes(b"".join(lines))
    return n


def best(repeat: int, fn: object) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    snapshot = synthetic_snapshot(args.companies, profile=REALISTIC)
    ids = [str(c) for c in snapshot.company_ids]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        events = write_log(store, ids, args.reads)
        since, until = AS_OF - timedelta(days=1), AS_OF
        window = read_event_window(store, since=since, until=until)
        assert window.state == "on", window.detail
        read = best(args.repeat, lambda: read_event_window(store, since=since, until=until))
        with_events = replace(snapshot, events=window.events)
        plain = best(args.repeat, lambda: audit(snapshot, as_of=AS_OF))
        full = best(args.repeat, lambda: audit(with_events, as_of=AS_OF))
        result = audit(with_events, as_of=AS_OF)
    rules = result.findings["rule"].astype(str)
    print(f"companies {args.companies:,}  events {events:,}  event rows {len(window.events):,}")
    print(f"read        {read:7.2f} s  ({read / events * 1e6:.1f} us per event)")
    print(f"audit       {plain:7.2f} s without events, {full:7.2f} s with (+{full - plain:.2f} s)")
    print(f"validation-warning findings {int((rules == 'validation-warning').sum()):,}, "
          f"resolved connection incidents {len(result.resolved):,}")


if __name__ == "__main__":
    main()
