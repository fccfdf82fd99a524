"""Imports every command module so that their ``@app.command`` decorators run."""

from __future__ import annotations

from auditor.cli import (  # noqa: F401  (imported for their @app.command registrations)
    audit_cmd,
    demo_cmd,
    listen_cmd,
    prune_cmd,
    refresh_cmd,
    rules_cmd,
    run_cmd,
    sandbox_cmd,
    snapshot_cmd,
    snapshots_cmd,
)
