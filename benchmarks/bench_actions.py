"""Benchmark: the ranked actions table, "Start here" and the digest for a large fleet.

Prints the time of :func:`auditor.actions.build_actions`, how many findings fold into how many
actions, the size of ``actions.csv`` and ``relinks.csv``, and the digest's HTML body size
against the 100 KB budget (with Start here and the grouped sections).

    .venv/bin/python benchmarks/bench_actions.py [--companies 100000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from auditor.actions import ACTION_COLUMNS, build_actions
from auditor.report import HTML_BODY_LIMIT, FleetInfo, build_digest
from auditor.report._csv import to_csv_bytes
from auditor.report._write import relinks_csv_frame
from auditor.testing.synthetic import synthetic_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    as_of = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    result = synthetic_result(args.companies, as_of=as_of, seed=args.seed, realistic=True)
    t0 = time.perf_counter()
    actions = build_actions(result)
    t1 = time.perf_counter()
    print(f"companies            {args.companies:>12,}")
    print(f"findings             {len(result.findings):>12,}")
    print(f"actions              {len(actions):>12,}")
    print(f"build_actions        {t1 - t0:>12.2f} s")
    csv = to_csv_bytes(actions.reindex(columns=list(ACTION_COLUMNS)))
    print(f"actions.csv          {len(csv) / 1e6:>12.2f} MB")
    relinks = to_csv_bytes(relinks_csv_frame(actions, None))
    print(f"relinks.csv          {len(relinks) / 1e3:>12.1f} KB")
    t2 = time.perf_counter()
    msg = build_digest(result, fleet=FleetInfo(companies_audited=args.companies),
                       actions=actions, now=as_of)
    t3 = time.perf_counter()
    body = msg.get_body(("html",))
    assert body is not None
    size = len(body.get_content().encode("utf-8"))
    print(f"digest build         {t3 - t2:>12.2f} s")
    print(f"digest HTML body     {size / 1e3:>12.1f} KB ({100 * size / HTML_BODY_LIMIT:.0f}% of "
          "the 100 KB budget)")


if __name__ == "__main__":
    main()
