"""The nightly job: snapshot -> audit -> reports -> email, with a lock and exit codes.

Exit codes (dbt convention)
---------------------------
``0``  the run worked and no finding crossed the fail level;
``1``  the run worked and findings crossed the fail level (``--fail-on``);
``2``  the run itself failed: configuration, authentication, store, lock held by another run,
       no company reachable, a rule that raised instead of answering, or a fleet-wide input
       that could not be read (the client's sync settings): the report and the digest are
       still written and sent, and say at the top what is missing. Also: the email digest
       or a notification (Slack, Teams, webhook) could not be delivered.

Fail levels (``fail_on``): ``never``; ``warning`` (any finding); ``error`` (any error);
``new-warning`` (any finding new or regressed tonight); ``new-error`` (default: an error
finding that was not there last night, so cron mails only when something broke). Snoozed
findings never count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import filelock

from auditor.codat import (
    CodatAuthError,
    CodatClient,
    CodatError,
    CodatQuotaExhaustedError,
    RateLimitPolicy,
    RetryPolicy,
)
from auditor.collector import (
    DEFAULT_COMPANY_SETTINGS_EVERY_DAYS,
    ProgressMode,
    StoreRun,
    collect_to_store,
)
from auditor.config import (
    DEFAULT_QUOTA_RESERVE,
    DEFAULT_QUOTA_RETRY_AFTER_BOUND,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    AuditConfig,
    FailOn,
)
from auditor.engine import SnoozesArg
from auditor.logs import redact
from auditor.notify import NotifyOutcome, deliver_notifications
from auditor.pipeline import AuditRefusedError, AuditRun, audit_store
from auditor.report import DigestOutcome, DigestSendError, SmtpSettings, deliver_digests
from auditor.result import AuditResult
from auditor.store import StoreError
from auditor.store._fs import StoreDir, ensure_dir
from auditor.store._lock import LockHeldError, store_lock

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "LOCK_FILE",
    "NightlyOutcome",
    "RunFailedError",
    "crosses_fail_level",
    "run_nightly",
]

log = logging.getLogger("auditor.nightly")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_RUN_FAILED = 2
LOCK_FILE = ".auditor.lock"


class RunFailedError(RuntimeError):
    """The run itself failed (exit code 2). The message says why, without secrets.

    ``collected`` is what the collector did when the run failed after collecting (else None),
    ``client_stats`` and ``stages`` as in :class:`NightlyOutcome`, for results.json and the
    metrics of a failed run.
    """

    def __init__(
        self,
        message: str,
        *,
        collected: StoreRun | None = None,
        client_stats: Mapping[str, Mapping[str, int]] | None = None,
        stages: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(message)
        self.collected = collected
        self.client_stats: Mapping[str, Mapping[str, int]] = client_stats or {}
        self.stages: Mapping[str, float] = stages or {}


@dataclass(frozen=True)
class NightlyOutcome:
    """What one nightly run did, and the exit code it earns."""

    run_id: str
    exit_code: int
    collected: StoreRun
    audit: AuditRun | None = None
    digests: list[DigestOutcome] = field(default_factory=list)
    reason: str = ""
    #: The Slack / Teams / webhook messages (:mod:`auditor.notify`); a failed one exits 2.
    notifications: list[NotifyOutcome] = field(default_factory=list)
    #: The client's counters (:meth:`auditor.codat.ClientStats.as_dict`): requests, retries,
    #: rate_limited (429s), failures, by endpoint and ``total``.
    client_stats: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: Seconds per stage that ran: ``collect``, ``audit`` (with the reports), ``deliver``.
    stages: Mapping[str, float] = field(default_factory=dict)


def crosses_fail_level(result: AuditResult, fail_on: FailOn) -> bool:
    """Whether the unsnoozed findings of ``result`` reach ``fail_on``."""
    active = result.active
    if fail_on == "never" or active.empty:
        return False
    errors = active["severity"].astype("string").eq("error")
    fresh = active["state"].astype("string").isin(["new", "regressed"])
    if fail_on == "warning":
        return True
    if fail_on == "error":
        return bool(errors.any())
    if fail_on == "new-warning":
        return bool(fresh.any())
    return bool((errors & fresh).any())


async def _collect(
    api_key: str,
    *,
    base_url: str,
    store: StoreDir,
    snapshot_at: datetime,
    shard: tuple[int, int] | None,
    rate_limit: float | None,
    retry: RetryPolicy | None,
    timeout: float,
    progress: ProgressMode,
    quota_reserve: float = DEFAULT_QUOTA_RESERVE,
    quota_retry_after_bound: float = DEFAULT_QUOTA_RETRY_AFTER_BOUND,
    company_settings_every_days: int | None = None,
) -> tuple[StoreRun, dict[str, dict[str, int]]]:
    async with CodatClient(
        api_key,
        base_url=base_url,
        rate_limit=RateLimitPolicy(
            requests_per_minute=rate_limit,
            quota_reserve=quota_reserve,
            quota_retry_after_bound=quota_retry_after_bound,
        ),
        retry=retry,
        timeout=timeout,
    ) as client:
        collected = await collect_to_store(
            client,
            store,
            snapshot_at=snapshot_at,
            shard=shard,
            progress=progress,
            company_settings_every_days=(
                DEFAULT_COMPANY_SETTINGS_EVERY_DAYS
                if company_settings_every_days is None
                else company_settings_every_days
            ),
        )
        return collected, client.stats.as_dict()


def run_nightly(
    *,
    api_key: str,
    base_url: str,
    store: StoreDir,
    out_dir: Path,
    config: AuditConfig,
    as_of: datetime,
    run_id: str,
    snoozes: SnoozesArg = None,
    dry_run: bool = False,
    shard: tuple[int, int] | None = None,
    fail_on: FailOn | None = None,
    rate_limit: float | None = DEFAULT_RATE_LIMIT,
    retry: RetryPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: ProgressMode = "auto",
    quota_reserve: float = DEFAULT_QUOTA_RESERVE,
    quota_retry_after_bound: float = DEFAULT_QUOTA_RETRY_AFTER_BOUND,
    notify: bool = True,
) -> NightlyOutcome:
    """One nightly run. Raises :class:`RunFailedError` when the run itself fails.

    With ``shard=(K, N)`` this machine collects shard K; the shard that completes the night's
    snapshot goes on to audit, report and email, the others stop after collecting (exit 0).
    ``dry_run`` writes the digest as ``digest.eml`` next to the report instead of sending it,
    and each notification as ``notify-<channel>-<n>.json``; ``notify=False`` sends none.
    Notifications go first (one failing never stops the others or the email); a failed one
    makes the run exit 2, its reason naming the route (never the URL).
    Codat's daily quota spent (or down to ``quota_reserve``, see
    :class:`~auditor.codat.RateLimitPolicy`) stops the run with one :class:`RunFailedError`
    naming the reset time; the unfinished snapshot stays resumable.
    """
    ensure_dir(store)
    lock_name = LOCK_FILE if shard is None else f"{LOCK_FILE}.shard-{shard[0]}-of-{shard[1]}"
    # A lock file locally; on an object store a renewed lease (conditional PUT).
    lock = store_lock(store / lock_name)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout as exc:
        held = f" ({exc.holder})" if isinstance(exc, LockHeldError) and exc.holder else ""
        raise RunFailedError(
            f"another run holds the lock {store / lock_name}{held}; not starting a second one"
        ) from None
    stages: dict[str, float] = {}
    try:
        started = time.monotonic()
        try:
            collected, stats = asyncio.run(
                _collect(
                    api_key,
                    base_url=base_url,
                    store=store,
                    snapshot_at=as_of,
                    shard=shard,
                    rate_limit=rate_limit,
                    retry=retry,
                    timeout=timeout,
                    progress=progress,
                    quota_reserve=quota_reserve,
                    quota_retry_after_bound=quota_retry_after_bound,
                    company_settings_every_days=config.run.company_settings_every_days,
                )
            )
        except CodatQuotaExhaustedError as exc:  # one message, not one per company
            raise RunFailedError(
                f"{exc.message}. The night's snapshot stopped unfinished (no audit on a part "
                "of the fleet); `auditor snapshot --resume` completes it once the quota has "
                "reset."
            ) from None
        except CodatAuthError as exc:
            raise RunFailedError(f"Codat refused the API key: {exc}") from None
        except CodatError as exc:
            raise RunFailedError(f"could not list companies: {exc}") from None
        except (OSError, ValueError, LookupError, StoreError) as exc:
            raise RunFailedError(f"store error: {exc}") from None
        stages["collect"] = time.monotonic() - started

        def failed(message: str) -> RunFailedError:
            return RunFailedError(
                message, collected=collected, client_stats=stats, stages=stages
            )

        reachable = collected.companies_collected + collected.companies_skipped
        if reachable > 0 and collected.companies_with_errors >= reachable:
            raise failed(f"no company reachable: all {reachable} companies failed to collect")
        if not collected.complete:
            log.info("shard %s collected; the night completes with the last shard", shard)
            return NightlyOutcome(
                run_id,
                EXIT_OK,
                collected,
                reason="shard collected, waiting for other shards",
                client_stats=stats,
                stages=stages,
            )
        started = time.monotonic()
        try:
            run = audit_store(
                store,
                which=collected.snapshot_id,
                config=config,
                as_of=as_of,
                snoozes=snoozes,
                out_dir=out_dir,
            )
        except (OSError, StoreError, LookupError, AuditRefusedError) as exc:
            raise failed(f"store error: {exc}") from None
        stages["audit"] = time.monotonic() - started
        started = time.monotonic()
        notified: list[NotifyOutcome] = []
        notify_bug: str | None = None
        try:
            if notify:
                notified = deliver_notifications(
                    run.result,
                    config.notify,
                    fleet=run.fleet,
                    display_tz=config.timezone,
                    out_dir=out_dir,
                    dry_run=dry_run,
                    actions=run.actions,
                )
        except Exception as exc:  # a bug in a layout must not cost tonight's email
            notify_bug = redact(f"could not build the notifications: {type(exc).__name__}: {exc}")
            log.exception("%s", notify_bug)
        try:
            digests = deliver_digests(
                run.result,
                out_dir,
                email=config.email,
                # A dry run never sends: with no host, the digest is written as digest.eml.
                smtp=SmtpSettings(host=None) if dry_run else None,
                report_paths=run.reports,
                display_tz=config.timezone,
                fleet=run.fleet,
                now=as_of,
                actions=run.actions,
                refreshes=run.refreshes,
                connections=run.snapshot.companies,
            )
        except (DigestSendError, OSError) as exc:
            raise failed(f"the email digest could not be sent: {exc}") from None
        stages["deliver"] = time.monotonic() - started
        level = fail_on or config.fail_on
        crossed = crosses_fail_level(run.result, level)
        code = EXIT_FINDINGS if crossed else EXIT_OK
        reason = f"findings at or above fail level {level!r}" if crossed else "ok"
        if run.result.incomplete:
            code = EXIT_RUN_FAILED
            reason = "; ".join(
                [f.describe() for f in run.result.rule_failures] + run.result.missing_inputs
            )
            log.error("run %s: the audit is incomplete: %s", run_id, reason)
        failed_notes = [n.error for n in notified if n.error is not None]
        failed_notes += [notify_bug] if notify_bug is not None else []
        if failed_notes:
            code = EXIT_RUN_FAILED
            note_reason = "notification failed: " + "; ".join(failed_notes)
            reason = note_reason if reason == "ok" else f"{reason}; {note_reason}"
        log.info("run %s finished: exit %d (%s)", run_id, code, reason)
        return NightlyOutcome(
            run_id,
            code,
            collected,
            run,
            digests,
            reason,
            notified,
            client_stats=stats,
            stages=stages,
        )
    finally:
        lock.release()
