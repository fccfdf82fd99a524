"""The HTTP transport for a collection run: aiohttp under httpx when available.

httpx's own connection pool (httpcore) spends CPU per request that grows with the requests in
flight: at zero latency about 1.8 ms per company against the sandbox, where aiohttp's pool
under the same httpx client (the ``httpx-aiohttp`` package) needs about 0.8 ms in total. The
collector only reads (every read is safe to retry), so the coarser mapping of aiohttp's
connection errors to httpx's exceptions does not matter here.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Literal

import httpx

__all__ = ["TransportName", "collector_transport"]

log = logging.getLogger("auditor.collector")

TransportName = Literal["auto", "aiohttp", "httpx"]


def collector_transport(
    name: TransportName = "auto", *, max_connections: int = 64
) -> httpx.AsyncBaseTransport | None:
    """A transport for :class:`auditor.codat.CodatClient` (None: httpx's default pool).

    ``auto``: aiohttp when ``httpx-aiohttp`` is installed, else httpx's pool.
    """
    if name == "httpx":
        return None
    if importlib.util.find_spec("httpx_aiohttp") is None:
        if name == "aiohttp":
            raise RuntimeError("the aiohttp transport needs the httpx-aiohttp package")
        log.debug("httpx-aiohttp not installed: using httpx's own connection pool")
        return None
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    return transport
