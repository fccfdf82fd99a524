"""Webhooks from the sandbox: what Codat would post, Svix-signed, as the fleet changes.

A :class:`WebhookEmitter` runs in the sandbox's own event loop. It keeps the last state it
saw of every company (each data type's latest sync id and status, each connection's status)
and, whenever sandbox time has moved (every ``webhook_poll_seconds`` of real time, or on
:meth:`SandboxServer.flush_webhooks`), walks the fleet forward in steps of at most
``webhook_step_minutes`` of sandbox time and turns what changed into Codat's events:

* ``read.completed`` (``read.completed.initial`` for a company's first read): one event per
  company and step, one ``dataTypes`` entry per data type whose sync finished in the step
  (``Complete``, or its error: ``FetchError``, ``AuthError``, ...), with ``recordsModified``
  and, on most completed reads of ``webhook_issue_rate`` of the company x data types (their
  data is doubtful until fixed, as a validation rule keeps tripping), a
  ``warning.validation`` issue whose ``logs`` link names the sync;
* ``connection.disconnected`` / ``connection.reconnected``: a connection whose status left or
  came back to ``Linked``, and the revoked-token churn of a generated fleet (a 1-4 day AuthError
  window on the accounting connection: disconnected at its start, reconnected at its end; the
  sandbox's API keeps that connection ``Linked`` with AuthError syncs, a simplification);
* ``client.rateLimit.reached`` when the daily quota is spent (from the middleware), and
  ``client.rateLimit.reset`` at the next sandbox midnight.

Delivery is Svix-like: each event is signed at each attempt (``webhook-id`` constant across
attempts, ``webhook-timestamp`` = the attempt's real time, so the listener's replay window
holds), retried on any non-2xx answer or connection error after the delays in
``webhook_retry_seconds``, at least once: ``webhook_duplicate_rate`` of the events are
delivered a second time after a success, so a consumer's de-duplication is exercised.
Scanning yields to the loop every few companies and delivery is asynchronous, so the API keeps
serving meanwhile. The webhook URL and secret never appear in a log line or a repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from auditor.constants import IN_PROGRESS_STATUSES, source_type_of
from auditor.listen.signing import signed_headers
from auditor.sandbox._fleet import CompanyRecord, format_timestamp
from auditor.sandbox._generate import GeneratedFleet
from auditor.sandbox._routes_data import current_data_status
from auditor.sandbox._shares import AUTH
from auditor.sandbox._trouble import windows
from auditor.sandbox._util import hash_unit, uid

if TYPE_CHECKING:
    from auditor.sandbox._state import SandboxState

__all__ = ["WebhookEmitter", "WebhookStats"]

log = logging.getLogger("auditor.sandbox.webhooks")

#: Statuses of a sync still running: no read has completed yet.
_RUNNING: Final[frozenset[str]] = frozenset(IN_PROGRESS_STATUSES) | {"Initial", ""}
_VALIDATION_MESSAGE: Final = (
    "Something doesn't look right about these {data_type}. "
    "You can see more information in the logs."
)
#: Companies whose records a worker thread builds at a time.
_CHUNK: Final = 32


@dataclass
class WebhookStats:
    """What the emitter did: events made (by type), deliveries and their outcomes."""

    events: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    duplicates_sent: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return sum(self.events.values())


@dataclass
class _View:
    """The last state the emitter saw of one company."""

    types: dict[str, tuple[str, str]]  # dataType -> (latestSyncId, currentStatus)
    connections: dict[str, str]  # connection id -> status
    read_once: bool


@dataclass
class _Event:
    webhook_id: str
    body: str
    attempt: int = 0
    duplicate: bool = False


def _build(
    fleet: GeneratedFleet, lo: int, n: int, at: datetime, fixes: list[dict[str, datetime]]
) -> list[tuple[CompanyRecord, list[tuple[int, int]]]]:
    """Records ``lo .. lo+n-1`` of ``fleet`` at ``at`` and their churn AuthError windows (run
    in a worker thread: functions of the fleet's read-only arrays; the one memo they write,
    the outage of a day, is deterministic and set with a single dict assignment)."""
    data = fleet.arrays
    minute = data.minute_of(at)
    out = []
    for k in range(n):
        i = lo + k
        auth = [
            (w.start, w.end)
            for w in windows(data, i, minute)
            if w.kind == AUTH and w.origin == "churn"
        ]
        out.append((fleet.record_at(i, at, fixes[k] or None), auth))
    return out


class WebhookEmitter:
    """Turns sandbox-time changes of the fleet into signed deliveries (see the module doc)."""

    def __init__(self, state: SandboxState, url: str, secret: str) -> None:
        self._state = state
        self._options = state.options
        self._url = url
        self._secret = secret
        self.stats = WebhookStats()
        self._views: dict[str, _View] = {}
        self._seen: datetime | None = None
        self._queue: deque[_Event] = deque()
        self._wakeup: asyncio.Event | None = None
        self._pending = 0
        self._idle: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._scan_lock: asyncio.Lock | None = None
        self._quota_reached_day: datetime | None = None
        self._quota_limit = 0
        self._serial = 0

    def __repr__(self) -> str:  # never the URL nor the secret
        return f"WebhookEmitter(events={self.stats.total}, delivered={self.stats.delivered})"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._scan_lock = asyncio.Lock()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        async with self._scan_lock:
            await self._baseline(self._state.now())
        workers = max(1, self._options.webhook_concurrency)
        self._tasks = [asyncio.create_task(self._deliver_forever()) for _ in range(workers)]
        self._tasks.append(asyncio.create_task(self._poll_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def flush(self, timeout: float) -> bool:
        """Scan up to sandbox now and wait until every event made so far was delivered (or
        gave up). False when ``timeout`` (real seconds) passed first."""
        await self.scan(self._state.now())
        assert self._idle is not None
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ scanning

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._options.webhook_poll_seconds)
            try:
                await self.scan(self._state.now())
            except Exception:  # a scan bug must not stop the sandbox serving
                log.exception("webhook scan failed")

    async def scan(self, now: datetime) -> None:
        """Emit the events of sandbox time ``(last scan, now]``, in bounded steps."""
        assert self._scan_lock is not None
        async with self._scan_lock:
            if self._seen is None:
                await self._baseline(now)
                return
            step = timedelta(minutes=self._options.webhook_step_minutes)
            while self._seen < now:
                upto = min(now, self._seen + step)
                await self._scan_step(self._seen, upto)
                self._seen = upto

    async def _baseline(self, now: datetime) -> None:
        async for company_id, record, _ in self._records(now):
            self._views[company_id] = self._view_of(record, now)
        self._seen = now

    async def _records(
        self, at: datetime
    ) -> AsyncIterator[tuple[str, CompanyRecord, list[tuple[int, int]]]]:
        """Every company's record at ``at`` with its churn AuthError windows (minutes).

        A generated fleet's records are built in a worker thread, a chunk at a time
        (``build_record`` is a pure function of the fleet's arrays), so that the event loop
        keeps serving the API meanwhile; the refresh overlay is read on the loop."""
        fleet = self._state.fleet
        ids = fleet.company_ids
        for lo in range(0, len(ids), _CHUNK):
            chunk = ids[lo : lo + _CHUNK]
            if isinstance(fleet, GeneratedFleet):
                fixes = [self._state.refresh.fixes(cid) for cid in chunk]
                built = await asyncio.to_thread(_build, fleet, lo, len(chunk), at, fixes)
                for cid, (record, auth) in zip(chunk, built, strict=True):
                    yield cid, record, auth
            else:
                for cid in chunk:
                    served = self._state.record(cid, at)
                    if served is not None:
                        yield cid, served, []
                await asyncio.sleep(0)

    def _view_of(self, record: CompanyRecord, now: datetime) -> _View:
        types: dict[str, tuple[str, str]] = {}
        if record.data_status_error is None:
            for data_type, entry in current_data_status(self._state, record, now).items():
                if isinstance(entry, dict):
                    types[str(data_type)] = (
                        str(entry.get("latestSyncId") or ""),
                        str(entry.get("currentStatus") or ""),
                    )
        conns = {str(c.get("id")): str(c.get("status")) for c in record.connections}
        read_once = any(status not in _RUNNING for _, status in types.values())
        return _View(types, conns, read_once)

    async def _scan_step(self, start: datetime, end: datetime) -> None:
        self._check_quota_reset(end)
        async for company_id, record, auth in self._records(end):
            view = self._view_of(record, end)
            before = self._views.get(company_id)
            self._views[company_id] = view
            if before is not None:
                self._read_events(record, before, view, end)
                self._connection_events(record, before, view, end)
            if auth:
                self._churn_auth_events(record, auth, start, end)

    def _read_events(
        self, record: CompanyRecord, before: _View, after: _View, at: datetime
    ) -> None:
        items: list[dict[str, Any]] = []
        for data_type, (sync_id, status) in after.types.items():
            if status in _RUNNING or status == "NotSupported":
                continue
            if before.types.get(data_type) == (sync_id, status):
                continue  # nothing new finished
            item: dict[str, Any] = {
                "connectionId": self._connection_for(record, data_type),
                "dataType": data_type,
                "recordsModified": status == "Complete"
                and hash_unit(self._options.seed, "modified", record.id, sync_id) < 0.7,
                "status": status,
                "issues": [],
            }
            # Doubtful data stays doubtful until fixed: a company x data type is doubtful
            # (``webhook_issue_rate`` of them) and most of its reads carry the warning.
            if (
                status == "Complete"
                and hash_unit(self._options.seed, "issue", record.id, data_type)
                < self._options.webhook_issue_rate
                and hash_unit(self._options.seed, "issue-read", record.id, sync_id) < 0.8
            ):
                item["issues"] = [self._validation_issue(record.id, data_type, sync_id)]
            items.append(item)
        if not items:
            return
        event_type = "read.completed" if before.read_once else "read.completed.initial"
        payload = {
            "referenceCompany": self._company_reference(record),
            "modifiedFromDate": format_timestamp(at),
            "dataTypes": items,
        }
        self._emit(event_type, at, payload, record.id, at.isoformat())

    def _connection_events(
        self, record: CompanyRecord, before: _View, after: _View, at: datetime
    ) -> None:
        for conn in record.connections:
            conn_id = str(conn.get("id"))
            old, new = before.connections.get(conn_id), after.connections.get(conn_id)
            if old is None or old == new:
                continue
            if old == "Linked" and new in ("Deauthorized", "Unlinked"):
                event_type = "connection.disconnected"
            elif new == "Linked" and old in ("Deauthorized", "Unlinked"):
                event_type = "connection.reconnected"
            elif new == "Linked" and old == "PendingAuth":
                event_type = "connection.connected"
            else:
                continue
            payload = {"referenceCompany": self._company_reference(record), "connection": conn}
            self._emit(event_type, at, payload, record.id, conn_id, new)

    def _churn_auth_events(
        self, record: CompanyRecord, auth: list[tuple[int, int]], start: datetime, end: datetime
    ) -> None:
        """A revoked token of the churn: disconnected at the window's start, reconnected at
        its end (both inside ``(start, end]``)."""
        t0 = self._state.fleet.now
        assert t0 is not None
        a = int((start - t0).total_seconds() // 60)
        b = int((end - t0).total_seconds() // 60)
        accounting = next(
            (c for c in record.connections if c.get("sourceType") == "Accounting"
             and c.get("status") == "Linked"), None,
        )  # fmt: skip
        if accounting is None:
            return
        for w_start, w_end in auth:
            for minute, event_type, status in (
                (w_start, "connection.disconnected", "Deauthorized"),
                (w_end, "connection.reconnected", "Linked"),
            ):
                if a < minute <= b:
                    at = t0 + timedelta(minutes=minute)
                    conn = dict(accounting)
                    conn["status"] = status
                    if status == "Deauthorized":
                        conn["dataConnectionErrors"] = [
                            {
                                "statusCode": "401",
                                "statusText": "Unauthorized",
                                "errorMessage": "The access token was revoked.",
                                "erroredOnUtc": format_timestamp(at),
                                "status": "Active",
                            }
                        ]
                    else:
                        conn.pop("dataConnectionErrors", None)
                    payload = {
                        "referenceCompany": self._company_reference(record),
                        "connection": conn,
                    }
                    self._emit(event_type, at, payload, record.id, conn["id"], minute)

    # ------------------------------------------------------------------ rate limits

    def quota_reached(self, limit: int, resets: datetime) -> None:
        """The daily quota was just spent (called by the middleware, once per sandbox day)."""
        day = resets - timedelta(days=1)
        if self._quota_reached_day == day:
            return
        self._quota_reached_day, self._quota_limit = day, limit
        now = self._state.now()
        payload = {
            "dailyQuota": limit,
            "quotaRemaining": 0,
            "expiryDate": format_timestamp(resets),
        }
        self._emit("client.rateLimit.reached", now, payload, "quota", day.isoformat())

    def _check_quota_reset(self, now: datetime) -> None:
        day = self._quota_reached_day
        if day is None or now < day + timedelta(days=1):
            return
        resets = day + timedelta(days=1)
        self._quota_reached_day = None
        payload = {
            "dailyQuota": self._quota_limit,
            "quotaRemaining": self._quota_limit,
            "expiryDate": format_timestamp(resets + timedelta(days=1)),
        }
        self._emit("client.rateLimit.reset", resets, payload, "quota-reset", resets.isoformat())

    # ------------------------------------------------------------------ events

    def _connection_for(self, record: CompanyRecord, data_type: str) -> str:
        source = source_type_of(data_type)
        conns = [c for c in record.connections if c.get("sourceType") == source] or list(
            record.connections
        )
        linked = [c for c in conns if c.get("status") == "Linked"]
        chosen = (linked or conns or [{"id": uid(self._options.seed, "no-connection")}])[0]
        return str(chosen.get("id"))

    @staticmethod
    def _company_reference(record: CompanyRecord) -> dict[str, Any]:
        company = record.company
        ref: dict[str, Any] = {
            "id": record.id,
            "name": str(company.get("name") or ""),
            "links": {"portal": f"https://app.codat.io/companies/{record.id}/summary"},
        }
        if company.get("description"):
            ref["description"] = company["description"]
        if isinstance(company.get("tags"), dict):
            ref["tags"] = company["tags"]
        return ref

    @staticmethod
    def _validation_issue(company_id: str, data_type: str, sync_id: str) -> dict[str, Any]:
        return {
            "type": "warning.validation",
            "message": _VALIDATION_MESSAGE.format(data_type=data_type),
            "links": {
                "logs": f"https://api.codat.io/companies/{company_id}/sync/{sync_id}/validation",
                "portal": f"https://app.codat.io/companies/{company_id}/pull-history",
                "readMore": "https://docs.codat.io/using-the-api/get-data-troubleshooting"
                "#warning.validation",
            },
        }

    def _emit(
        self, event_type: str, at: datetime, payload: dict[str, Any], *key: object
    ) -> None:
        self._serial += 1
        seed = self._options.seed
        event_id = uid(seed, "event", event_type, *key, self._serial)
        body = json.dumps(
            {
                "id": event_id,
                "eventType": event_type,
                "generatedDate": format_timestamp(at.astimezone(UTC)),
                "payload": payload,
            },
            separators=(",", ":"),
        )
        self.stats.events[event_type] = self.stats.events.get(event_type, 0) + 1
        self._enqueue(_Event("msg_" + event_id.replace("-", ""), body))

    def _enqueue(self, event: _Event) -> None:
        assert self._wakeup is not None
        assert self._idle is not None
        self._queue.append(event)
        self._pending += 1
        self._idle.clear()
        self._wakeup.set()

    def _done(self) -> None:
        assert self._idle is not None
        self._pending -= 1
        if self._pending == 0:
            self._idle.set()

    # ------------------------------------------------------------------ delivery

    async def _deliver_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event = self._queue.popleft()
            try:
                await self._deliver(event)
            finally:
                self._done()

    async def _deliver(self, event: _Event) -> None:
        delays = self._options.webhook_retry_seconds
        while True:
            if event.attempt > 0:
                await asyncio.sleep(delays[min(event.attempt, len(delays)) - 1])
                self.stats.retried += 1
            event.attempt += 1
            if await self._post(event):
                break
            if event.attempt > len(delays):
                self.stats.failed += 1
                log.warning(
                    "webhook %s not delivered after %d attempts; given up",
                    event.webhook_id,
                    event.attempt,
                )
                return
        if event.duplicate:
            self.stats.duplicates_sent += 1
            return
        self.stats.delivered += 1
        if hash_unit(self._options.seed, "dup", event.webhook_id) < (
            self._options.webhook_duplicate_rate
        ):
            again = _Event(event.webhook_id, event.body, duplicate=True)
            self._enqueue(again)  # at least once: the same id, delivered again

    async def _post(self, event: _Event) -> bool:
        assert self._session is not None
        self.stats.attempts += 1
        headers = signed_headers(self._secret, event.webhook_id, event.body)
        try:
            async with self._session.post(
                self._url, data=event.body.encode(), headers=headers
            ) as response:
                await response.read()
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

