"""Shared fixtures. Keep this small and generic; area-specific fixtures live in test files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor.sandbox import Fleet, SandboxOptions, SandboxServer, generate_fleet, load_fleet

#: The moment fixture fleets describe (``tests/fixtures/fleet_small.json`` uses it too).
FLEET_NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"

StartSandbox = Callable[..., SandboxServer]


@pytest.fixture
def fleet_now() -> datetime:
    """The ``now`` of the fixture fleets (2024-05-01 06:00 UTC)."""
    return FLEET_NOW


@pytest.fixture
def small_fleet() -> Fleet:
    """``tests/fixtures/fleet_small.json``: six hand-made companies (one carries doc quirks)."""
    return load_fleet(FIXTURES / "fleet_small.json")


@pytest.fixture
def sandbox_server() -> Iterator[StartSandbox]:
    """Factory: ``sandbox_server(fleet=None, options=None, **option_kwargs) -> SandboxServer``.

    Starts a real sandbox on a free loopback port (default fleet: 50 generated companies,
    seed 1, ``FLEET_NOW``) and closes every server it started after the test. Works in sync
    and async tests (the server has its own thread and event loop).
    """
    started: list[SandboxServer] = []

    def start(
        fleet: Fleet | None = None, options: SandboxOptions | None = None, **option_kwargs: Any
    ) -> SandboxServer:
        if options is not None and option_kwargs:
            raise TypeError("pass either options or option keyword arguments, not both")
        served = fleet if fleet is not None else generate_fleet(50, seed=1, now=FLEET_NOW)
        server = SandboxServer(served, options or SandboxOptions(**option_kwargs))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
