"""The rules' documentation in the report: the appendix, parsed from each rule's docstring.

:func:`parse_doc` turns a docstring (reST-ish: paragraphs, ``-`` lists, literal blocks,
underlined or numpydoc-style headings, ````code```` spans) into :class:`DocBlock` s that
``templates/report/_appendix.html`` renders; :func:`build_appendix` makes one
:class:`RuleSection` per rule. Nothing here produces markup.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DocBlock",
    "RuleDoc",
    "RuleSection",
    "Span",
    "build_appendix",
    "inline",
    "load_rules",
    "parse_doc",
    "rule_anchor",
]


class RuleDoc(Protocol):
    """What the report needs of a rule (``auditor.rules.RULES`` items satisfy it)."""

    @property
    def name(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def default_severity(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def doc(self) -> str: ...


def load_rules() -> tuple[RuleDoc, ...]:
    """``auditor.rules.RULES`` when the rules package provides it, else nothing."""
    try:
        from auditor import rules as rules_pkg
    except ImportError:  # pragma: no cover - the package always exists
        return ()
    found = getattr(rules_pkg, "RULES", ())
    return tuple(found)


def rule_anchor(name: str) -> str:
    """The appendix anchor of rule ``name``."""
    return "rule-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed")


@dataclass(frozen=True)
class Span:
    """A run of docstring text; ``code`` for ````literal```` runs."""

    text: str
    code: bool = False


@dataclass(frozen=True)
class DocBlock:
    """One block of a rule docstring: a paragraph, a list, a literal block or a heading.

    ``items``: one run of spans for ``p`` and ``h``, one per list item for ``ul``, one per line
    for ``pre``."""

    kind: str  # "p" | "ul" | "pre" | "h"
    items: tuple[tuple[Span, ...], ...]


@dataclass(frozen=True)
class RuleSection:
    name: str
    code: str | None
    anchor: str
    default_severity: str | None
    summary: str | None
    blocks: tuple[DocBlock, ...]


def inline(text: str) -> tuple[Span, ...]:
    """``text`` split into plain and ````code```` spans (reST double backticks)."""
    parts = re.split(r"``(.+?)``", text)
    return tuple(Span(part, code=i % 2 == 1) for i, part in enumerate(parts) if part)


_BULLET = re.compile(r"\s*[-*] (.*)")


def _doc_blocks(lines: list[str]) -> list[DocBlock]:
    """Blocks of one blank-line separated chunk of a docstring."""
    if not lines:
        return []
    # reST heading: "Title" underlined with ---- / ====
    if len(lines) >= 2 and re.fullmatch(r"[-=~^]{3,}", lines[1].strip()):
        return [DocBlock("h", ((Span(lines[0].strip()),),)), *_doc_blocks(lines[2:])]
    # numpydoc-style definition: an unindented title, an indented body
    if (
        len(lines) >= 2
        and not lines[0].startswith((" ", "\t"))
        and all(line.startswith((" ", "\t")) or not line.strip() for line in lines[1:])
    ):
        body = inspect.cleandoc("\n".join(lines[1:])).splitlines()
        return [DocBlock("h", ((Span(lines[0].strip()),),)), *_doc_blocks(body)]
    if all(line.startswith((" ", "\t")) for line in lines):
        return [
            DocBlock(
                "pre", tuple((Span(t),) for t in inspect.cleandoc("\n".join(lines)).splitlines())
            )
        ]
    if _BULLET.match(lines[0]) and all(
        _BULLET.match(line) or line.startswith("  ") for line in lines
    ):
        items: list[str] = []
        for line in lines:
            m = _BULLET.match(line)
            if m:
                items.append(m.group(1).strip())
            else:
                items[-1] += " " + line.strip()
        return [DocBlock("ul", tuple(inline(item) for item in items))]
    return [DocBlock("p", (inline(" ".join(line.strip() for line in lines)),))]


def parse_doc(doc: str | None, *, skip_summary: bool = True) -> tuple[DocBlock, ...]:
    """A rule docstring as blocks: paragraphs, ``-`` lists, literal blocks, headings (reST
    underlines or numpydoc-style indented definitions); ````code```` spans inline. The first
    line (the summary, shown apart) is left out when ``skip_summary``."""
    if not doc or not doc.strip():
        return ()
    text = inspect.cleandoc(doc)
    if skip_summary:
        text = "\n".join(text.splitlines()[1:])
    blocks: list[DocBlock] = []
    for chunk in re.split(r"\n\s*\n", text):
        blocks.extend(_doc_blocks([line for line in chunk.splitlines() if line.strip()]))
    return tuple(blocks)


def build_appendix(rules: Sequence[RuleDoc], extra_names: Sequence[str]) -> tuple[RuleSection, ...]:
    """One section per documented rule, then a bare one per other rule name that has findings."""
    sections = [
        RuleSection(
            name=r.name,
            code=r.code,
            anchor=rule_anchor(r.name),
            default_severity=r.default_severity,
            summary=r.summary,
            blocks=parse_doc(r.doc),
        )
        for r in rules
    ]
    known = {r.name for r in rules}
    sections += [
        RuleSection(
            name=n, code=None, anchor=rule_anchor(n), default_severity=None, summary=None, blocks=()
        )
        for n in extra_names
        if n not in known
    ]
    return tuple(sections)
