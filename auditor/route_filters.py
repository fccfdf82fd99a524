"""The filters of a route (email or notification): a leaf the settings modules build on.

:class:`RouteFilter` is the pydantic model of the filters every route shares (``severities``,
``platforms``, ``rules``, ``tags``, ``min_nights``; see :mod:`auditor.routing` for what each
means); :class:`Clause` is one route's filters as a hashable value. Applying them to findings
is :mod:`auditor.routing`'s job. Imports nothing but the findings' severities and the text
helpers, so :mod:`auditor.email_settings` and :mod:`auditor.notify_settings` stay leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from auditor.findings import Severity
from auditor.safe_text import OneLine

__all__ = ["Clause", "RouteFilter", "TagFilter"]

#: ``tags`` of a route: key -> value or values (values of one key: any; keys: all).
TagFilter = dict[OneLine, OneLine | list[OneLine]]


class RouteFilter(BaseModel):
    """The filters of one route (email or notification); a missing one matches everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severities: list[Severity] | None = None
    platforms: list[str] | None = None
    rules: list[str] | None = None
    tags: TagFilter | None = None
    min_nights: int | None = Field(default=None, ge=1, le=10_000)

    def clause(self) -> Clause:
        """This route's filters as a hashable :class:`Clause`."""

        def fs(values: list[str] | None) -> frozenset[str] | None:
            return None if values is None else frozenset(values)

        tags = None
        if self.tags is not None:
            tags = frozenset(
                (key, frozenset([value] if isinstance(value, str) else value))
                for key, value in self.tags.items()
            )
        return Clause(
            fs(list(self.severities) if self.severities is not None else None),
            fs(self.platforms),
            fs(self.rules),
            tags,
            self.min_nights,
        )


@dataclass(frozen=True)
class Clause:
    """One route's filters (``None`` = any)."""

    severities: frozenset[str] | None = None
    platforms: frozenset[str] | None = None
    rules: frozenset[str] | None = None
    #: (key, allowed values) pairs: every key must match one of its values.
    tags: frozenset[tuple[str, frozenset[str]]] | None = None
    min_nights: int | None = None

    @property
    def everything(self) -> bool:
        return self == Clause()

    def label(self) -> str:
        bits = [
            f"{name} {', '.join(sorted(vals))}"
            for name, vals in (
                ("severity", self.severities),
                ("platform", self.platforms),
                ("rule", self.rules),
            )
            if vals is not None
        ]
        if self.tags is not None:
            bits += [f"tag {key}={'|'.join(sorted(vals))}" for key, vals in sorted(self.tags)]
        if self.min_nights is not None:
            bits.append(f"open {self.min_nights}+ nights")
        return " & ".join(bits)
