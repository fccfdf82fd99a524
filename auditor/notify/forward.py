"""Intraday forwarding: selected webhook events sent at once by ``auditor listen``.

``[[notify.forward]]`` routes (:class:`~auditor.notify_settings.ForwardRoute`) pick events by
``eventType`` and by the company's ``tags`` / connection's ``platforms`` (the filters of every
route), and send one short message per event to Slack, Teams, a JSON webhook or email::

    Bank of Dave (tier gold) disconnected (Deauthorized) at 14:02 UTC — relink: <link>

Off the acknowledgement path, always: the listener calls :meth:`Forwarder.offer` only once an
event is durable in the event log and new (``stored``, never ``duplicate``: a redelivered
``webhook-id`` is not forwarded twice). ``offer`` only checks the event type and puts the event
in a bounded :class:`asyncio.Queue` (``put_nowait``); a full queue drops the event, counted
(``codat_forward_dropped_total``) and logged. One background task serves the queue: it looks
the company up, applies the routes' filters and sends each message with the retrying senders
of :mod:`._send` (Slack/Teams/webhook) and :func:`auditor.report.send_digest` (email), in
worker threads, so neither a slow receiver nor a retry ever holds the event loop.

Company tags, name, platform and relink link: from the event itself when it carries them
(``payload.referenceCompany.tags`` / ``.name``, ``payload.connection.platformName`` /
``.linkUrl``), else from the **latest complete snapshot** in the store (the ``companies``
frame: ``company_tags``, ``company_name``, ``platform``, ``link_url``), loaded in a thread at
start and re-read when a new snapshot lands (checked every ``forward_refresh_seconds``). A link
is shown only when :func:`auditor.links.safe_links` keeps it (https, a Codat host).

Hostile text is inert: every value from the payload is flattened to one bounded line and
escaped for its channel (Slack's and Teams' escapes); the webhook body carries it as data.
URLs are secrets (registered before use, never logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

import httpx
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge

from auditor.email_settings import EmailSettings, SmtpSettings
from auditor.links import DEFAULT_LINK_HOSTS, safe_links
from auditor.logs import redact
from auditor.notify_settings import ForwardRoute, NotifySettings
from auditor.report import DigestSendError, send_digest
from auditor.report._env import format_local
from auditor.safe_text import DISPLAY_LIMITS
from auditor.store import SnapshotNotFoundError, StoreError, load_snapshot, select_snapshot

from ._content import flat
from ._send import NotifyError, encode_body, post_json
from .slack import escape as slack_escape
from .teams import CARD_CONTENT_TYPE, CARD_VERSION
from .teams import escape as teams_escape

__all__ = [
    "CompanyDirectory",
    "ForwardMessage",
    "Forwarder",
    "describe_event",
    "forward_payload",
]

log = logging.getLogger("auditor.forward")

#: How an event type reads in a message ("Acme disconnected at 14:02").
_VERBS: Final[dict[str, str]] = {
    "connection.disconnected": "disconnected",
    "connection.reconnected": "reconnected",
    "connection.failed": "failed to link",
    "connection.deleted": "connection deleted",
    "connection.connected": "connected",
    "connection.created": "connection created",
    "read.completed": "sync completed",
    "read.completed.initial": "first sync completed",
    "client.rateLimit.reached": "rate limit reached",
    "client.rateLimit.reset": "rate limit reset",
}
#: Event types whose message offers the relink link.
_RELINK: Final = frozenset({"connection.disconnected", "connection.failed"})
#: webhook-ids remembered to refuse a second forward (belt and braces: the event log de-dups).
_SEEN_IDS: Final = 100_000
#: Seconds between two "queue full" warnings (each drop is counted).
_DROP_LOG_INTERVAL: Final = 10.0


class _Stopping(Exception):
    """The listener is stopping: a retry's wait is cut short."""


@dataclass(frozen=True)
class _Company:
    name: str | None
    tags: dict[str, Any] | None
    #: connection id -> (platform, link_url)
    connections: dict[str, tuple[str | None, str | None]]


