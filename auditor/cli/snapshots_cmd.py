"""``auditor snapshots``: the nights a store holds."""

from __future__ import annotations

import json

import pandas as pd

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli.options import ConfigOption, StoreOption
from auditor.store import FINDINGS_META, StoreDir, list_snapshots, store_root

__all__ = ["snapshots"]


def _findings_count(path: StoreDir) -> str:
    """Findings stored by the night's audit ('-' when it was not audited)."""
    try:
        meta = json.loads((path / FINDINGS_META).read_text(encoding="utf-8"))
        return f"{int(meta['findings']):,}"
    except (OSError, ValueError, KeyError, TypeError):
        return "-"


@app.command()
def snapshots(store: StoreOption = None, config: ConfigOption = None) -> None:
    """List the store's snapshots, oldest first: id, date, complete or not, companies and
    the number of findings of its audit ('-': not audited).

    Any of them can be given to --snapshot, by id or by date (a date picks that day's latest
    complete snapshot); an incomplete one (a run in progress or killed) is never read.
    """
    root = settings_or_exit(load_config_or_exit(config), store=store).store
    table = list_snapshots(root)
    if table.empty:
        echo(f"no snapshots in {root}")
        return
    rows = [("snapshot_id", "date", "complete", "companies", "findings")]
    for snap in table.to_dict("records"):
        done, shards = snap["shards_done"], snap["shards"]
        complete = "yes" if snap["complete"] else f"no ({done}/{shards} shards)"
        companies = "-" if pd.isna(snap["companies"]) else f"{int(snap['companies']):,}"
        findings = _findings_count(store_root(str(snap["path"]))) if snap["has_findings"] else "-"
        ident, day = str(snap["snapshot_id"]), str(snap["snapshot_date"])
        rows.append((ident, day, complete, companies, findings))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        echo(
            "  ".join(
                cell.rjust(w) if i >= 3 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    complete_n = int(table["complete"].sum())
    echo(f"{len(table)} snapshots in {root} ({complete_n} complete)")
