"""The fleet a sandbox serves: companies, their dataStatus, pull operations and sync settings.

A :class:`Fleet` is what the sandbox reads; it never changes while served (refreshes are an
overlay kept by the server). It comes from :func:`~auditor.sandbox.generate_fleet` (lazy,
columnar, cheap for 100,000 companies) or from a fleet file (:func:`load_fleet`), whose
format is (JSON)::

    {"syncSettings": <SyncSettings object as in the spec>,          // optional
     "now": "2024-05-01T06:00:00Z",                                  // optional (extension)
     "companies": [
       {"company": <Company object, with "dataConnections": [<Connection>, ...]>,
        "dataStatus": {"invoices": <DataStatus>, ...},               // served verbatim
        "pullOperations": [<PullOperation>, ...],                    // history, newest first
        "dataStatusError": <ErrorMessage>,                           // optional
        "syncSettings": <CompanySyncSettings>}]}                     // optional (extension)

Everything in a company entry is served verbatim, quirks included. ``dataStatusError``, when
present, is served instead of the dataStatus with its ``statusCode`` as the HTTP status.
``now`` is the time the fleet describes (the sandbox's clock starts there); ``syncSettings`` in
a company entry is that company's ``GET /companies/{id}/syncSettings`` answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from auditor.constants import ALL_DATA_TYPES

__all__ = [
    "CompanyRecord",
    "Fleet",
    "FleetFileError",
    "default_sync_settings",
    "format_timestamp",
    "load_fleet",
]

#: Data types refreshed weekly (168 h) in the default sync settings; the rest daily (24 h).
WEEKLY_DATA_TYPES: Final[frozenset[str]] = frozenset(
    {
        "chartOfAccounts",
        "company",
        "paymentMethods",
        "taxRates",
        "trackingCategories",
        "banking-transactionCategories",
        "commerce-companyInfo",
        "commerce-locations",
        "commerce-paymentMethods",
        "commerce-productCategories",
        "commerce-taxComponents",
    }
)

#: Data types not fetched when a connection is first linked, in the default sync settings.
NOT_FETCHED_ON_FIRST_LINK: Final[frozenset[str]] = frozenset(
    {"directCosts", "directIncomes", "itemReceipts", "journals", "transfers", "commerce-disputes"}
)

#: The profile's ``clientId`` in default sync settings.
SANDBOX_CLIENT_ID: Final[str] = "5b3d9c1e-6a2f-4c8e-9d07-1f2a3b4c5d6e"


class FleetFileError(ValueError):
    """A fleet file (or fleet dict) that cannot be served; the message says where."""


def format_timestamp(moment: datetime) -> str:
    """``moment`` as Codat writes it: ISO-8601 UTC with milliseconds and ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def default_sync_settings() -> dict[str, Any]:
    """Realistic client sync settings: daily for most types, weekly for reference data."""
    settings = []
    for order, data_type in enumerate(ALL_DATA_TYPES):
        entry: dict[str, Any] = {
            "dataType": data_type,
            "fetchOnFirstLink": data_type not in NOT_FETCHED_ON_FIRST_LINK,
            "syncSchedule": 168 if data_type in WEEKLY_DATA_TYPES else 24,
            "syncOrder": order,
            "syncFromWindow": 24,
            "isLocked": False,
        }
        if data_type in ("balanceSheet", "profitAndLoss", "cashFlowStatement"):
            entry["monthsToSync"] = 24
        settings.append(entry)
    return {"clientId": SANDBOX_CLIENT_ID, "settings": settings, "overridesDefaults": True}


@dataclass(frozen=True, slots=True)
class CompanyRecord:
    """One company as the sandbox serves it (one entry of a fleet file).

    ``company`` is the Company object (with ``dataConnections``), ``data_status`` the
    dataStatus body, ``pull_operations`` the history (newest first). ``data_status_error`` is
    an ErrorMessage served instead of the dataStatus (HTTP status = its ``statusCode``).
    ``sync_settings`` is the company's CompanySyncSettings (None: the profile's settings,
    ``overridesDefaults`` false).
    """

    company: dict[str, Any]
    data_status: dict[str, Any] = field(default_factory=dict)
    pull_operations: list[dict[str, Any]] = field(default_factory=list)
    data_status_error: dict[str, Any] | None = None
    sync_settings: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.company["id"])

    @property
    def connections(self) -> list[dict[str, Any]]:
        conns = self.company.get("dataConnections") or []
        return [c for c in conns if isinstance(c, dict)]

    def to_json(self) -> dict[str, Any]:
        """The fleet-file entry of this company."""
        entry: dict[str, Any] = {
            "company": self.company,
            "dataStatus": self.data_status,
            "pullOperations": self.pull_operations,
        }
        if self.data_status_error is not None:
            entry["dataStatusError"] = self.data_status_error
        if self.sync_settings is not None:
            entry["syncSettings"] = self.sync_settings
        return entry

    @classmethod
    def from_json(cls, entry: Any, where: str = "company entry") -> CompanyRecord:
        """Read one fleet-file entry; :class:`FleetFileError` names ``where`` on bad input."""
        if not isinstance(entry, Mapping):
            raise FleetFileError(f"{where}: expected an object, got {type(entry).__name__}")
        company = entry.get("company")
        if not isinstance(company, Mapping):
            raise FleetFileError(f"{where}: 'company' must be a Company object")
        company_id = company.get("id")
        if not isinstance(company_id, str) or not company_id:
            raise FleetFileError(f"{where}: 'company.id' must be a non-empty string")
        conns = company.get("dataConnections", [])
        if not isinstance(conns, list) or not all(isinstance(c, Mapping) for c in conns):
            raise FleetFileError(f"{where}: 'company.dataConnections' must be a list of objects")
        data_status = entry.get("dataStatus", {})
        if not isinstance(data_status, Mapping):
            raise FleetFileError(f"{where}: 'dataStatus' must be an object")
        pull_ops = entry.get("pullOperations", [])
        if not isinstance(pull_ops, list) or not all(isinstance(p, Mapping) for p in pull_ops):
            raise FleetFileError(f"{where}: 'pullOperations' must be a list of objects")
        error = entry.get("dataStatusError")
        if error is not None:
            if not isinstance(error, Mapping):
                raise FleetFileError(f"{where}: 'dataStatusError' must be an ErrorMessage object")
            code = error.get("statusCode")
            if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
                raise FleetFileError(
                    f"{where}: 'dataStatusError.statusCode' must be an HTTP error status "
                    f"(400-599), got {code!r}"
                )
        settings = entry.get("syncSettings")
        if settings is not None and not isinstance(settings, Mapping):
            raise FleetFileError(f"{where}: 'syncSettings' must be a CompanySyncSettings object")
        return cls(
            company=dict(company),
            data_status=dict(data_status),
            pull_operations=[dict(p) for p in pull_ops],
            data_status_error=None if error is None else dict(error),
            sync_settings=None if settings is None else dict(settings),
        )


