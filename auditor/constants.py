"""Facts about Codat that the whole package shares: statuses, data types, status sets.

These are data, not behaviour. Every module that needs to know what "an error status" is
imports it from here, so that the rules, the sandbox and the reports never disagree.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALL_DATA_TYPES",
    "ALL_STATUSES",
    "CONNECTION_STATUSES",
    "ERROR_STATUSES",
    "FAILED_AFTER_SUCCESS_STATUSES",
    "IN_PROGRESS_STATUSES",
    "NEUTRAL_STATUSES",
    "SOURCE_TYPE_OF_PREFIX",
    "source_type_of",
]

#: The 21 dataset statuses of Codat's ``PullOperation.status`` enum, in the spec's order.
ALL_STATUSES: Final[tuple[str, ...]] = (
    "Initial",
    "Queued",
    "Fetching",
    "MapQueued",
    "Mapping",
    "Complete",
    "FetchError",
    "MapError",
    "InternalError",
    "ProcessingQueued",
    "Processing",
    "ProcessingError",
    "ValidationQueued",
    "Validating",
    "ValidationError",
    "AuthError",
    "Cancelled",
    "NotSupported",
    "RateLimitError",
    "PermissionsError",
    "PrerequisiteNotMet",
)

#: A sync ended in an error.
ERROR_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "FetchError",
        "MapError",
        "InternalError",
        "ProcessingError",
        "ValidationError",
        "AuthError",
        "RateLimitError",
        "PermissionsError",
        "PrerequisiteNotMet",
    }
)

#: Error statuses that a refresh can fix (AuthError needs a relink instead).
FAILED_AFTER_SUCCESS_STATUSES: Final[frozenset[str]] = ERROR_STATUSES - {"AuthError"}

#: A sync is queued or running.
IN_PROGRESS_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "Initial",
        "Queued",
        "Fetching",
        "MapQueued",
        "Mapping",
        "ProcessingQueued",
        "Processing",
        "ValidationQueued",
        "Validating",
    }
)

#: Neither error nor in progress.
NEUTRAL_STATUSES: Final[frozenset[str]] = frozenset({"Complete", "NotSupported", "Cancelled"})

#: ``Connection.status`` values in the spec.
CONNECTION_STATUSES: Final[tuple[str, ...]] = ("PendingAuth", "Linked", "Unlinked", "Deauthorized")

#: The 43 data types of the spec's ``DataStatus.dataType`` enum, in the spec's order.
ALL_DATA_TYPES: Final[tuple[str, ...]] = (
    "accountTransactions",
    "balanceSheet",
    "bankAccounts",
    "bankTransactions",
    "billCreditNotes",
    "billPayments",
    "bills",
    "cashFlowStatement",
    "chartOfAccounts",
    "company",
    "creditNotes",
    "customers",
    "directCosts",
    "directIncomes",
    "invoices",
    "itemReceipts",
    "items",
    "journalEntries",
    "journals",
    "paymentMethods",
    "payments",
    "profitAndLoss",
    "purchaseOrders",
    "salesOrders",
    "suppliers",
    "taxRates",
    "trackingCategories",
    "transfers",
    "banking-accountBalances",
    "banking-accounts",
    "banking-transactionCategories",
    "banking-transactions",
    "commerce-companyInfo",
    "commerce-customers",
    "commerce-disputes",
    "commerce-locations",
    "commerce-orders",
    "commerce-paymentMethods",
    "commerce-payments",
    "commerce-productCategories",
    "commerce-products",
    "commerce-taxComponents",
    "commerce-transactions",
)

#: Which connection source type serves a data type, by the data type's prefix.
SOURCE_TYPE_OF_PREFIX: Final[dict[str, str]] = {"banking": "Banking", "commerce": "Commerce"}


def source_type_of(data_type: str) -> str:
    """The connection ``sourceType`` that serves ``data_type`` (``Accounting`` by default)."""
    prefix, sep, _ = data_type.partition("-")
    return SOURCE_TYPE_OF_PREFIX.get(prefix, "Accounting") if sep else "Accounting"
