"""The integrations a generated fleet uses: platform tables per source type.

The tables themselves are :mod:`auditor.platforms` (one list for the sandbox, the fakes of
:mod:`auditor.testing` and the benchmarks); this module groups them by source type for the
generator.
"""

from __future__ import annotations

from typing import Final

from auditor.platforms import (
    ACCOUNTING_PLATFORMS,
    BANKING_PLATFORMS,
    COMMERCE_PLATFORMS,
    Platform,
)

__all__ = [
    "ACCOUNTING_PLATFORMS",
    "BANKING_PLATFORMS",
    "COMMERCE_PLATFORMS",
    "PLATFORMS_BY_SOURCE",
    "SOURCES",
    "Platform",
]

PLATFORMS_BY_SOURCE: Final[tuple[tuple[Platform, ...], ...]] = (
    ACCOUNTING_PLATFORMS,
    BANKING_PLATFORMS,
    COMMERCE_PLATFORMS,
)
SOURCES: Final[tuple[str, ...]] = ("Accounting", "Banking", "Commerce")
