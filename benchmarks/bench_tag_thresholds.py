"""Benchmark: what per-tenant (company tag) thresholds cost the audit's tiered rules.

Builds a synthetic snapshot (``auditor.testing.snapshots``, realistic profile) of
``--companies`` companies x 43 data types, gives the companies Codat tags (a ``tier`` of
gold / silver / bronze / none and one of 5 ``region`` values, so 20 distinct tag sets), then
times the partition rules ``stale`` and ``stuck-sync`` (best of ``--repeat``):

* ``no tags``       the rules' thresholds with no ``tags`` tables (today's configuration);
* ``tag tables``    ``[rules.stale.tags.tier.gold]``, ``...tier.silver``,
  ``...region.eu.data_types.invoices`` and ``[rules.stuck-sync.tags.tier.gold]`` configured;
* ``resolve``       one :func:`auditor.rules._base.resolve_thresholds` call over every status
  row with those tables (the company tags matched once: :class:`CompanyTags`), and one with
  a fleet ``data_types`` table only (no tags), for comparison.

It also prints the findings of each run, so that a change of the figures can be read against
a change of what the rules find.

Usage::

    .venv/bin/python benchmarks/bench_tag_thresholds.py [--companies 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from auditor.config import AuditConfig
from auditor.engine import audit_partition
from auditor.rules._base import CompanyTags, resolve_thresholds
from auditor.rules.stale import StaleOptions
from auditor.snapshot import tags_json
from auditor.testing.snapshots import AS_OF, REALISTIC, synthetic_snapshot

TAG_CONFIG = {
    "rules": {
        "select": ["stale", "stuck-sync"],
        "stale": {
            "tags": {
                "tier": {"gold": {"warn_after": "12h", "error_after": "2d"},
                         "silver": {"warn_after": "1d"}},
                "region": {"eu": {"data_types": {"invoices": {"warn_after": "6h"}}}},
            }
        },
        "stuck-sync": {"tags": {"tier": {"gold": {"warn_after": "2h", "error_after": "6h"}}}},
    }
}


def best(fn: object, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    snapshot = synthetic_snapshot(args.companies, profile=REALISTIC)
    rng = np.random.default_rng(11)
    tiers = rng.choice(["gold", "silver", "bronze", ""], size=len(snapshot.companies))
    regions = rng.choice(["eu", "uk", "us", "apac", "latam"], size=len(snapshot.companies))
    sets = {
        (t, r): tags_json({"tier": t, "region": r} if t else {"region": r})
        for t in ("gold", "silver", "bronze", "")
        for r in ("eu", "uk", "us", "apac", "latam")
    }
    tags = [sets[(t, r)] for t, r in zip(tiers, regions, strict=True)]
    snapshot = replace(snapshot, companies=snapshot.companies.assign(company_tags=tags))
    rows = len(snapshot.status)
    print(f"{args.companies:,} companies, {rows:,} status rows, {len(set(tags))} tag sets")

    plain = AuditConfig.model_validate({"rules": {"select": ["stale", "stuck-sync"]}})
    tagged = AuditConfig.model_validate(TAG_CONFIG)
    for label, config in (("no tags", plain), ("tag tables", tagged)):
        seconds, findings = best(lambda c=config: audit_partition(snapshot, c, AS_OF), args.repeat)
        assert isinstance(findings, pd.DataFrame)
        print(f"{label:12} stale + stuck-sync: {seconds:6.2f} s, {len(findings):,} findings")

    options = tagged.rule_options("stale")
    assert isinstance(options, StaleOptions)

    def resolve() -> object:
        return resolve_thresholds(
            snapshot.status, options, 336.0, 672.0, tags=CompanyTags(snapshot.companies)
        )

    seconds, _ = best(resolve, args.repeat)
    print(f"resolve, tag tables ({rows:,} rows, tags matched afresh each time): {seconds:6.3f} s")
    untagged = StaleOptions(data_types={"invoices": {"warn_after": 6.0}}, platforms={"Xero": {}})

    def resolve_plain() -> object:
        return resolve_thresholds(
            snapshot.status, untagged, 336.0, 672.0, tags=CompanyTags(snapshot.companies)
        )

    seconds, _ = best(resolve_plain, args.repeat)
    print(f"resolve, no tag tables ({rows:,} rows): {seconds:6.3f} s")


if __name__ == "__main__":
    main()
