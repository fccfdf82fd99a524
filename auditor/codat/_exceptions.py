"""The client's one exception tree (minimal first version; deepened by the client issue).

::

    CodatError                      anything the client could not do
    └── CodatHTTPError              Codat answered with an error status
"""

from __future__ import annotations

import httpx

__all__ = ["CodatError", "CodatHTTPError", "raise_for_response"]


class CodatError(Exception):
    """Base of every error the client raises. Never carries the API key."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CodatHTTPError(CodatError):
    """Codat answered with an error status."""

    def __init__(self, message: str, *, path: str, status_code: int, error: str | None) -> None:
        super().__init__(message, path=path)
        self.status_code = status_code
        self.error = error


def raise_for_response(response: httpx.Response, path: str) -> None:
    if response.status_code < 400:
        return
    error: str | None = None
    try:
        body = response.json()
        if isinstance(body, dict):
            error = str(body.get("error")) if body.get("error") is not None else None
    except ValueError:
        error = None
    raise CodatHTTPError(
        f"HTTP {response.status_code} on {response.request.method} {path}: {error or ''}".rstrip(": "),
        path=path,
        status_code=response.status_code,
        error=error,
    )
