"""``auditor rules``: list the audit rules, print one rule's documentation and options (as
TOML), or write ``docs/rules.md``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from auditor.cli._app import app
from auditor.rules import RULES, get_rule
from auditor.rules._docs import options_toml, rules_markdown

__all__ = ["OPTIONS_HEADING", "rules"]

#: The line before a rule's options in ``auditor rules NAME``; what follows it is TOML.
OPTIONS_HEADING = "Options, with their defaults (TOML for the config file):"


@app.command()
def rules(
    name: Annotated[
        str | None,
        typer.Argument(help="A rule name or code: print its full documentation and options."),
    ] = None,
    doc: Annotated[
        bool, typer.Option("--doc", help="Print every rule's full documentation.")
    ] = False,
    toml: Annotated[
        bool,
        typer.Option("--toml", help="Print only the options, as TOML (of NAME, or of every rule)."),
    ] = False,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="Print docs/rules.md, generated from the registry "
            "(auditor rules --markdown > docs/rules.md).",
        ),
    ] = False,
) -> None:
    """List the audit rules: code, name, default severity and what each flags."""
    console = Console(highlight=False, soft_wrap=True)
    if markdown:
        typer.echo(rules_markdown(), nl=False)
        return
    if name is not None:
        try:
            selected = [get_rule(name)]
        except KeyError:
            known = ", ".join(r.name for r in RULES)
            console.print(f"unknown rule {name!r}; known rules: {known}")
            raise typer.Exit(2) from None
    elif doc or toml:
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
    if toml:
        typer.echo("\n".join(options_toml(rule) for rule in selected), nl=False)
        return
    for rule in selected:
        console.rule(f"{rule.code} {rule.name} (default severity: {rule.default_severity})")
        console.print(rule.doc.strip(), markup=False)
        console.print(f"\n{OPTIONS_HEADING}\n", markup=False)
        console.print(options_toml(rule), markup=False)
