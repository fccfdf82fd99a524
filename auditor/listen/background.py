"""A listener in a thread of this process: for ``auditor demo``, the end-to-end tests and
the incremental benchmark (a real ``auditor listen`` is a process of its own)."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from auditor.listen.server import ListenerOptions, ListenerServer
from auditor.logs import register_secret

__all__ = ["BackgroundListener"]


class BackgroundListener:
    """A :class:`ListenerServer` on a free loopback port, run by its own event loop in a daemon
    thread, with a one-off signing secret (``secret``, registered for redaction).

    ``clock`` gives ``received_at`` (and the event log's day), e.g. a demo's sandbox clock.
    """

    def __init__(self, store: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        register_secret(self.secret)
        self.server = ListenerServer(
            store, self.secret, port=0, options=ListenerOptions(clock=clock)
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="codat-listener", daemon=True
        )

    @property
    def url(self) -> str:
        """Where to post the webhooks (a secret of sorts: never logged)."""
        return self.server.url + "/webhooks/codat"

    def start(self) -> BackgroundListener:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=60)
        return self

    def stop(self) -> dict[str, int]:
        """Stop (what is in flight is synced and acknowledged); returns the listener's counts."""
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
        return dict(self.server.counts)
