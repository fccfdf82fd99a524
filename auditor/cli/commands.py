"""Imports every command module so that their ``@app.command`` decorators run."""

from __future__ import annotations

import importlib

# Each module is owned by one area; a module that does not exist yet is skipped.
_MODULES = (
    "auditor.cli.sandbox_cmd",
    "auditor.cli.snapshot_cmd",
    "auditor.cli.audit_cmd",
    "auditor.cli.demo_cmd",
    "auditor.cli.rules_cmd",
    "auditor.cli.run_cmd",
    "auditor.cli.refresh_cmd",
    "auditor.cli.prune_cmd",
    "auditor.cli.listen_cmd",
)

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # pragma: no cover - transitional
        if exc.name != _name:
            raise
