"""A small fake Codat for hostile payloads, independent of ``auditor.sandbox``.

:class:`FakeCodat` answers the four reads a collection makes (``/companies``, a company's
``dataStatus``, ``/profile/syncSettings``, a pull operation) from plain Python data, and
records every raw request path. Use it in process through :meth:`FakeCodat.transport` (an
``httpx.MockTransport``), or over real loopback sockets through :class:`LoopbackServer`
(aiohttp in a thread), which also takes raw aiohttp handlers for bodies that drip or bomb.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from aiohttp import web

__all__ = ["API_KEY", "FakeCodat", "LoopbackServer", "good_status"]

API_KEY = "sk-hostile-test-key-4d1b"


def good_status(data_type: str = "invoices", **fields: Any) -> dict[str, Any]:
    """A well-formed dataStatus entry (override any field)."""
    return {
        "dataType": data_type,
        "currentStatus": "Complete",
        "lastSuccessfulSync": "2024-04-30T02:00:00Z",
        "latestSyncId": f"sync-{data_type}",
        "latestSuccessfulSyncId": f"sync-{data_type}",
        **fields,
    }


@dataclass
class FakeCodat:
    """Serves ``companies`` (raw JSON items, one page unless ``pages`` is given) and
    ``statuses`` (company id -> raw dataStatus body). ``status_hook`` may replace a
    dataStatus answer (return ``(status_code, body)``) given the company id and the number
    of dataStatus requests so far."""

    companies: list[Any] = field(default_factory=list)
    statuses: Mapping[str, Any] = field(default_factory=dict)
    status_hook: Callable[[str, int], tuple[int, Any] | None] | None = None
    raw_paths: list[str] = field(default_factory=list)
    status_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, raw_path: str, query: Mapping[str, str]) -> tuple[int, Any]:
        with self.lock:
            self.raw_paths.append(raw_path)
        parts = raw_path.split("?", 1)[0].split("/")
        if raw_path.startswith("/profile/syncSettings"):
            return 200, {"clientId": "c", "settings": [], "overridesDefaults": False}
        if parts[1:] == ["companies"]:
            return 200, {
                "results": self.companies,
                "pageNumber": 1,
                "pageSize": 5000,
                "totalResults": len(self.companies),
            }
        if len(parts) == 4 and parts[1] == "companies" and parts[3] == "syncSettings":
            # The collector's rolling slice reads some companies' own settings: none here.
            return 200, {"companyId": unquote(parts[2]), "settings": [], "overridesDefaults": False}
        if len(parts) == 4 and parts[1] == "companies" and parts[3] == "dataStatus":
            company_id = unquote(parts[2])
            with self.lock:
                self.status_calls += 1
                calls = self.status_calls
            if self.status_hook is not None:
                hooked = self.status_hook(company_id, calls)
                if hooked is not None:
                    return hooked
            if company_id not in self.statuses:
                return 404, {"statusCode": 404, "error": "Company not found"}
            return 200, self.statuses[company_id]
        return 404, {"statusCode": 404, "error": f"no route {raw_path}"}

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            raw = request.url.raw_path.decode("ascii")
            status, body = self.answer(raw, dict(request.url.params))
            return httpx.Response(status, content=json.dumps(body).encode())

        return httpx.MockTransport(handler)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LoopbackServer:
    """An aiohttp server on 127.0.0.1 in its own thread; every request goes to ``handler``
    (or to ``fake``'s answers). Use as a context manager; ``base_url`` is its address."""

    def __init__(self, handler: Handler | None = None, *, fake: FakeCodat | None = None) -> None:
        if handler is None:
            if fake is None:
                raise ValueError("give a handler or a fake")
            handler = self._fake_handler(fake)
        self._handler = handler
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @staticmethod
    def _fake_handler(fake: FakeCodat) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            status, body = fake.answer(request.raw_path, dict(request.query))
            return web.json_response(body, status=status)

        return handle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
