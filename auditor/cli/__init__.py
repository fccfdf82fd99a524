"""``auditor`` command line. Each area registers its commands in its own module."""

from __future__ import annotations

# Importing the command modules registers their commands on ``app``.
from auditor.cli import commands as _commands  # noqa: F401
from auditor.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``auditor`` script."""
    app()
