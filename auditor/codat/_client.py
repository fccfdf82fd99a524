"""The async Codat Platform API client: the only door to Codat.

MINIMAL FIRST VERSION (walking skeleton). Retries, rate limiting and the full exception
tree are added by the client issue; the method signatures here are the contract the
collector relies on.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from auditor.codat._exceptions import CodatError, raise_for_response
from auditor.codat._models import Company, DataStatus, Page, PullOperation, SyncSettings

__all__ = ["DEFAULT_BASE_URL", "CodatClient"]

DEFAULT_BASE_URL = "https://api.codat.io"


class CodatClient:
    """Async client for the Codat Platform API.

    Use as ``async with CodatClient(api_key, base_url=...) as client: ...``.
    The API key is sent as ``Authorization: Basic <base64(key)>`` and kept out of every
    ``repr``, log line and exception.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        max_connections: int = 100,
    ) -> None:
        token = base64.b64encode(api_key.encode()).decode()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Basic {token}", "Accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self.base_url = base_url

    def __repr__(self) -> str:
        return f"CodatClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> CodatClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise CodatError(f"{type(exc).__name__} on GET {path}", path=path) from None
        raise_for_response(response, path)
        try:
            return response.json()
        except ValueError:
            raise CodatError(f"malformed JSON from GET {path}", path=path) from None

    async def iter_companies(self, *, page_size: int = 5000) -> AsyncIterator[Company]:
        """Every company, with its ``dataConnections``, following the pages."""
        page_number = 1
        while True:
            body = await self._get_json(
                "/companies", {"page": page_number, "pageSize": page_size}
            )
            page = Page.model_validate(body)
            for item in page.results:
                yield Company.model_validate(item)
            if page_number * page.page_size >= page.total_results or not page.results:
                return
            page_number += 1

    async def list_companies(self, *, page_size: int = 5000) -> list[Company]:
        return [c async for c in self.iter_companies(page_size=page_size)]

    async def get_data_status(self, company_id: str) -> dict[str, DataStatus]:
        """``GET /companies/{id}/dataStatus``: data type -> status (null entries skipped)."""
        body = await self._get_json(f"/companies/{company_id}/dataStatus")
        if not isinstance(body, dict):
            raise CodatError("dataStatus body is not an object", path=f"/companies/{company_id}/dataStatus")
        out: dict[str, DataStatus] = {}
        for key, value in body.items():
            if value is None:
                continue
            if isinstance(value, dict):
                value = {"dataType": key, **value}
            out[key] = DataStatus.model_validate(value)
        return out

    async def get_pull_operation(self, company_id: str, dataset_id: str) -> PullOperation:
        body = await self._get_json(f"/companies/{company_id}/data/history/{dataset_id}")
        return PullOperation.model_validate(body)

    async def get_sync_settings(self) -> SyncSettings:
        body = await self._get_json("/profile/syncSettings")
        return SyncSettings.model_validate(body)
