"""A real ``auditor listen`` process on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["start_listener"]


def start_listener(
    store: Path,
    log: Path,
    *,
    secret: str,
    python_args: Sequence[str] = (),
    timeout: float = 60.0,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python [python_args] -m auditor listen --store STORE --port 0`` (JSON logs
    appended to ``log``) and return the process and the URL it listens on, once it says so.

    Raises ``RuntimeError`` (with the log) when it has not started within ``timeout`` s."""
    env = {**os.environ, "CODAT_WEBHOOK_SECRET": secret}
    argv = [sys.executable, *python_args, "-m", "auditor", "listen", "--store", str(store),
            "--port", "0", "--log-format", "json"]  # fmt: skip
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        argv, stdout=subprocess.PIPE, stderr=log.open("a"), env=env, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("listening on "):
                return proc, line.split()[-1]
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise RuntimeError(f"listener did not start:\n{log.read_text()}")
