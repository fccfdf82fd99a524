"""The webhook listener: an aiohttp server that verifies Codat's Svix-signed webhooks (with the
``standardwebhooks`` library, which the ``svix`` package itself delegates to) and
acknowledges each one only once it is durable in the store's event log.

``POST /webhooks/codat`` (and ``POST /``)
    ``200 {"status": "stored"}`` or ``200 {"status": "duplicate"}`` once the event is on disk;
    ``400`` missing/invalid ``webhook-*`` headers or a body that is not a JSON event object,
    ``401`` bad signature or a timestamp outside the 5-minute tolerance (replay),
    ``413`` body over the cap, ``503`` the event log failed or too many events are waiting for
    the disk (Codat retries).
``GET /healthz``
    ``200`` with counters while the event log takes events, ``503`` once it failed.
``GET /metrics``
    Prometheus text: received / rejected{reason} / stored / duplicates, ack latency.

The signing secret is never logged, returned nor stored; rejections are logged with their
reason and the (attacker-controlled, so truncated) ``webhook-id`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web
from filelock import FileLock, Timeout
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from auditor.listen.eventlog import EVENTS_DIR, EventLog, EventLogError, compact

__all__ = [
    "DEFAULT_MAX_BODY",
    "REJECT_REASONS",
    "SIGNATURE_TOLERANCE_SECONDS",
    "EventSink",
    "ListenerBusyError",
    "ListenerOptions",
    "ListenerServer",
    "WebhookSecretError",
    "check_secret",
    "serve",
]

log = logging.getLogger("auditor.listen")

DEFAULT_MAX_BODY: Final = 1024 * 1024
# The standardwebhooks library's own tolerance (not configurable there); used only to tell a stale
# timestamp from a bad signature once the library has rejected a delivery.
SIGNATURE_TOLERANCE_SECONDS: Final = 300
MAX_ID_LENGTH: Final = 256
REJECT_REASONS: Final = (
    "missing_headers",
    "bad_headers",
    "bad_signature",
    "stale_timestamp",
    "oversize",
    "malformed",
    "overloaded",
    "unavailable",
)
_STATUS: Final = {
    "missing_headers": 400,
    "bad_headers": 400,
    "bad_signature": 401,
    "stale_timestamp": 401,
    "oversize": 413,
    "malformed": 400,
    "overloaded": 503,
    "unavailable": 503,
}


_ACK: Final = {
    "stored": b'{"status": "stored"}',
    "duplicate": b'{"status": "duplicate"}',
}


class EventSink(Protocol):
    """Takes newly stored events off the acknowledgement path (the intraday forwarder,
    :class:`auditor.notify.forward.Forwarder`). :meth:`offer` is called once per new event,
    after it is durable and never for a duplicate; it must not block (queue and return)."""

    def offer(self, webhook_id: str, received_at: datetime, event: dict[str, Any]) -> None: ...

    async def start(self, registry: CollectorRegistry) -> None: ...

    async def stop(self) -> None: ...


class ListenerBusyError(RuntimeError):
    """Another listener already writes into this store's event log."""


class WebhookSecretError(ValueError):
    """The signing secret is missing or not a Svix ``whsec_`` secret (never echoed)."""


def check_secret(secret: str | None) -> Webhook:
    """The verifier for ``secret``; raises :class:`WebhookSecretError` without the secret."""
    if not secret:
        raise WebhookSecretError("CODAT_WEBHOOK_SECRET is not set")
    if not secret.startswith("whsec_") or len(secret) <= len("whsec_"):
        raise WebhookSecretError(
            "CODAT_WEBHOOK_SECRET is not a Svix signing secret (it must start with whsec_)"
        )
    try:
        return Webhook(secret)
    except Exception:  # binascii.Error and friends: their text could quote the secret
        raise WebhookSecretError(
            "CODAT_WEBHOOK_SECRET is not a valid Svix signing secret (not base64 after whsec_)"
        ) from None


