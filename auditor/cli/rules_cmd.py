"""``auditor rules``: list the audit rules, or print one rule's documentation."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from auditor.cli._app import app
from auditor.rules import RULES, get_rule

__all__ = ["rules"]


@app.command()
def rules(
    name: Annotated[
        str | None,
        typer.Argument(help="A rule name or code: print its full documentation and options."),
    ] = None,
    doc: Annotated[
        bool, typer.Option("--doc", help="Print every rule's full documentation.")
    ] = False,
) -> None:
    """List the audit rules: code, name, default severity and what each flags."""
    console = Console(highlight=False, soft_wrap=True)
    if name is not None:
        try:
            selected = [get_rule(name)]
        except KeyError:
            known = ", ".join(r.name for r in RULES)
            console.print(f"unknown rule {name!r}; known rules: {known}")
            raise typer.Exit(2) from None
    elif doc:
        selected = list(RULES)
    else:
        table = Table(title="Audit rules", show_lines=False)
        table.add_column("code")
        table.add_column("name")
        table.add_column("severity")
        table.add_column("what it flags")
        for rule in RULES:
            table.add_row(rule.code, rule.name, rule.default_severity, rule.summary)
        console.print(table)
        console.print("`auditor rules NAME` prints a rule's documentation and options.")
        return
    for rule in selected:
        console.rule(f"{rule.code} {rule.name} (default severity: {rule.default_severity})")
        console.print(rule.doc.strip(), markup=False)
        options = rule.options_model().model_dump()
        console.print(f"\nOptions [rules.{rule.name}] (defaults):", markup=False)
        for key, value in options.items():
            console.print(f"  {key} = {value!r}", markup=False)
        console.print()
