"""``auditor listen``: receive Codat's webhooks into the store's event log until stopped."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from filelock import FileLock, Timeout
from pydantic import ValidationError

from auditor.cli._app import app
from auditor.cli._common import load_config_or_exit, settings_or_exit
from auditor.cli._echo import echo
from auditor.cli.options import (
    DEFAULT_LOG_FORMAT,
    ConfigOption,
    LogFormatOption,
    StoreOption,
)
from auditor.config import AuditConfig
from auditor.email_settings import SmtpSettings
from auditor.links import DEFAULT_LINK_HOSTS
from auditor.listen import (
    DEFAULT_MAX_BODY,
    EVENTS_DIR,
    ListenerBusyError,
    ListenerOptions,
    ListenerServer,
    WebhookSecretError,
    check_secret,
    compact,
    serve,
)
from auditor.logs import configure_logging, register_secret
from auditor.notify.forward import Forwarder

__all__ = ["SECRET_ENV", "listen"]


def _forwarder(config: AuditConfig, store: Path) -> Forwarder | None:
    """The intraday forwarder of ``[[notify.forward]]``, or None when there is no route."""
    if not (config.notify.enabled and config.notify.forward):
        return None
    relink = config.rule_options("needs-relink")
    smtp = None
    if any(route.email for route in config.notify.forward):
        try:  # read once, at start: a bad SMTP_* variable is a configuration error (exit 2)
            smtp = SmtpSettings()
        except ValidationError as exc:
            fields = ", ".join(f"SMTP_{'_'.join(map(str, e['loc'])).upper()}" for e in exc.errors())
            echo(f"error: invalid SMTP settings in the environment: {fields}", err=True)
            raise typer.Exit(2) from None
    return Forwarder(
        config.notify,
        store,
        email=config.email,
        smtp=smtp,
        display_tz=config.timezone,
        link_hosts=tuple(getattr(relink, "link_hosts", DEFAULT_LINK_HOSTS)),
    )

#: The environment variable holding the endpoint's Svix signing secret (``whsec_...``).
SECRET_ENV = "CODAT_WEBHOOK_SECRET"  # noqa: S105 - the variable name, not a secret


@app.command()
def listen(
    store: StoreOption = None,
    config: ConfigOption = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")
    ] = 8787,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1024, help="Largest body accepted, bytes (else 413).")
    ] = DEFAULT_MAX_BODY,
    dedup_days: Annotated[
        int,
        typer.Option(
            "--dedup-days", min=2, help="Days of stored ids reloaded at start to de-duplicate."
        ),
    ] = 7,
    compact_only: Annotated[
        bool,
        typer.Option(
            "--compact-only", help="Compact closed days into Parquet and exit (no server)."
        ),
    ] = False,
    log_format: LogFormatOption = DEFAULT_LOG_FORMAT,
) -> None:
    """Receive Codat webhooks (Svix-signed; secret in CODAT_WEBHOOK_SECRET) into STORE/events.

    The store is resolved as for every command (--store, AUDITOR_STORE, [run] store, ./store).

    Each event is acknowledged only once it is fsync'ed; redeliveries are de-duplicated by
    webhook-id. SIGTERM/Ctrl-C stop gracefully. Exit 2: bad secret, store or port."""
    loaded = load_config_or_exit(config)
    resolved = settings_or_exit(loaded, store=store).store
    if not isinstance(resolved, Path):  # an append-only, fsync'ed log needs a file system
        echo(
            f"error: the listener's event log needs a local directory, not {resolved}: give "
            "the listener its own volume (--store /data/store); the nightly job can still "
            "use the object store",
            err=True,
        )
        raise typer.Exit(2)
    local: Path = resolved
    configure_logging(
        run_id=f"listen-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}", fmt=log_format
    )
    if compact_only:
        lock_path = local / EVENTS_DIR / ".listen.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(lock_path), timeout=0):
                done = compact(local)
        except Timeout:
            echo(
                "error: a listener is running on this store (it compacts closed days itself)",
                err=True,
            )
            raise typer.Exit(2) from None
        for day, events in done.items():
            echo(f"compacted {day}: {events} events")
        return
    secret = os.environ.get(SECRET_ENV, "")
    register_secret(secret)
    try:
        check_secret(secret)
    except WebhookSecretError as exc:
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    options = ListenerOptions(max_body_bytes=max_body, dedup_days=dedup_days)
    server = ListenerServer(
        local, secret, host=host, port=port, options=options, sink=_forwarder(loaded, local)
    )
    ready = asyncio.Event()

    async def main() -> int:
        task = asyncio.create_task(serve(server, ready=ready))
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            # One line on stdout that scripts (and the tests) wait for: the bound address.
            echo(f"listening on {server.url}")
        else:
            ready_wait.cancel()
        return await task

    try:
        code = asyncio.run(main())
    except ListenerBusyError as exc:
        echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    if code:
        raise typer.Exit(code)
