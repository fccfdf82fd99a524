"""Request counters of a sandbox (``SandboxStats``): per endpoint, per status, faults."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

__all__ = ["SandboxStats"]


class SandboxStats:
    """Request counters, thread-safe: per endpoint (operationId), per status, faults injected,
    429s by limit (daily quota or per-minute ceiling).

    Requests the router does not know count under endpoint ``"unknown"``. A request answered
    by no response (connection reset, hang) counts under status 0.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_endpoint_status: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[str] = Counter()
        self._limited: Counter[str] = Counter()
        self._first_limited: dict[str, float] = {}

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._by_endpoint[endpoint] += 1
            self._by_status[status] += 1
            self._by_endpoint_status[(endpoint, status)] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def record_limited(self, kind: str) -> None:
        """A 429 of one of the two limits: ``"daily-quota"`` or ``"per-minute"``."""
        with self._lock:
            self._limited[kind] += 1
            self._first_limited.setdefault(kind, time.monotonic())

    def reset(self) -> None:
        with self._lock:
            self._limited.clear()
            self._first_limited.clear()
            self._by_endpoint.clear()
            self._by_status.clear()
            self._by_endpoint_status.clear()
            self._faults.clear()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._by_endpoint.values())

    @property
    def by_endpoint(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_endpoint)

    @property
    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def by_endpoint_status(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._by_endpoint_status)

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def limited(self) -> dict[str, int]:
        """429 answers by limit: ``daily-quota`` (the quota spent), ``per-minute`` (the ceiling)."""
        with self._lock:
            return dict(self._limited)

    @property
    def first_limited(self) -> dict[str, float]:
        """``time.monotonic()`` of the first 429 of each limit (tests time a stop with it)."""
        with self._lock:
            return dict(self._first_limited)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-friendly copy of every counter."""
        with self._lock:
            return {
                "total": sum(self._by_endpoint.values()),
                "by_endpoint": dict(self._by_endpoint),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "by_endpoint_status": {
                    f"{e} {s}": n for (e, s), n in sorted(self._by_endpoint_status.items())
                },
                "faults": dict(self._faults),
                "limited": dict(self._limited),
            }

    def __repr__(self) -> str:
        return f"SandboxStats({self.snapshot()!r})"