class CompanyDirectory:
    """Company names, tags and connection links from the latest complete snapshot of a store.

    :meth:`refresh` (blocking: call it in a thread) reloads only when the latest snapshot's id
    changed; a store without a snapshot is an empty directory, a snapshot that cannot be read
    keeps the previous one (both logged)."""

    def __init__(self, store: Path | str) -> None:
        self.store = Path(store)
        self.snapshot_id: str | None = None
        self._companies: dict[str, _Company] = {}
        self._missing_logged = False

    def __len__(self) -> int:
        return len(self._companies)

    def get(self, company_id: str | None) -> _Company | None:
        return self._companies.get(company_id) if company_id else None

    def refresh(self) -> bool:
        """Reload when a new snapshot landed; whether it did."""
        try:
            latest = select_snapshot(self.store).snapshot_id
        except SnapshotNotFoundError:
            if not self._missing_logged:
                log.info("forward: no snapshot in the store yet: company tags only from events")
                self._missing_logged = True
            return False
        except (OSError, StoreError, ValueError) as exc:
            log.warning("forward: cannot list the snapshots (%s); keeping %s", exc,
                        self.snapshot_id or "no directory")  # fmt: skip
            return False
        if latest == self.snapshot_id:
            return False
        try:
            frame = load_snapshot(self.store, latest, frames=["companies"]).companies
        except (OSError, StoreError, ValueError, SnapshotNotFoundError) as exc:
            log.warning("forward: cannot read snapshot %s (%s); keeping %s", latest, exc,
                        self.snapshot_id or "no directory")  # fmt: skip
            return False
        self._companies = self._build(frame)
        self.snapshot_id = latest
        log.info("forward: company directory from snapshot %s (%d companies)", latest,
                 len(self._companies))  # fmt: skip
        return True

    @staticmethod
    def _build(frame: pd.DataFrame) -> dict[str, _Company]:
        out: dict[str, _Company] = {}
        if frame.empty:
            return out
        cols = ["company_id", "company_name", "company_tags", "connection_id", "platform",
                "link_url"]  # fmt: skip
        frame = frame.reindex(columns=cols)
        frame = frame.assign(link_url=safe_links(frame["link_url"].astype("string")))
        for rec in frame.astype("object").where(frame.notna(), None).to_dict("records"):
            company_id = rec["company_id"]
            if not company_id:
                continue
            company = out.get(str(company_id))
            if company is None:
                tags = None
                if rec["company_tags"]:
                    with contextlib.suppress(ValueError):
                        parsed = json.loads(str(rec["company_tags"]))
                        tags = parsed if isinstance(parsed, dict) else None
                company = _Company(rec["company_name"] and str(rec["company_name"]), tags, {})
                out[str(company_id)] = company
            if rec["connection_id"]:
                company.connections[str(rec["connection_id"])] = (
                    None if rec["platform"] is None else str(rec["platform"]),
                    None if rec["link_url"] is None else str(rec["link_url"]),
                )
        return out


@dataclass(frozen=True)
class ForwardMessage:
    """What one forwarded event says, channel-neutral; every text one bounded line."""

    webhook_id: str
    event_type: str
    codat_event_id: str | None
    company_id: str | None
    company_name: str | None
    platform: str | None
    connection_id: str | None
    status: str | None
    at: datetime
    #: The company's tags as used for routing (from the event, else the snapshot).
    tags: dict[str, str] = field(default_factory=dict)
    #: A safe https Codat link to relink the connection, else None.
    link_url: str | None = None
    #: The matching route's name and its tag values ("tier gold"), for the text.
    route: str = ""
    tag_label: str = ""
    display_tz: str = "UTC"

    @property
    def who(self) -> str:
        return self.company_name or self.company_id or "Codat"

    def text(self) -> str:
        """``Bank of Dave (tier gold) disconnected (Deauthorized) at 14:02 UTC`` (no link)."""
        verb = _VERBS.get(self.event_type, f"event {self.event_type}")
        label = f" ({self.tag_label})" if self.tag_label else ""
        status = f" ({self.status})" if self.status else ""
        on = f" on {self.platform}" if self.platform else ""
        when = format_local(self.at, self.display_tz, "%H:%M")
        return f"{self.who}{label}{on} {verb}{status} at {when}"

    @property
    def relink(self) -> bool:
        return self.event_type in _RELINK


