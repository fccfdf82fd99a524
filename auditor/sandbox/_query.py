"""A small subset of Codat's query language and ``orderBy``, for the sandbox's paged lists.

Supported: clauses ``property<op>value`` joined by ``&&`` (all must hold) or ``||`` (any
must hold; no braces, ``&&`` binds tighter), operators ``=``, ``!=``, ``~`` (contains),
``>``, ``>=``, ``<``, ``<=``; dotted properties (``dataConnections.status`` matches when any
connection matches). Values compare as numbers when both sides are numbers, as times when both
parse as ISO-8601, else as case-insensitive strings. ``orderBy`` is one property, ``-`` for
descending. An unknown property is a :class:`QueryError`, as in Codat ("Could not resolve
property ...").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["QueryError", "compile_query", "order_by"]

_CLAUSE: Final = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(!=|>=|<=|=|~|>|<)\s*(.*?)\s*$")


class QueryError(ValueError):
    """A ``query`` or ``orderBy`` the sandbox cannot parse (served as 400)."""


def _as_time(value: str) -> datetime | None:
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _compare(left: Any, op: str, right: str) -> bool:
    if left is None:
        return op == "!=" and right.lower() not in ("null", "")
    if isinstance(left, bool):
        left = str(left).lower()
    a: Any
    b: Any
    if isinstance(left, int | float):
        try:
            a, b = float(left), float(right)
        except ValueError:
            a, b = str(left).lower(), right.lower()
    else:
        text = str(left)
        ta, tb = _as_time(text), _as_time(right)
        if ta is not None and tb is not None and op not in ("~",):
            a, b = ta, tb
        else:
            a, b = text.lower(), right.lower()
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "~":
        return str(b) in str(a)
    try:
        if op == ">":
            return bool(a > b)
        if op == ">=":
            return bool(a >= b)
        if op == "<":
            return bool(a < b)
        return bool(a <= b)
    except TypeError:
        return False


def _values(item: Any, path: Sequence[str]) -> list[Any]:
    if not path:
        return [item]
    if isinstance(item, list):
        return [v for sub in item for v in _values(sub, path)]
    if isinstance(item, dict):
        return _values(item.get(path[0]), path[1:])
    return [None]


def compile_query(
    query: str, properties: Iterable[str], entity: str
) -> Callable[[dict[str, Any]], bool]:
    """A predicate for ``query``; ``properties`` are the top-level names the entity has."""
    known = set(properties)
    groups: list[list[tuple[list[str], str, str]]] = []
    for part in query.split("||"):
        clauses = []
        for raw in part.split("&&"):
            raw = raw.strip().strip("{}").strip()
            match = _CLAUSE.match(raw)
            if match is None:
                raise QueryError("Error parsing query - Malformed query.")
            prop, op, value = match.groups()
            path = prop.split(".")
            if path[0] not in known:
                raise QueryError(
                    f"Error parsing query - Could not resolve property {prop} on {entity}"
                )
            clauses.append((path, op, value.strip('"').strip("'")))
        groups.append(clauses)

    def predicate(item: dict[str, Any]) -> bool:
        return any(
            all(any(_compare(v, op, value) for v in _values(item, path)) for path, op, value in g)
            for g in groups
        )

    return predicate


def order_by(
    items: list[dict[str, Any]], spec: str, properties: Iterable[str], entity: str
) -> list[dict[str, Any]]:
    """``items`` sorted by ``spec`` (``name`` or ``-name``); missing values sort last."""
    descending = spec.startswith("-")
    prop = spec.lstrip("-+").strip()
    if prop not in set(properties):
        raise QueryError(f"Error parsing query - Could not resolve property {prop} on {entity}")
    present = [i for i in items if i.get(prop) is not None]
    missing = [i for i in items if i.get(prop) is None]

    def key(item: dict[str, Any]) -> tuple[int, Any]:
        value = item[prop]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (0, float(value))
        moment = _as_time(str(value))
        if moment is not None:
            return (1, moment)
        return (2, str(value).lower())

    return sorted(present, key=key, reverse=descending) + missing
