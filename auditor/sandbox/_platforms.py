"""The integrations a generated fleet uses: platform tables per source type.

Each :class:`Platform` has a share of the fleet (``weight``, within its source type), the data
types it does not support (served as ``NotSupported``) and whether it runs on premise (its
connector can go offline). Integration keys are sandbox values, not Codat's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACCOUNTING_PLATFORMS",
    "BANKING_PLATFORMS",
    "COMMERCE_PLATFORMS",
    "PLATFORMS_BY_SOURCE",
    "SOURCES",
    "Platform",
]


@dataclass(frozen=True, slots=True)
class Platform:
    """An integration the generated fleet uses."""

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
PLATFORMS_BY_SOURCE: Final[tuple[tuple[Platform, ...], ...]] = (
    ACCOUNTING_PLATFORMS,
    BANKING_PLATFORMS,
    COMMERCE_PLATFORMS,
)
SOURCES: Final[tuple[str, ...]] = ("Accounting", "Banking", "Commerce")