@dataclass(frozen=True)
class ListenerOptions:
    max_body_bytes: int = DEFAULT_MAX_BODY
    dedup_days: int = 7
    stats_interval_seconds: float = 60.0
    compact_interval_seconds: float = 3600.0
    # Events waiting for their sync beyond which new ones get 503 (Codat retries them later)
    # rather than piling up in memory when the disk stalls.
    max_in_flight: int = 10_000
    # What ``received_at`` is taken from (default: the real clock). ``auditor demo`` passes its
    # sandbox clock so that events fall between the demo's nights; the Svix timestamp check
    # always uses the real clock.
    clock: Callable[[], datetime] | None = field(default=None, compare=False)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "codat_webhooks_received", "Webhook deliveries received.", registry=r
        )
        self.rejected = Counter(
            "codat_webhooks_rejected", "Deliveries rejected, by reason.", ["reason"], registry=r
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.stored = Counter(
            "codat_webhooks_stored", "Events written and synced to the event log.", registry=r
        )
        self.duplicates = Counter(
            "codat_webhooks_duplicates",
            "Deliveries of an already stored event (acknowledged, not stored again).",
            registry=r,
        )
        self.ack_latency = Histogram(
            "codat_webhook_ack_seconds",
            "Time from request to acknowledgement of accepted deliveries.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.in_flight = Gauge(
            "codat_webhooks_in_flight", "Events waiting for their sync.", registry=r
        )
        self.known_ids = Gauge(
            "codat_webhooks_known_ids", "Event ids held for de-duplication.", registry=r
        )


def _short(value: str) -> str:
    return value[:64] + ("…" if len(value) > 64 else "")


class ListenerServer:
    """The listener on ``host:port`` (``port=0``: any free port), writing into ``store``."""

    def __init__(
        self,
        store: Path | str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8787,
        options: ListenerOptions | None = None,
        sink: EventSink | None = None,
    ) -> None:
        self.options = options or ListenerOptions()
        self.sink = sink
        self._verifier = check_secret(secret)
        self.store = Path(store)
        self.host = host
        self.port = port
        self.events = EventLog(
            self.store, dedup_days=self.options.dedup_days, clock=self.options.clock
        )
        self.metrics = _Metrics()
        self.started_at: datetime | None = None
        self._runner: web.AppRunner | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._compact_task: asyncio.Task[None] | None = None
        self._lock: FileLock | None = None
        self.failed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.counts = {"received": 0, "rejected": 0, "stored": 0, "duplicates": 0}

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        # client_max_size is a second line of defence; _read_body enforces the cap itself.
        app = web.Application(client_max_size=self.options.max_body_bytes + 1)
        app.router.add_post("/webhooks/codat", self._receive)
        app.router.add_post("/", self._receive)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        # One listener per store: the set of stored ids is per process.
        events_dir = self.store / EVENTS_DIR
        events_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(events_dir / ".listen.lock"))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ListenerBusyError(
                f"another listener is already writing into {events_dir}"
            ) from None
        try:
            compacted = await asyncio.to_thread(compact, self.store)
            if compacted:
                log.info("compacted closed days: %s", compacted, extra={"compacted": compacted})
            await self.events.start()
            if self.sink is not None:
                await self.sink.start(self.metrics.registry)
        except BaseException:
            self._lock.release()
            raise
        scan = self.events.startup_scan
        log.info(
            "event log ready: %d known ids (last %d days), %d torn tails and %d damaged lines "
            "skipped",
            self.events.known_ids,
            self.options.dedup_days,
            scan.torn_tails,
            scan.damaged_lines,
        )
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=20
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])
        self.started_at = datetime.now(UTC)
        self._stats_task = asyncio.create_task(self._log_stats())
        self._compact_task = asyncio.create_task(self._compact_closed_days())
        log.info("listening on %s", self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop taking requests, let the ones in flight finish, sync and close the log."""
        self._stopping.set()
        if self._compact_task is not None:
            # Not cancelled: a compaction under way finishes before the lock is released.
            with contextlib.suppress(Exception):
                await self._compact_task
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stats_task
        if self._runner is not None:
            # Closes the socket, then waits for the requests in flight (whose events the
            # writer, still running, syncs and acknowledges), then the writer drains and stops.
            await self._runner.cleanup()
            self._runner = None
        if self.sink is not None:
            with contextlib.suppress(Exception):
                await self.sink.stop()
        await self.events.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def _compact_closed_days(self) -> None:
        """Every hour, fold the days that closed (not the open segment's) into Parquet."""
        while True:
            try:
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.options.compact_interval_seconds
                )
                return
            except TimeoutError:
                pass
            try:
                done = await asyncio.to_thread(compact, self.store, skip=[self.events.open_day])
            except Exception as exc:  # compaction is an optimisation: keep listening
                log.warning("compaction failed (segments kept; retried later): %s", exc)
                continue
            if done:
                log.info("compacted closed days: %s", done, extra={"compacted": done})

    async def _log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.options.stats_interval_seconds)
            log.info(
                "webhooks: %d received, %d stored, %d duplicates, %d rejected",
                self.counts["received"],
                self.counts["stored"],
                self.counts["duplicates"],
                self.counts["rejected"],
                extra={"counts": dict(self.counts)},
            )

    # ------------------------------------------------------------------ handlers

    def _reject(self, reason: str, webhook_id: str | None, detail: str = "") -> web.Response:
        self.metrics.rejected.labels(reason).inc()
        self.counts["rejected"] += 1
        log.info(
            "webhook rejected: %s%s",
            reason,
            f" ({detail})" if detail else "",
            extra={"reason": reason, "webhook_id": _short(webhook_id) if webhook_id else None},
        )
        return web.json_response({"status": "rejected", "reason": reason}, status=_STATUS[reason])

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or ``None`` when it is over the cap (read no further than cap + 1)."""
        cap = self.options.max_body_bytes
        if request.content_length is not None and request.content_length > cap:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)

    def _classify_failure(self, timestamp: str) -> str:
        try:
            sent = float(timestamp)
        except ValueError:
            return "bad_headers"
        if not math.isfinite(sent):
            return "bad_headers"
        if abs(time.time() - sent) > SIGNATURE_TOLERANCE_SECONDS:
            return "stale_timestamp"
        return "bad_signature"

    async def _receive(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        clock = self.options.clock
        received_at = datetime.now(UTC) if clock is None else clock().astimezone(UTC)
        self.metrics.received.inc()
        self.counts["received"] += 1
        headers = request.headers
        webhook_id = headers.get("webhook-id") or headers.get("svix-id")
        timestamp = headers.get("webhook-timestamp") or headers.get("svix-timestamp")
        signature = headers.get("webhook-signature") or headers.get("svix-signature")
        if self.events.failure is not None:
            return self._reject("unavailable", webhook_id)
        body = await self._read_body(request)
        if body is None:
            return self._reject("oversize", webhook_id, f"over {self.options.max_body_bytes} bytes")
        if not (webhook_id and timestamp and signature):
            return self._reject("missing_headers", webhook_id)
        if len(webhook_id) > MAX_ID_LENGTH or not webhook_id.isprintable():
            return self._reject("bad_headers", None, "webhook-id too long or not printable")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._reject("malformed", webhook_id, "body is not UTF-8")
        try:
            self._verifier.verify(
                text,
                {
                    "webhook-id": webhook_id,
                    "webhook-timestamp": timestamp,
                    "webhook-signature": signature,
                },
                json_parse=False,
            )
        except WebhookVerificationError:
            return self._reject(self._classify_failure(timestamp), webhook_id)
        except ValueError:  # a signature that is not "v1,<base64>": not even a candidate
            return self._reject("bad_signature", webhook_id, "unparsable webhook-signature")
        try:  # the signature matched: is the body a JSON event?
            event = json.loads(text)
        except ValueError:
            return self._reject("malformed", webhook_id, "body is not JSON")
        if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
            return self._reject("malformed", webhook_id, "not a Codat event (no eventType)")
        if self.events.in_flight >= self.options.max_in_flight:
            return self._reject("overloaded", webhook_id, "too many events waiting for the disk")
        try:
            outcome = await self.events.append(webhook_id, received_at, text)
        except EventLogError:
            if self.events.failure is None:  # stopping: Codat redelivers it to the next run
                return self._reject("unavailable", webhook_id, "stopping")
            self.failed.set()
            return self._reject("unavailable", webhook_id, "event log failed")
        if outcome == "stored":
            self.metrics.stored.inc()
            self.counts["stored"] += 1
            if self.sink is not None:
                try:  # durable now: forwarding may only queue it, never delay nor fail the ack
                    self.sink.offer(webhook_id, received_at, event)
                except Exception:
                    log.exception("forwarding failed to take event %s", _short(webhook_id))
        else:
            self.metrics.duplicates.inc()
            self.counts["duplicates"] += 1
            log.debug("duplicate delivery %s", _short(webhook_id))
        self.metrics.ack_latency.observe(time.perf_counter() - started)
        return web.Response(body=_ACK[outcome], content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        healthy = self.events.failure is None
        return web.json_response(
            {
                "status": "ok" if healthy else "failing",
                "started_at": self.started_at.isoformat() if self.started_at else None,
                **self.counts,
                "known_ids": self.events.known_ids,
                "in_flight": self.events.in_flight,
                "batches": self.events.batches,
            },
            status=200 if healthy else 503,
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.in_flight.set(self.events.in_flight)
        self.metrics.known_ids.set(self.events.known_ids)
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )


async def serve(server: ListenerServer, *, ready: asyncio.Event | None = None) -> int:
    """Run ``server`` until SIGINT/SIGTERM (graceful: in-flight events are synced and
    acknowledged) or until its event log fails. Returns the exit code (0, or 1 on failure)."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        if ready is not None:
            ready.set()
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(server.failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await server.stop()
    if server.events.failure is not None:
        log.error("stopped: the event log failed; restart to resume (nothing acknowledged is lost)")
        return 1
    log.info(
        "stopped: %d received, %d stored, %d duplicates, %d rejected",
        server.counts["received"],
        server.counts["stored"],
        server.counts["duplicates"],
        server.counts["rejected"],
    )
    return 0