class Fleet:
    """The companies a sandbox serves, in listing order, plus the profile's sync settings.

    ``records`` may be any sequence (the generated fleet builds each record on access).
    ``now`` is the moment the fleet describes (generated fleets: their ``now``); the sandbox's
    clock starts there when set.
    """

    def __init__(
        self,
        records: Sequence[CompanyRecord],
        sync_settings: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
        company_ids: Sequence[str] | None = None,
    ) -> None:
        if now is not None and now.tzinfo is None:
            raise ValueError("Fleet.now must be timezone-aware")
        self.records = records
        self.sync_settings: dict[str, Any] = (
            default_sync_settings() if sync_settings is None else dict(sync_settings)
        )
        self.now = None if now is None else now.astimezone(UTC)
        ids = list(company_ids) if company_ids is not None else [r.id for r in records]
        if len(ids) != len(records):
            raise ValueError("company_ids and records differ in length")
        self.company_ids: list[str] = ids
        self._index: dict[str, int] = {}
        for i, company_id in enumerate(ids):
            if company_id in self._index:
                first = self._index[company_id]
                raise FleetFileError(
                    f"duplicate company id {company_id!r} (entries {first} and {i})"
                )
            self._index[company_id] = i

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[CompanyRecord]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"Fleet(companies={len(self)}, now={self.now!r})"

    def index_of(self, company_id: str) -> int | None:
        return self._index.get(company_id)

    def get(self, company_id: str) -> CompanyRecord | None:
        """The record of ``company_id``, or None for an unknown id."""
        index = self._index.get(company_id)
        return None if index is None else self.records[index]

    def to_dict(self) -> dict[str, Any]:
        """The whole fleet as a fleet-file object (materialises every record)."""
        data: dict[str, Any] = {"syncSettings": self.sync_settings}
        if self.now is not None:
            data["now"] = format_timestamp(self.now)
        data["companies"] = [r.to_json() for r in self.records]
        return data

    def to_file(self, path: str | Path) -> Path:
        """Write the fleet file (one company entry per line); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as out:
            out.write('{"syncSettings": ')
            json.dump(self.sync_settings, out)
            if self.now is not None:
                out.write(f',\n "now": "{format_timestamp(self.now)}"')
            out.write(',\n "companies": [')
            for i, record in enumerate(self.records):
                out.write("\n  " if i == 0 else ",\n  ")
                json.dump(record.to_json(), out, separators=(", ", ": "))
            out.write("\n ]}\n")
        return target

    @classmethod
    def from_dict(cls, data: Any, source: str = "fleet") -> Fleet:
        """Build a fleet from a parsed fleet file; :class:`FleetFileError` on bad input."""
        if not isinstance(data, Mapping):
            raise FleetFileError(f"{source}: top level must be an object")
        companies = data.get("companies")
        if not isinstance(companies, list):
            raise FleetFileError(f"{source}: 'companies' must be a list")
        settings = data.get("syncSettings")
        if settings is not None and (
            not isinstance(settings, Mapping) or not isinstance(settings.get("settings", []), list)
        ):
            raise FleetFileError(f"{source}: 'syncSettings' must be a SyncSettings object")
        now: datetime | None = None
        raw_now = data.get("now")
        if raw_now is not None:
            try:
                now = datetime.fromisoformat(str(raw_now).replace("Z", "+00:00"))
            except ValueError:
                raise FleetFileError(
                    f"{source}: 'now' is not an ISO-8601 time: {raw_now!r}"
                ) from None
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
        records = [
            CompanyRecord.from_json(entry, f"{source}: companies[{i}]")
            for i, entry in enumerate(companies)
        ]
        try:
            return cls(records, settings, now=now)
        except FleetFileError as exc:
            raise FleetFileError(f"{source}: {exc}") from None


def load_fleet(path: str | Path) -> Fleet:
    """Read a fleet file (format in this module's docstring and docs/sandbox.md)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetFileError(f"{source}: cannot read fleet file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FleetFileError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return Fleet.from_dict(data, str(source))
