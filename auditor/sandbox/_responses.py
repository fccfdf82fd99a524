"""Building answers: JSON responses, Codat's ErrorMessage bodies, paged envelopes.

Every endpoint answers through these, so that an error always has Codat's ErrorMessage shape
(``statusCode``, ``service``, ``error``, ``correlationId``, ...) and a page always has the
spec's envelope (``results``, ``pageNumber``, ``pageSize``, ``totalResults``, ``_links``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from auditor.sandbox._query import QueryError, compile_query, order_by
from auditor.sandbox._util import dumps

_PAGE_MAX: Final = 5000
_DEFAULT_PAGE_SIZE: Final = 100


def json_response(body: bytes | Any, status: int = 200) -> web.Response:
    """``body`` (JSON bytes, or an object to serialise) as an ``application/json`` answer."""
    data = body if isinstance(body, bytes) else dumps(body)
    return web.Response(status=status, body=data, content_type="application/json")


class Errors:
    """Codat ErrorMessage answers, each with a correlation id drawn from ``seed``."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._correlation = 0

    def _next_correlation(self) -> str:
        self._correlation += 1
        return hashlib.blake2b(
            f"{self._seed}|corr|{self._correlation}".encode(), digest_size=16
        ).hexdigest()

    def error(self, status: int, error: str, service: str = "PublicApi") -> web.Response:
        body = {
            "statusCode": status,
            "service": service,
            "error": error,
            "correlationId": self._next_correlation(),
            "canBeRetried": "Unknown",
            "detailedErrorCode": 0,
        }
        return web.Response(status=status, body=dumps(body), content_type="application/json")

    def not_found(self, company_id: str) -> web.Response:
        return self.error(404, f"No company was found with ID {company_id}", "ClientsApi")


def paging(
    errors: Errors, request: web.Request
) -> tuple[int, int, str | None, str | None] | web.Response:
    """``(page, pageSize, query, orderBy)`` of ``request``, or the 400 answer to bad ones."""
    q = request.query
    try:
        page = int(q.get("page", "1"))
        size = int(q.get("pageSize", str(_DEFAULT_PAGE_SIZE)))
    except ValueError:
        return errors.error(400, "Error processing request - page and pageSize must be integers.")
    if page < 1 or not 1 <= size <= _PAGE_MAX:
        return errors.error(
            400,
            f"Error processing request - page must be >= 1 and pageSize between 1 and {_PAGE_MAX}.",
        )
    return page, size, q.get("query") or None, q.get("orderBy") or None


def envelope_bytes(
    path: str,
    results: list[bytes],
    page: int,
    size: int,
    total: int,
    query: str | None,
    order: str | None,
) -> bytes:
    """The JSON of a page whose ``results`` are already serialised."""

    def href(p: int) -> dict[str, str]:
        params: dict[str, Any] = {"page": p, "pageSize": size}
        if query:
            params["query"] = query
        if order:
            params["orderBy"] = order
        return {"href": f"{path}?{urlencode(params)}"}

    links: dict[str, Any] = {"self": {"href": path}, "current": href(page)}
    if page * size < total:
        links["next"] = href(page + 1)
    if page > 1:
        links["previous"] = href(page - 1)
    tail = dumps({"pageNumber": page, "pageSize": size, "totalResults": total, "_links": links})
    return b'{"results":[' + b",".join(results) + b"]," + tail[1:]


def page_of(
    errors: Errors,
    request: web.Request,
    items: list[dict[str, Any]],
    props: tuple[str, ...],
    entity: str,
) -> web.Response:
    """One page of ``items``, filtered by ``query`` and sorted by ``orderBy`` (over ``props``)."""
    parsed = paging(errors, request)
    if isinstance(parsed, web.Response):
        return parsed
    page, size, query, order = parsed
    try:
        if query:
            keep = compile_query(query, props, entity)
            items = [i for i in items if keep(i)]
        if order:
            items = order_by(items, order, props, entity)
    except QueryError as exc:
        return errors.error(400, str(exc))
    chunk = items[(page - 1) * size : page * size]
    return json_response(
        envelope_bytes(
            request.path, [dumps(i) for i in chunk], page, size, len(items), query, order
        )
    )
