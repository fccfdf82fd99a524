"""Benchmark: report.html and the CSVs for a 100,000-company fleet.

Prints the size of each file (MB, and report.html as a share of the 5 MB budget), the render
time of each step, and the digest's HTML body size against the 100 KB budget.

    .venv/bin/python benchmarks/bench_report.py [--companies 100000] [--max-rows 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from auditor.report import (
    HTML_BODY_LIMIT,
    FleetInfo,
    build_digest,
    build_view,
    render_report,
    write_reports,
)
from auditor.report._csv import findings_frame, to_csv_bytes
from auditor.testing.synthetic import synthetic_history, synthetic_result

REPORT_BUDGET = 5_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    as_of = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    t0 = time.perf_counter()
    result = synthetic_result(args.companies, as_of=as_of, seed=args.seed)
    history = synthetic_history(result)
    t_synth = time.perf_counter() - t0
    fleet = FleetInfo(companies_audited=args.companies)
    print(
        f"fleet: {args.companies:,} companies, {len(result.findings):,} findings, "
        f"{len(result.resolved):,} resolved (synthetic, built in {t_synth:.2f} s)"
    )

    t0 = time.perf_counter()
    view = build_view(result, history=history, fleet=fleet, max_rows=args.max_rows)
    t_view = time.perf_counter() - t0
    t0 = time.perf_counter()
    html = render_report(view)
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    csv_bytes = to_csv_bytes(findings_frame(result))
    t_csv = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_reports(
            result, Path(tmp), history=history, fleet=fleet, max_rows=args.max_rows
        )
        t_all = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in paths.all()}
        t0 = time.perf_counter()
        msg = build_digest(result, fleet=fleet, report_paths=paths, now=as_of)
        t_digest = time.perf_counter() - t0
    body = msg.get_body(("html",))
    assert body is not None
    body_bytes = len(str(body.get_content()).encode("utf-8"))
    attachments = {
        p.get_filename(): len(p.get_payload(decode=True)) for p in msg.iter_attachments()
    }

    report = len(html.encode("utf-8"))
    print(
        f"report.html: {report / 1e6:.2f} MB = {report / REPORT_BUDGET:.0%} of the 5 MB budget "
        f"({len(view.rows):,} rows inline of {view.rows_total:,})"
    )
    print(f"  view model {t_view:.2f} s, Jinja render {t_render:.2f} s")
    print(f"findings.csv: {len(csv_bytes) / 1e6:.1f} MB, written in {t_csv:.2f} s")
    print(
        "write_reports (all four files): "
        + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items())
        + f" in {t_all:.2f} s"
    )
    print(
        f"digest: HTML body {body_bytes / 1e3:.1f} KB = {body_bytes / HTML_BODY_LIMIT:.0%} of "
        f"the 100 KB budget, built in {t_digest:.2f} s; attachments "
        + ", ".join(f"{n} {s / 1e6:.2f} MB" for n, s in attachments.items())
    )


if __name__ == "__main__":
    main()
