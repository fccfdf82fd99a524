"""The one way the CLI prints: control characters escaped, secrets redacted.

Text the CLI prints can hold what Codat gave us (company names and ids, error texts): an escape
sequence in it would set the terminal's title, move the cursor or hide what follows, and a
carriage return would forge a line. :func:`echo` escapes every control, line-separator and
bidi character except the newlines of the message itself (use :func:`field` for a value from
Codat, which escapes its newlines too), and redacts registered secrets.
"""

from __future__ import annotations

import typer

from auditor.logs import cli_quiet, redact
from auditor.safe_text import terminal_safe

__all__ = ["echo", "field"]


def field(value: object) -> str:
    """A value from Codat, safe to put in a printed line (its own newlines escaped too)."""
    return terminal_safe(value)


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """``typer.echo`` with control characters escaped (newlines kept) and secrets redacted.

    With ``auditor --quiet`` only what goes to stderr (errors) is printed."""
    if cli_quiet() and not err:
        return
    lines = str(message).split("\n")
    typer.echo(redact("\n".join(terminal_safe(line) for line in lines)), err=err, nl=nl)
