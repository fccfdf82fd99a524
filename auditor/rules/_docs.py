"""Rule documentation generated from the registry: each rule's options as TOML, and
``docs/rules.md``.

Both come from the rules themselves (module docstring, ``Rule`` fields, options model with its
``Field(description=...)``), so they cannot drift: ``auditor rules NAME`` prints
:func:`options_toml`, and ``auditor rules --markdown > docs/rules.md`` writes
:func:`rules_markdown` (``tests/test_rule_docs.py`` fails when the file and the generator
disagree).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from auditor.rules import RULES
from auditor.rules._base import Rule

__all__ = ["doc_markdown", "options_toml", "rules_markdown"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    """``value`` as a TOML value (inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items() if v is not None]
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in items)
        return "{" + inner + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _help(description: str | None, width: int = 92) -> list[str]:
    if not description:
        return []
    wrapped = textwrap.wrap(description, width=width, break_on_hyphens=False)
    return ["# " + line for line in wrapped]


def _models_by_name(value: Any) -> bool:
    """``value`` is a non-empty mapping of models (a table of tables: ``tags.<tag>.<value>``)."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, BaseModel) for v in value.values())
    )


def _nested(annotation: Any) -> bool:
    """The field is a mapping of mappings (``dict[str, dict[str, Model]]``)."""
    args = get_args(annotation)
    return len(args) == 2 and get_origin(args[1]) is dict


def _table(header: str, model: BaseModel, *, helps: bool = True) -> list[str]:
    """``[header]`` with the model's fields: help comment, then ``key = value``.

    Scalars and lists come first, then one sub-table per entry of each mapping of models
    (TOML needs a table's own keys before its sub-tables). An unset (``None``) option and an
    empty mapping are written as comments: they have no default value to show.
    """
    lines = [f"[{header}]"]
    subtables: list[str] = []
    fields = type(model).model_fields
    for name, info in fields.items():
        value = getattr(model, name)
        key = info.alias or name
        help_ = _help(info.description) if helps else []
        if isinstance(value, Mapping) and (
            not value or all(isinstance(v, BaseModel) for v in value.values())
            or all(_models_by_name(v) for v in value.values())
        ):
            if not value:
                placeholder = '."<name>"."<value>"' if _nested(info.annotation) else '."<name>"'
                lines += [*help_, f"# [{header}.{_key(key)}{placeholder}]  (none by default)"]
                continue
            subtables += ["", *help_]
            entries: list[tuple[str, BaseModel]] = []
            for entry, sub in value.items():
                if isinstance(sub, Mapping):  # a table of tables: tags.<tag>.<value>
                    entries += [(f"{_key(str(entry))}.{_key(str(k))}", m) for k, m in sub.items()]
                else:
                    entries.append((_key(str(entry)), sub))
            for i, (entry, sub) in enumerate(entries):
                path = f"{header}.{_key(key)}.{entry}"
                subtables += [*_table(path, sub, helps=helps and i == 0), ""]
            subtables.pop()
            continue
        lines += help_
        if value is None:
            lines.append(f"# {key} = (not set by default)")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    return lines + subtables


def options_toml(rule: Rule) -> str:
    """The options of ``rule`` with their defaults and help, as a valid ``[rules.NAME]`` table.

    Pasted into a config file it changes nothing (every value is the default); it loads with
    :func:`auditor.config.load_config`.
    """
    return "\n".join(_table(f"rules.{rule.name}", rule.options_model())) + "\n"


def _literals(text: str) -> str:
    """reStructuredText ``literals`` as Markdown `code`."""
    return text.replace("``", "`")


def doc_markdown(doc: str) -> str:
    """A rule docstring as Markdown: the summary line, then each section under a heading.

    Rule docstrings are a summary line, then sections: a title line (``What it flags``)
    followed by an indented body.
    """
    lines = textwrap.dedent(doc).strip().splitlines()
    summary, body = lines[0].strip(), lines[1:]
    out = [_literals(summary)]
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(["", _literals(" ".join(paragraph))])
            paragraph.clear()

    for line in body:
        if not line.strip():
            flush()
        elif not line.startswith((" ", "\t")):
            flush()
            out.extend(["", f"**{line.strip()}**"])
        else:
            paragraph.append(line.strip())
    flush()
    return "\n".join(out)


_HEADER = """\
<!-- Generated from the rule registry by `auditor rules --markdown > docs/rules.md`: do not
     edit by hand. The text is each rule's module docstring, the options come from its options
     model (auditor/rules/*.py); tests/test_rule_docs.py fails when this file is out of date. -->

# Audit rules

One section per rule of the registry (`auditor.rules.RULES`), in registry order. How the audit
runs, coverage, configuration, snoozes, the incident ledger and performance figures are in
[audit.md](audit.md); how to add a rule is in [contributing.md](contributing.md#adding-a-rule).

`auditor rules` lists the rules; `auditor rules NAME|CODE` prints one rule's documentation and
its options as TOML (paste it into the config file to change a value); `auditor rules --doc`
prints them all.

Codes: `FA1xx` freshness, `FA2xx` syncs failing, `FA3xx` connections, `FA4xx` collection and
data, `FA5xx` fleet-wide. Only tiered rules (a warning and an error threshold) give findings
of both severities; every other rule gives its default severity. `severity` in a rule's table
overrides both.
"""


def _anchor(rule: Rule) -> str:
    return f"{rule.name}-{rule.code.lower()}"


def rules_markdown(rules: Iterable[Rule] = RULES) -> str:
    """``docs/rules.md``: the rule table, then each rule's documentation and options."""
    rules = tuple(rules)
    out = [_HEADER]
    out.append("| code | name | default severity | scope | covered by | what it flags |")
    out.append("|---|---|---|---|---|---|")
    for rule in rules:
        covered = ", ".join(f"`{n}`" for n in rule.covered_by) or ""
        out.append(
            f"| {rule.code} | [`{rule.name}`](#{_anchor(rule)}) | {rule.default_severity} | "
            f"{rule.scope} | {covered} | {_literals(rule.summary)} |"
        )
    for rule in rules:
        out += [
            "",
            f"## {rule.name} ({rule.code})",
            "",
            f"Default severity **{rule.default_severity}**, scope {rule.scope}"
            + (f", covered by {', '.join(f'`{n}`' for n in rule.covered_by)}" if rule.covered_by
               else "")
            + ".",
            "",
            doc_markdown(rule.doc),
            "",
            "**Options** (the defaults):",
            "",
            "```toml",
            options_toml(rule).rstrip("\n"),
            "```",
        ]
    return "\n".join(out) + "\n"
