"""Contract: what ``POST /companies/{id}/data/all`` queues, the sandbox's answers validated.

Codat's refresh-company-data "refreshes all data types with fetch on first link set to true"
(docs.codat.io/core-concepts/data-type-settings). The sandbox queues exactly the types whose
setting (the company's own when it overrides the defaults, else the profile's) has
``fetchOnFirstLink: true`` and that a ``Linked`` connection serves, skipping running and
NotSupported ones; ``data/queue/{dataType}`` queues any type. Every exchange is validated
against the spec with the contract tests' :class:`Exchange`.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import test_sandbox_contract as contract
from test_sandbox_contract import Exchange

from auditor.constants import ALL_DATA_TYPES, source_type_of
from auditor.sandbox import CompanyRecord, Fleet, default_sync_settings
from auditor.sandbox._fleet import NOT_FETCHED_ON_FIRST_LINK

# The contract tests' spec fixtures and skip mark (the spec may be absent).
pytestmark = contract.pytestmark
spec_dict = contract.spec_dict
openapi = contract.openapi
exchange = contract.exchange

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
STAMP = "2024-05-01T03:00:00.000Z"


def _connection(company_id: str, source: str, status: str) -> dict[str, Any]:
    conn_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{company_id}/{source}"))
    return {
        "id": conn_id,
        "integrationId": str(uuid.uuid5(uuid.NAMESPACE_URL, source)),
        "integrationKey": "gbol" if source == "Accounting" else "sqre",
        "sourceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"src/{source}")),
        "sourceType": source,
        "platformName": "Xero" if source == "Accounting" else "Square",
        "linkUrl": f"https://link-api.codat.io/companies/{company_id}/connections/{conn_id}/start",
        "status": status,
        "created": "2023-07-06T06:00:00.000Z",
        "lastSync": STAMP,
    }


def _entry(data_type: str, status: str, sync_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dataType": data_type,
        "currentStatus": status,
        "latestSyncId": sync_id,
    }
    if status == "Complete":
        entry["lastSuccessfulSync"] = STAMP
        entry["latestSuccessfulSyncId"] = sync_id
    return entry


def _company(name: str, sync_settings: dict[str, Any] | None = None) -> CompanyRecord:
    """Linked Accounting + Deauthorized Commerce; invoices/bills/journals/commerce-orders
    Complete, ``items`` NotSupported, ``suppliers`` still Fetching."""
    company_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    statuses = {
        "invoices": "Complete",
        "bills": "Complete",
        "journals": "Complete",  # fetchOnFirstLink false in the default settings
        "items": "NotSupported",
        "suppliers": "Fetching",
        "commerce-orders": "Complete",  # served by the Deauthorized Commerce connection
    }
    data_status = {
        t: _entry(t, s, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{company_id}/{t}")))
        for t, s in statuses.items()
    }
    company = {
        "id": company_id,
        "name": name,
        "redirect": f"https://link.codat.io/company/{company_id}",
        "created": "2023-03-28T06:00:00.000Z",
        "lastSync": STAMP,
        "dataConnections": [
            _connection(company_id, "Accounting", "Linked"),
            _connection(company_id, "Commerce", "Deauthorized"),
        ],
    }
    if sync_settings is not None:
        sync_settings = {**sync_settings, "companyId": company_id}
    return CompanyRecord(company=company, data_status=data_status, sync_settings=sync_settings)


def _override(on: set[str], off: set[str]) -> dict[str, Any]:
    settings = copy.deepcopy(default_sync_settings()["settings"])
    for s in settings:
        if s["dataType"] in on:
            s["fetchOnFirstLink"] = True
        if s["dataType"] in off:
            s["fetchOnFirstLink"] = False
    return {"settings": settings, "overridesDefaults": True}


def _fleet() -> Fleet:
    plain = _company("Plain Ltd")
    own = _company("Own Settings Ltd", _override(on={"journals"}, off={"invoices"}))
    # A company whose settings say they do *not* override the defaults: the profile applies.
    ignored = _company(
        "Ignored Settings Ltd", {**_override(set(), {"bills"}), "overridesDefaults": False}
    )
    return Fleet([plain, own, ignored], default_sync_settings(), now=NOW)


def _queued_by_all(ex: Exchange, record: CompanyRecord) -> set[str]:
    """The data types a validated ``POST data/all`` queued (their latestSyncId changed)."""
    path = f"/companies/{record.id}"
    before = ex.check("GET", f"{path}/dataStatus", status=200).json()
    response = ex.check("POST", f"{path}/data/all", status=204)
    assert response.content == b""
    after = ex.check("GET", f"{path}/dataStatus", status=200).json()
    history = ex.check("GET", f"{path}/data/history", {"pageSize": 500}, status=200).json()
    queued = {
        t
        for t, e in after.items()
        if t not in before or e["latestSyncId"] != before[t]["latestSyncId"]
    }
    new_ops = {op["dataType"] for op in history["results"] if op["status"] == "Queued"}
    assert new_ops >= queued
    for t in queued:
        op_id = after[t]["latestSyncId"]
        op = ex.check("GET", f"{path}/data/history/{op_id}", status=200).json()
        assert op["dataType"] == t
        assert op["connectionId"] == record.connections[0]["id"]  # the Linked one
    return queued


def _expected(fetched: set[str]) -> set[str]:
    """Accounting types with fetchOnFirstLink, less the NotSupported and running ones."""
    accounting = {t for t in ALL_DATA_TYPES if source_type_of(t) == "Accounting"}
    return (accounting & fetched) - {"items", "suppliers"}


DEFAULT_FETCHED = set(ALL_DATA_TYPES) - set(NOT_FETCHED_ON_FIRST_LINK)


def test_data_all_queues_fetch_on_first_link_types_of_linked_connections(
    exchange: Callable[..., Exchange],
) -> None:
    fleet = _fleet()
    ex = exchange(fleet, sync_phase_seconds=3600.0, clock=lambda: NOW)
    plain = fleet.records[0]
    queued = _queued_by_all(ex, plain)
    assert queued == _expected(DEFAULT_FETCHED)
    assert {"invoices", "bills"} <= queued
    assert "journals" not in queued  # fetchOnFirstLink false
    assert "items" not in queued  # NotSupported by the platform
    assert "suppliers" not in queued  # still running
    assert not any(t.startswith("commerce-") for t in queued)  # Deauthorized connection
    # A type data/all leaves out is still queued on its own.
    op = ex.check("POST", f"/companies/{plain.id}/data/queue/journals", status=200).json()
    assert op["dataType"] == "journals"
    assert op["status"] == "Queued"


def test_data_all_follows_the_companys_own_settings(exchange: Callable[..., Exchange]) -> None:
    fleet = _fleet()
    ex = exchange(fleet, sync_phase_seconds=3600.0, clock=lambda: NOW)
    own, ignored = fleet.records[1], fleet.records[2]
    settings = ex.check("GET", f"/companies/{own.id}/syncSettings", status=200).json()
    assert settings["overridesDefaults"] is True
    queued = _queued_by_all(ex, own)
    assert queued == _expected((DEFAULT_FETCHED | {"journals"}) - {"invoices"})
    assert "journals" in queued
    assert "invoices" not in queued
    # overridesDefaults false: the profile's settings apply (bills is queued).
    assert _queued_by_all(ex, ignored) == _expected(DEFAULT_FETCHED)
