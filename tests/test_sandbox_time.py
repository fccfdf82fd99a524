"""The generated fleet over sandbox time: scheduled syncs, churn, outages, refreshes."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from auditor.constants import ERROR_STATUSES, IN_PROGRESS_STATUSES
from auditor.sandbox import (
    CompanyRecord,
    Fleet,
    SandboxServer,
    default_sync_settings,
    generate_fleet,
)

NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SETTINGS = default_sync_settings()
DAILY = {s["dataType"]: s["syncSchedule"] == 24 for s in SETTINGS["settings"]}

Start = Callable[..., SandboxServer]


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def http() -> Iterator[Callable[[SandboxServer], httpx.Client]]:
    made: list[httpx.Client] = []

    def make(server: SandboxServer) -> httpx.Client:
        key = base64.b64encode(server.api_key.encode()).decode()
        c = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Basic {key}"}, timeout=10
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _troubled(record: CompanyRecord, at: datetime) -> bool:
    """Whether a company has an error-level problem at ``at`` (the audit's main rules)."""
    if record.data_status_error is not None:
        return True
    conns = record.connections
    for c in conns:
        superseded = any(  # a newer Linked connection of its source type: no relink needed
            o["status"] == "Linked"
            and o["sourceType"] == c["sourceType"]
            and _time(o["created"]) > _time(c["created"])
            for o in conns
        )
        if c["status"] == "Deauthorized" and not superseded:
            return True
    ops = {op["id"]: op for op in record.pull_operations}
    settings = (record.sync_settings or SETTINGS)["settings"]
    schedule = {s["dataType"]: float(s["syncSchedule"]) for s in settings}
    for data_type, entry in record.data_status.items():
        status = entry["currentStatus"]
        if status in ERROR_STATUSES:
            return True
        requested = ops[entry["latestSyncId"]]["requested"]
        if status in IN_PROGRESS_STATUSES and at - _time(requested) > DAY:
            return True
        last = entry.get("lastSuccessfulSync")
        if last and at - _time(last) > timedelta(hours=4 * schedule[data_type]):
            return True
    return False


def test_the_same_fleet_at_the_same_time_is_byte_identical() -> None:
    a = generate_fleet(80, seed=5, now=NOW)
    b = generate_fleet(80, seed=5, now=NOW)
    for days in (0, 1, 3.5, 9):
        at = NOW + timedelta(days=days)
        for i in range(0, 80, 7):
            assert json.dumps(a.record_at(i, at).to_json()) == json.dumps(
                b.record_at(i, at).to_json()
            )
    assert a.record_at(0, NOW).to_json() == a.records[0].to_json()
    assert a.outages(NOW, NOW + 90 * DAY) == b.outages(NOW, NOW + 90 * DAY)
    other = generate_fleet(80, seed=6, now=NOW)
    assert other.outages(NOW, NOW + 90 * DAY) != a.outages(NOW, NOW + 90 * DAY)


def test_the_state_only_changes_from_minute_to_minute() -> None:
    fleet = generate_fleet(30, seed=2, now=NOW)
    at = NOW + timedelta(days=2, hours=3, minutes=17)
    for i in range(30):
        early, late = fleet.record_at(i, at), fleet.record_at(i, at + timedelta(seconds=59))
        assert early == late
    assert fleet.minute_of(at + timedelta(seconds=59)) == fleet.minute_of(at)


def test_healthy_types_are_synced_on_schedule_as_the_clock_moves(
    sandbox_server: Start, http: Callable[[SandboxServer], httpx.Client]
) -> None:
    clock = Clock(NOW)
    fleet = generate_fleet(120, seed=1, now=NOW)
    server = sandbox_server(fleet, clock=clock)
    c = http(server)
    healthy = [
        company_id
        for i, company_id in enumerate(fleet.company_ids)
        if not any(_troubled(fleet.record_at(i, NOW + k * DAY), NOW + k * DAY) for k in (0, 1))
    ]
    assert len(healthy) > 60
    before = {cid: c.get(f"/companies/{cid}/dataStatus").json() for cid in healthy[:20]}
    clock.now = NOW + DAY
    moved = 0
    for company_id, old in before.items():
        new = c.get(f"/companies/{company_id}/dataStatus").json()
        settings = c.get(f"/companies/{company_id}/syncSettings").json()["settings"]
        schedule = {s["dataType"]: s["syncSchedule"] for s in settings}
        for data_type, entry in new.items():
            if entry["currentStatus"] != "Complete" or data_type not in old:
                continue
            age = clock.now - _time(entry["lastSuccessfulSync"])
            assert age <= timedelta(hours=schedule[data_type], minutes=15), (data_type, age)
            if schedule[data_type] <= 24 and old[data_type]["currentStatus"] == "Complete":
                assert entry["latestSyncId"] != old[data_type]["latestSyncId"]
                assert _time(entry["lastSuccessfulSync"]) > _time(
                    old[data_type]["lastSuccessfulSync"]
                )
                moved += 1
        history = c.get(f"/companies/{company_id}/data/history", params={"pageSize": 500})
        ids = {op["id"] for op in history.json()["results"]}
        assert {e["latestSyncId"] for e in new.values()} <= ids
    assert moved > 200


def test_troubled_types_stay_troubled_and_age(sandbox_server: Start) -> None:
    fleet = generate_fleet(300, seed=1, now=NOW)
    deauth = next(
        i
        for i, r in enumerate(fleet.records)
        if r.data_status_error is None and any(x["status"] == "Deauthorized" for x in r.connections)
    )
    before = fleet.record_at(deauth, NOW).data_status
    after = fleet.record_at(deauth, NOW + 3 * DAY).data_status
    auth = [t for t, e in before.items() if e["currentStatus"] == "AuthError"]
    assert auth
    for data_type in auth:
        assert after[data_type]["currentStatus"] == "AuthError"
        assert after[data_type].get("lastSuccessfulSync") == before[data_type].get(
            "lastSuccessfulSync"
        )


def test_fleet_files_do_not_evolve(
    sandbox_server: Start, small_fleet: Fleet, http: Callable[[SandboxServer], httpx.Client]
) -> None:
    clock = Clock(NOW)
    server = sandbox_server(small_fleet, clock=clock)
    c = http(server)
    ids = small_fleet.company_ids
    first = [c.get(f"/companies/{cid}/dataStatus").text for cid in ids]
    clock.now = NOW + 5 * DAY
    assert [c.get(f"/companies/{cid}/dataStatus").text for cid in ids] == first


def test_churn_is_present_but_bounded() -> None:
    n = 500
    fleet = generate_fleet(n, seed=4, now=NOW)
    nights = [NOW + k * DAY for k in range(10)]
    outage_days = {o.day for o in fleet.outages(NOW - DAY, nights[-1] + DAY)}
    flagged: list[set[int]] = []
    failing: list[set[tuple[int, str]]] = []
    for at in nights:
        troubled, errors = set(), set()
        for i in range(n):
            record = fleet.record_at(i, at)
            if _troubled(record, at):
                troubled.add(i)
            for data_type, entry in record.data_status.items():
                if entry["currentStatus"] in ERROR_STATUSES:
                    errors.add((i, data_type))
        flagged.append(troubled)
        failing.append(errors)
    for k, troubled in enumerate(flagged):
        share = len(troubled) / n
        limit = 0.22 if k in outage_days or k - 1 in outage_days else 0.16
        assert 0.05 <= share <= limit, (k, share)
    new = [len(b - a) for a, b in itertools.pairwise(flagged)]
    gone = [len(a - b) for a, b in itertools.pairwise(flagged)]
    assert sum(new) > 10
    assert sum(gone) > 10
    quiet = [m for k, m in enumerate(new, start=1) if k not in outage_days]
    assert max(quiet) <= 0.06 * n  # ... a few percent a night
    relapsed = {
        key
        for a, b, c in zip(failing, failing[1:], failing[2:], strict=False)
        for key in (a - b) & c
    } | {
        key
        for a, b, c, d in zip(failing, failing[1:], failing[2:], failing[3:], strict=False)
        for key in (a - b - c) & d
    }
    assert relapsed, "no data type failed, recovered and failed again"


def test_provider_outages_hit_many_companies_of_one_platform() -> None:
    fleet = generate_fleet(400, seed=1, now=NOW)
    outages = fleet.outages(NOW, NOW + 60 * DAY)
    assert 3 <= len(outages) <= 15  # about one day in eight
    outage = outages[0]
    on_platform = [
        i
        for i, r in enumerate(fleet.records)
        if any(
            c["platformName"] == outage.platform and c["status"] == "Linked" for c in r.connections
        )
    ]

    def failing(at: datetime) -> int:
        return sum(
            1
            for i in on_platform
            if fleet.record_at(i, at).data_status.get(outage.data_type, {}).get("currentStatus")
            == outage.status
        )

    during = failing(outage.end - timedelta(minutes=1))
    assert during >= 0.1 * len(on_platform), (during, len(on_platform), outage)
    assert failing(outage.start - timedelta(hours=1)) <= 0.3 * during
    assert failing(outage.end + DAY + timedelta(minutes=30)) <= 0.3 * during


def test_refresh_fixes_what_a_sync_can_fix(
    sandbox_server: Start, http: Callable[[SandboxServer], httpx.Client]
) -> None:
    clock = Clock(NOW)
    fleet = generate_fleet(500, seed=1, now=NOW)
    server = sandbox_server(fleet, clock=clock, sync_phase_seconds=10)
    c = http(server)
    stale = [
        (i, t)
        for i, r in enumerate(fleet.records)
        if r.data_status_error is None and all(x["status"] == "Linked" for x in r.connections)
        for t, e in r.data_status.items()
        if e["currentStatus"] == "Complete"
        and NOW - _time(e["lastSuccessfulSync"]) > timedelta(days=5)
        and fleet.refresh_outcome(i, t, NOW) == "Complete"
        and not t.startswith(("banking-", "commerce-"))
    ]
    stale = [(i, t) for i, t in stale if DAILY[t]]
    index = max({i for i, _ in stale}, key=lambda i: sum(j == i for j, _ in stale))
    data_type, other = [t for j, t in stale if j == index][:2]  # a company lagging for days
    company_id = fleet.company_ids[index]
    op = c.post(f"/companies/{company_id}/data/queue/{data_type}").json()
    clock.now = NOW + timedelta(minutes=2)
    entry = c.get(f"/companies/{company_id}/dataStatus").json()[data_type]
    assert entry["currentStatus"] == "Complete"
    assert entry["latestSuccessfulSyncId"] == op["id"]
    clock.now = NOW + 3 * DAY  # the type follows its schedule again; the others still lag
    status = c.get(f"/companies/{company_id}/dataStatus").json()
    assert clock.now - _time(status[data_type]["lastSuccessfulSync"]) <= timedelta(hours=25)
    assert status[data_type]["latestSyncId"] != op["id"]
    assert clock.now - _time(status[other]["lastSuccessfulSync"]) > timedelta(days=7)
    history = c.get(f"/companies/{company_id}/data/history").json()["results"]
    requested = [h["requested"] for h in history]
    assert requested == sorted(requested, reverse=True)
    assert op["id"] in {h["id"] for h in history}


def test_refresh_does_not_fix_what_a_sync_cannot_fix(
    sandbox_server: Start, http: Callable[[SandboxServer], httpx.Client]
) -> None:
    clock = Clock(NOW)
    fleet = generate_fleet(500, seed=1, now=NOW)
    server = sandbox_server(fleet, clock=clock, sync_phase_seconds=10)
    c = http(server)
    persistent = next(
        (i, t, e["currentStatus"])
        for i, r in enumerate(fleet.records)
        if r.data_status_error is None and all(x["status"] == "Linked" for x in r.connections)
        for t, e in r.data_status.items()
        if e["currentStatus"] in ("MapError", "ValidationError", "PermissionsError")
    )
    index, data_type, error = persistent
    assert fleet.refresh_outcome(index, data_type, NOW) == error
    company_id = fleet.company_ids[index]
    op = c.post(f"/companies/{company_id}/data/queue/{data_type}").json()
    clock.now = NOW + timedelta(minutes=2)
    entry = c.get(f"/companies/{company_id}/dataStatus").json()[data_type]
    assert entry["currentStatus"] == error
    assert entry["latestSyncId"] == op["id"]
    assert entry.get("latestSuccessfulSyncId") != op["id"]
    # a connector that is offline: the sync stays queued for good
    offline = next(
        (i, t)
        for i, r in enumerate(fleet.records)
        if r.data_status_error is None
        for t, e in r.data_status.items()
        if e["currentStatus"] in IN_PROGRESS_STATUSES
        and fleet.refresh_outcome(i, t, NOW) == "Queued"
    )
    assert offline