def _text_of(value: object, limit: int) -> str | None:
    return flat(value, limit) or None if isinstance(value, str | int | float) else None


def _dig(node: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _when(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = pd.Timestamp(value)
            if parsed.tzinfo is not None and pd.notna(parsed):
                return parsed.to_pydatetime().astimezone(UTC)
    return fallback


def describe_event(
    webhook_id: str,
    received_at: datetime,
    event: Mapping[str, Any],
    directory: CompanyDirectory | None = None,
    *,
    link_hosts: Sequence[str] = DEFAULT_LINK_HOSTS,
) -> ForwardMessage:
    """The facts of one event: the payload's first, the snapshot's for what it lacks."""
    payload = event.get("payload")
    company_id = _text_of(
        _dig(payload, "referenceCompany", "id") or _dig(payload, "companyId"), DISPLAY_LIMITS["id"]
    )
    connection = _dig(payload, "connection")
    connection_id = _text_of(_dig(connection, "id") or _dig(payload, "connectionId"),
                             DISPLAY_LIMITS["id"])  # fmt: skip
    known = directory.get(company_id) if directory is not None else None
    snap_platform, snap_link = (None, None)
    if known is not None and connection_id:
        snap_platform, snap_link = known.connections.get(connection_id, (None, None))
    raw_tags = _dig(payload, "referenceCompany", "tags")
    tags_src = raw_tags if isinstance(raw_tags, Mapping) else (known.tags if known else None)
    tags = {str(k): v for k, v in (tags_src or {}).items() if isinstance(v, str)}
    link = _dig(connection, "linkUrl")
    candidates = [v for v in (link if isinstance(link, str) else None, snap_link) if v]
    safe = safe_links(pd.Series(candidates, dtype="string"), link_hosts).dropna()
    name = _dig(payload, "referenceCompany", "name")
    platform = _dig(connection, "platformName")
    return ForwardMessage(
        webhook_id=flat(webhook_id, DISPLAY_LIMITS["id"]),
        event_type=flat(event.get("eventType"), 120),
        codat_event_id=_text_of(event.get("id"), DISPLAY_LIMITS["id"]),
        company_id=company_id,
        company_name=_text_of(name, DISPLAY_LIMITS["company_name"])
        or (flat(known.name, DISPLAY_LIMITS["company_name"]) or None if known else None),
        platform=_text_of(platform, DISPLAY_LIMITS["platform"])
        or (flat(snap_platform, DISPLAY_LIMITS["platform"]) or None),
        connection_id=connection_id,
        status=_text_of(
            _dig(connection, "status") or _dig(payload, "status"), DISPLAY_LIMITS["status"]
        ),
        at=_when(event.get("generatedDate"), received_at),
        tags=tags,
        link_url=str(safe.iloc[0]) if len(safe) else None,
    )


def route_matches(route: ForwardRoute, note: ForwardMessage) -> bool:
    """Whether ``route`` forwards ``note``: its event type, then (when given) every tag key
    with one of its values, and the platform — the same meaning as the routes' filters
    (:mod:`auditor.routing`): an event without a company or tags never matches ``tags``."""
    if not route.wants(note.event_type):
        return False
    if route.platforms is not None and note.platform not in route.platforms:
        return False
    if route.tags is not None:
        for key, allowed in route.tags.items():
            values = [allowed] if isinstance(allowed, str) else allowed
            if note.tags.get(key) not in values:
                return False
    return True


def _tag_label(route: ForwardRoute, note: ForwardMessage) -> str:
    if not route.tags:
        return ""
    return ", ".join(f"{k} {flat(note.tags.get(k), 60)}" for k in sorted(route.tags))


def _pipe_safe(url: str) -> str:
    return url.replace("|", "%7C")


def forward_payload(channel: str, note: ForwardMessage) -> dict[str, Any]:
    """The JSON body of one forwarded event for ``channel`` (slack, teams or webhook)."""
    text = note.text()
    if channel == "slack":
        line = slack_escape(text)
        if note.relink:
            line += (f" — relink: <{_pipe_safe(note.link_url)}|relink link>" if note.link_url
                     else " — no usable relink link")  # fmt: skip
        return {
            "text": line,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line,
                                                    "verbatim": True}}],
            "unfurl_links": False,
        }  # fmt: skip
    if channel == "teams":
        body = [{"type": "TextBlock", "text": teams_escape(text), "wrap": True}]
        if note.relink and not note.link_url:
            body.append({"type": "TextBlock", "text": "No usable relink link.", "wrap": True,
                         "isSubtle": True})  # fmt: skip
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "body": body,
        }
        if note.relink and note.link_url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Relink",
                                "url": note.link_url}]  # fmt: skip
        return {"type": "message", "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}]}  # fmt: skip
    data = asdict(note)
    data.pop("display_tz")
    data["at"] = note.at.isoformat().replace("+00:00", "Z")
    return {"schema": "codat-freshness-auditor/event", "schema_version": 1, "text": text, **data}


def _email(note: ForwardMessage, to: Sequence[str], sender: str, prefix: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"{prefix} {note.text()}".strip()[:250]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    lines = [note.text() + "."]
    if note.relink:
        lines.append(f"Relink: {note.link_url}" if note.link_url else "No usable relink link.")
    lines += ["", f"Event: {note.event_type} ({note.webhook_id})",
              f"Company: {note.company_id or '—'}", f"Route: {note.route}"]  # fmt: skip
    msg.set_content("\n".join(lines) + "\n")
    return msg


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry or CollectorRegistry()
        self.queued = Counter("codat_forward_queued", "Events queued for forwarding.", registry=r)
        self.dropped = Counter(
            "codat_forward_dropped", "Events not forwarded: queue full or stopping.", ["reason"],
            registry=r,
        )
        for reason in ("queue_full", "stopping"):
            self.dropped.labels(reason)
        self.unmatched = Counter(
            "codat_forward_unmatched", "Queued events no route's filters matched.", registry=r
        )
        self.sent = Counter("codat_forward_sent", "Messages sent, by channel.", ["channel"],
                            registry=r)  # fmt: skip
        self.failed = Counter(
            "codat_forward_failed", "Messages not delivered, by channel.", ["channel"], registry=r
        )
        for channel in ("slack", "teams", "webhook", "email"):
            self.sent.labels(channel)
            self.failed.labels(channel)
        self.depth = Gauge("codat_forward_queue_depth", "Events waiting to be forwarded.",
                           registry=r)  # fmt: skip


class Forwarder:
    """The intraday forwarder behind ``auditor listen`` (an ``EventSink`` of the listener)."""

    def __init__(
        self,
        settings: NotifySettings,
        store: Path | str,
        *,
        email: EmailSettings | None = None,
        smtp: SmtpSettings | None = None,
        display_tz: str = "UTC",
        link_hosts: Sequence[str] = DEFAULT_LINK_HOSTS,
        env: Mapping[str, str] | None = None,
        drain_seconds: float = 5.0,
    ) -> None:
        self.settings = settings
        self.routes = list(settings.forward) if settings.enabled else []
        self.directory = CompanyDirectory(store)
        self.email = email or EmailSettings()
        self.smtp = smtp
        self.display_tz = display_tz
        self.link_hosts = tuple(link_hosts)
        self._env = env
        self.drain_seconds = drain_seconds
        self.counts = {"queued": 0, "dropped": 0, "unmatched": 0, "sent": 0, "failed": 0}
        self.metrics = _Metrics(None)
        self._queue: asyncio.Queue[tuple[str, datetime, dict[str, Any]]] = asyncio.Queue(
            settings.forward_queue
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closing = False
        self._checked = -float("inf")
        self._last_drop_log = -float("inf")
        self._drops_unlogged = 0
        #: Called with each sent or failed message (channel, target label, error or None).
        self.on_outcome: Callable[[str, str, str | None], None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.routes)

    def wants(self, event_type: object) -> bool:
        return isinstance(event_type, str) and any(r.wants(event_type) for r in self.routes)

    # ------------------------------------------------------------------ the ack path

    def offer(self, webhook_id: str, received_at: datetime, event: dict[str, Any]) -> None:
        """Queue a newly stored event if a route may want it. Never blocks, never raises."""
        if not self.wants(event.get("eventType")):
            return
        if self._closing or self._task is None:
            self._drop("stopping", webhook_id)
            return
        if webhook_id in self._seen:
            return
        try:
            self._queue.put_nowait((webhook_id, received_at, event))
        except asyncio.QueueFull:
            self._drop("queue_full", webhook_id)
            return
        self._seen[webhook_id] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        self.counts["queued"] += 1
        self.metrics.queued.inc()

    def _drop(self, reason: str, webhook_id: str) -> None:
        self.counts["dropped"] += 1
        self.metrics.dropped.labels(reason).inc()
        self._drops_unlogged += 1
        now = time.monotonic()
        if reason == "stopping" or now - self._last_drop_log >= _DROP_LOG_INTERVAL:
            log.warning(
                "forward: event %s not forwarded (%s); %d dropped since the last warning, "
                "%d in all",
                webhook_id[:64], reason.replace("_", " "), self._drops_unlogged,
                self.counts["dropped"],
                extra={"reason": reason, "dropped": self.counts["dropped"]},
            )  # fmt: skip
            self._last_drop_log = now
            self._drops_unlogged = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, registry: CollectorRegistry | None = None) -> None:
        """Start the background task (the company directory loads in it, not here)."""
        if registry is not None:
            self.metrics = _Metrics(registry)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="forward")
        # One client for the listener's life: no TLS context and connection per message.
        self._http = httpx.Client(timeout=self.settings.timeout, follow_redirects=False)
        # Warm up (lazy imports, regexes) before the listener takes its first request.
        sample = {"eventType": "connection.disconnected", "payload": {
            "referenceCompany": {"id": "warm-up", "tags": {}},
            "connection": {"id": "warm-up", "linkUrl": "https://link-api.codat.io/x"}}}
        for channel in ("slack", "teams", "webhook"):
            encode_body(forward_payload(channel, self._describe("warm-up", datetime.now(UTC),
                                                                sample)))  # fmt: skip
        self._task = asyncio.create_task(self._run())
        log.info("forward: %d route(s), queue of %d", len(self.routes),
                 self.settings.forward_queue)  # fmt: skip

    async def stop(self) -> None:
        """Take no more events; give the queue ``drain_seconds`` to be sent, drop the rest."""
        self._closing = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=self.drain_seconds)
        self._stop.set()  # a retry waiting for its next attempt gives up now
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        left = self._queue.qsize()
        if left:
            self.counts["dropped"] += left
            self.metrics.dropped.labels("stopping").inc(left)
            log.warning("forward: stopping: %d queued event(s) not forwarded", left)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            self._http.close()
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            self.metrics.depth.set(self._queue.qsize())
            began = time.monotonic()
            sent = False
            try:
                if time.monotonic() - self._checked >= self.settings.forward_refresh_seconds:
                    self._checked = time.monotonic()
                    await loop.run_in_executor(self._pool, self.directory.refresh)
                sent = await self._forward(*item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one event's bug never stops the forwarder
                log.error("forward: event %s: %s", item[0][:64],
                          redact(f"{type(exc).__name__}: {exc}"))  # fmt: skip
            finally:
                self._queue.task_done()
            # Paced by what was sent: events no route matched cost a look-up, not a slot.
            pause = 1.0 / self.settings.forward_per_second - (time.monotonic() - began)
            if sent and pause > 0:
                await asyncio.sleep(pause)

    # ------------------------------------------------------------------ sending

    async def _forward(self, webhook_id: str, received_at: datetime, event: dict[str, Any]) -> bool:
        """Send ``event`` wherever a route wants it; whether anything was to be sent."""
        loop = asyncio.get_running_loop()
        base = await loop.run_in_executor(self._pool, self._describe, webhook_id, received_at,
                                          event)  # fmt: skip
        sends: dict[tuple[str, str], ForwardMessage] = {}
        emails: dict[str, ForwardMessage] = {}
        for route in self.routes:
            if not route_matches(route, base):
                continue
            note = _with_route(base, route, self.display_tz)
            for channel in ("slack", "teams", "webhook"):
                for url_env in getattr(route, channel):
                    sends.setdefault((channel, url_env), note)
            for address in route.email:
                emails.setdefault(address, note)
        if not sends and not emails:
            self.counts["unmatched"] += 1
            self.metrics.unmatched.inc()
            return False
        jobs = [loop.run_in_executor(self._pool, self._post, c, e, n)
                for (c, e), n in sends.items()]  # fmt: skip
        by_note: dict[int, tuple[ForwardMessage, list[str]]] = {}
        for address, note in emails.items():
            by_note.setdefault(id(note), (note, []))[1].append(address)
        jobs += [loop.run_in_executor(self._pool, self._mail, n, to) for n, to in by_note.values()]
        await asyncio.gather(*jobs)
        return True

    def _describe(
        self, webhook_id: str, received_at: datetime, event: dict[str, Any]
    ) -> ForwardMessage:
        return describe_event(webhook_id, received_at, event, self.directory,
                              link_hosts=self.link_hosts)  # fmt: skip

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopping

    def _outcome(self, channel: str, label: str, error: str | None) -> None:
        with self._lock:
            self._count(channel, label, error)
        if self.on_outcome is not None:
            self.on_outcome(channel, label, error)

    def _count(self, channel: str, label: str, error: str | None) -> None:
        if error is None:
            self.counts["sent"] += 1
            self.metrics.sent.labels(channel).inc()
            log.info("forwarded to %s", label)
        else:
            self.counts["failed"] += 1
            self.metrics.failed.labels(channel).inc()
            log.error("forward failed: %s", error)

    def _post(self, channel: str, url_env: str, note: ForwardMessage) -> None:
        label = f"forward {channel} {url_env} ({note.event_type} {note.webhook_id[:64]})"
        environ = os.environ if self._env is None else self._env
        url = environ.get(url_env, "").strip()
        try:
            if not url:
                raise NotifyError(f"{label}: {url_env} is not set (the webhook URL)")
            post_json(
                url,
                encode_body(forward_payload(channel, note)),
                label=label,
                timeout=self.settings.timeout,
                max_attempts=self.settings.max_attempts,
                max_seconds=self.settings.max_seconds,
                sleep=self._sleep,
                client=self._http,
            )
        except NotifyError as exc:
            self._outcome(channel, label, redact(str(exc)))
            return
        except _Stopping:
            self._outcome(channel, label, f"{label}: not delivered: the listener stopped")
            return
        except Exception as exc:  # a bug must not leak the URL either
            self._outcome(channel, label, redact(f"{label}: {type(exc).__name__}: {exc}"))
            return
        self._outcome(channel, label, None)

    def _mail(self, note: ForwardMessage, to: list[str]) -> None:
        label = f"forward email to {len(to)} address{'es' if len(to) != 1 else ''} " \
                f"({note.event_type} {note.webhook_id[:64]})"  # fmt: skip
        smtp = self.smtp if self.smtp is not None else SmtpSettings()
        sender = smtp.sender or self.email.sender or "freshness-auditor@localhost"
        try:
            if not smtp.configured:
                raise DigestSendError("SMTP is not configured (set SMTP_HOST)")
            send_digest(_email(note, to, sender, self.email.subject_prefix), smtp)
        except (DigestSendError, ValueError) as exc:
            self._outcome("email", label, redact(f"{label}: {exc}"))
            return
        except Exception as exc:
            self._outcome("email", label, redact(f"{label}: {type(exc).__name__}: {exc}"))
            return
        self._outcome("email", label, None)


def _with_route(base: ForwardMessage, route: ForwardRoute, display_tz: str) -> ForwardMessage:
    return replace(base, route=flat(route.label, 80), tag_label=_tag_label(route, base),
                   display_tz=display_tz)  # fmt: skip
