"""``python -m auditor``: the same as the ``auditor`` command."""

from __future__ import annotations

from auditor.cli import main

main()
