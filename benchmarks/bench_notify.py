"""Benchmark: the size of the Slack, Teams and webhook messages at fleet scale.

Builds a synthetic audit result (``auditor.testing.synthetic.synthetic_result``, realistic
texts: UUID ids, company names, messages as long as the rules' own) for each fleet size, the
notification of the whole fleet (``max_items`` entries asked for; each channel keeps what
fits its limits) and prints, per channel: bytes of the JSON body as sent, entries shown of
entries in scope, Slack's block count and text characters (limits 50 / 40,000; our budget
12,000), and the seconds to build it.

Usage::

    .venv/bin/python benchmarks/bench_notify.py [--companies 500 100000] [--max-items 15]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from auditor.actions import build_actions
from auditor.notify import (
    build_notification,
    encode_body,
    entries_shown,
    slack_payload,
    teams_payload,
    webhook_payload,
)
from auditor.notify.slack import text_length
from auditor.testing.synthetic import synthetic_result

AS_OF = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
REPORT_URL = "https://ops.example.com/freshness/nightly/report.html"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, nargs="+", default=[500, 100_000])
    parser.add_argument("--max-items", type=int, nargs="+", default=[15, 200])
    args = parser.parse_args()
    for companies in args.companies:
        result = synthetic_result(companies, as_of=AS_OF, realistic=True)
        started = time.perf_counter()
        actions = build_actions(result)  # as `auditor run` passes them: one entry per action
        print(f"{companies:,} companies: {len(result.active):,} active findings, "
              f"{len(actions):,} actions ({time.perf_counter() - started:.1f} s)")
        for max_items in args.max_items:
            started = time.perf_counter()
            note = build_notification(
                result, max_items=max_items, report_url=REPORT_URL, actions=actions
            )
            built = time.perf_counter() - started
            print(f"  max_items={max_items}: content built in {built:.2f}s, "
                  f"{note.entries_total:,} entries (company x root cause) in scope")  # fmt: skip
            for channel, layout in (
                ("slack", slack_payload),
                ("teams", teams_payload),
                ("webhook", webhook_payload),
            ):
                started = time.perf_counter()
                payload = layout(note)
                body = encode_body(payload)
                took = time.perf_counter() - started
                extra = ""
                if channel == "slack":
                    extra = (f", {len(payload['blocks'])} blocks, "
                             f"{text_length(payload):,} text chars")  # fmt: skip
                shown = entries_shown(channel, payload)  # type: ignore[arg-type]
                print(f"    {channel:8s} {len(body):>8,} bytes, {shown} entries shown{extra}"
                      f" ({took * 1000:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
