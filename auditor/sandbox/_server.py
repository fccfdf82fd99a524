"""The sandbox HTTP server: Codat's Platform API endpoints over a fleet, on loopback.

An aiohttp application run by an ``AppRunner`` in a background thread with its own event
loop, so that it serves synchronous and asynchronous tests alike::

    with SandboxServer(generate_fleet(500, seed=1), options=SandboxOptions()) as srv:
        srv.base_url, srv.api_key, srv.stats

This module is the server's lifecycle (start, stop, threads, signals). Where the rest is:

* ``_app.py``: the routing table (endpoint -> operationId -> function);
* ``_middleware.py``: rate limit, latency, auth and fault injection, before every endpoint;
* ``_routes_companies.py``, ``_routes_data.py``, ``_routes_refresh.py``,
  ``_routes_settings.py``: the endpoints;
* ``_state.py``: the fleet as of sandbox time, the clock and the caches the endpoints share;
* ``_refresh.py``: the refresh overlay (queued pull operations and their state machine);
* ``_responses.py``: JSON answers, Codat ErrorMessages, paging;
* ``_options.py``, ``_stats.py``: ``SandboxOptions`` and ``SandboxStats``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from auditor.sandbox._app import build_app
from auditor.sandbox._fleet import CompanyRecord, Fleet
from auditor.sandbox._middleware import SandboxMiddleware
from auditor.sandbox._options import SandboxOptions
from auditor.sandbox._routes_data import current_data_status
from auditor.sandbox._state import SandboxState
from auditor.sandbox._stats import SandboxStats
from auditor.sandbox._webhooks import WebhookEmitter, WebhookStats

__all__ = ["SandboxServer"]


class SandboxServer:
    """A Codat-compatible HTTP server for ``fleet`` on ``host:port`` (port 0: a free one).

    Start with ``with``/``async with`` or :meth:`start`; stop with :meth:`close`. The server
    runs in a daemon thread with its own event loop. ``stats`` counts requests.
    """

    def __init__(
        self,
        fleet: Fleet,
        options: SandboxOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.stats = SandboxStats()
        self._state = SandboxState(fleet, options or SandboxOptions())
        self._middleware = SandboxMiddleware(
            self.options, self.stats, self._state.errors, now=self._state.now
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._webhooks: WebhookEmitter | None = None

    @property
    def webhook_stats(self) -> WebhookStats | None:
        """What the webhook sender did (None: no ``webhook_url``)."""
        return None if self._webhooks is None else self._webhooks.stats

    def flush_webhooks(self, timeout: float = 60.0) -> bool:
        """Post the webhooks of everything that changed up to sandbox now and wait until each
        was delivered (or given up); False if ``timeout`` real seconds passed first. Call it
        after moving ``clock`` (the demo does, every few sandbox hours)."""
        loop, emitter = self._loop, self._webhooks
        if loop is None or emitter is None:
            return True
        future = asyncio.run_coroutine_threadsafe(emitter.flush(timeout), loop)
        return future.result(timeout=timeout + 30)

    @property
    def fleet(self) -> Fleet:
        return self._state.fleet

    @property
    def options(self) -> SandboxOptions:
        return self._state.options

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.options.api_key

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"SandboxServer({self.base_url}, companies={len(self.fleet)}, {state})"

    def is_quirky(self, company_id: str) -> bool:
        """Whether ``company_id`` is served doc-style variants (``quirks`` on and chosen)."""
        return self._state.is_quirky(company_id)

    def now(self) -> datetime:
        """Sandbox time: ``clock()``, or the start time advanced ``time_scale`` times real time."""
        return self._state.now()

    def current_data_status(self, record: CompanyRecord, now: datetime) -> dict[str, Any]:
        """The dataStatus body of ``record`` at sandbox time ``now`` (refresh overlay applied).

        For a generated fleet, ``record`` should be the record as of ``now``
        (``srv.fleet.record_at``); a fleet file's record is served as it is.
        """
        return current_data_status(self._state, record, now)

    def start(self) -> SandboxServer:
        """Start serving; returns when the port is bound."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                    self._runner = None
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="codat-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("sandbox did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = None
            self._loop = None
            raise failure[0]
        return self

    def close(self) -> None:
        """Stop serving (hanging requests are dropped) and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._thread = None
            self._loop = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> SandboxServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    def serve_forever(self) -> None:
        """Block until Ctrl-C (KeyboardInterrupt, re-raised) or SIGTERM (returns), then close."""
        if self._thread is None:
            self.start()
        stop = threading.Event()
        previous: Any = None
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
            self.close()

    async def _startup(self) -> None:
        self._middleware.closing = asyncio.Event()
        app = build_app(self._state, self._middleware)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])
        options = self.options
        if options.webhook_url is not None and options.webhook_secret is not None:
            self._webhooks = WebhookEmitter(
                self._state, options.webhook_url, options.webhook_secret
            )
            self._middleware.on_quota_spent = self._webhooks.quota_reached
            await self._webhooks.start()

    async def _shutdown(self) -> None:
        if self._middleware.closing is not None:
            self._middleware.closing.set()
        if self._webhooks is not None:
            await self._webhooks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
