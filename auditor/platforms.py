"""The integrations (platforms) the fleets of this package use: one list for all of them.

The sandbox's generated fleet (:mod:`auditor.sandbox`), the synthetic findings and snapshots of
:mod:`auditor.testing` and the benchmarks draw their platforms from here, so that they never
disagree on a platform's name. Names are Codat's; integration keys are sandbox values, not
Codat's. ``weight`` is the platform's share of the companies that have a connection of its
source type in a generated fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACCOUNTING_PLATFORMS",
    "BANKING_PLATFORMS",
    "COMMERCE_PLATFORMS",
    "PLATFORMS",
    "Platform",
]


@dataclass(frozen=True, slots=True)
class Platform:
    """An integration: its name, sandbox key, source type and share of a generated fleet."""

    name: str
    key: str
    source_type: str
    weight: float
    not_supported: frozenset[str] = frozenset()
    on_premise: bool = False


ACCOUNTING_PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform("Xero", "gbol", "Accounting", 0.30, frozenset({"itemReceipts", "salesOrders"})),
    Platform("QuickBooks Online", "qhyg", "Accounting", 0.27, frozenset({"itemReceipts"})),
    Platform(
        "QuickBooks Desktop",
        "pqsw",
        "Accounting",
        0.07,
        frozenset({"directCosts", "directIncomes", "transfers"}),
        on_premise=True,
    ),
    Platform(
        "Sage Intacct", "knfz", "Accounting", 0.06, frozenset({"itemReceipts", "salesOrders"})
    ),
    Platform("Oracle NetSuite", "akxx", "Accounting", 0.06),
    Platform(
        "FreeAgent",
        "fbrh",
        "Accounting",
        0.05,
        frozenset({"purchaseOrders", "salesOrders", "itemReceipts", "trackingCategories"}),
    ),
    Platform(
        "Sage Business Cloud Accounting",
        "tgff",
        "Accounting",
        0.05,
        frozenset({"itemReceipts", "purchaseOrders", "salesOrders"}),
    ),
    Platform(
        "Microsoft Dynamics 365 Business Central",
        "trji",
        "Accounting",
        0.05,
        frozenset({"directIncomes"}),
    ),
    Platform(
        "Zoho Books", "rwuv", "Accounting", 0.05, frozenset({"itemReceipts", "directIncomes"})
    ),
    Platform("Exact Online", "qudb", "Accounting", 0.04, frozenset({"directIncomes"})),
)
BANKING_PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform("Plaid", "ugxp", "Banking", 0.55, frozenset({"banking-transactionCategories"})),
    Platform("TrueLayer", "hkyx", "Banking", 0.30),
    Platform("Yodlee", "ylgr", "Banking", 0.15),
)
COMMERCE_PLATFORMS: Final[tuple[Platform, ...]] = (
    Platform("Shopify", "shpy", "Commerce", 0.45, frozenset({"commerce-disputes"})),
    Platform("Square", "sqre", "Commerce", 0.25, frozenset({"commerce-productCategories"})),
    Platform("Stripe", "strp", "Commerce", 0.20, frozenset({"commerce-locations"})),
    Platform("Amazon Seller Central", "amzn", "Commerce", 0.10),
)
#: Every platform above, accounting first.
PLATFORMS: Final[tuple[Platform, ...]] = (
    *ACCOUNTING_PLATFORMS,
    *BANKING_PLATFORMS,
    *COMMERCE_PLATFORMS,
)
