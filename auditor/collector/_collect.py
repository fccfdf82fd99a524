"""Snapshot a whole fleet: about one request per company, as fast as the limiter allows.

Requests per run:

* ``GET /profile/syncSettings`` once;
* ``GET /companies?pageSize=5000`` pages (``dataConnections`` come with each company: no
  per-company connections call);
* ``GET /companies/{id}/dataStatus`` once per company;
* ``GET /companies/{id}/data/history/{latestSyncId}`` only for data types whose current
  status is a sync in progress (so that a stuck sync can be timed), and only when that pull
  operation is not already known: :func:`collect_to_store` reuses the pull operations of the
  previous complete snapshot (a stuck sync keeps its ``latestSyncId`` for days);
* the same request for the latest pull operation of a data type in a sync error, for the
  text ``failed-after-success`` and ``first-sync-failed`` quote: only for incidents new
  tonight, within a nightly budget (``error_details_budget``); an incident still open carries
  the pull operation stored with it (see ``auditor.collector._errors``).
* ``GET /companies/{id}/syncSettings`` for a rolling slice of the fleet: the companies whose
  :func:`settings_day_of` is tonight's (one in ``company_settings_every_days``, 7 by
  default: +1/7 request per company per night); the other companies' latest known overrides
  are carried from the previous complete snapshot with their ``read_at``.

A fixed pool of worker tasks (``concurrency``) pulls companies from one iterator; the
client's shared rate limiter decides when each request may start, so the limiter stays busy
without 100,000 tasks at once. Each finished company goes to a :class:`BatchBuilder`; every
``batch_size`` companies (or ``flush_seconds``) the batch becomes frames and goes to a sink:
a list in memory (:func:`collect`) or the store (:func:`collect_to_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

from auditor.codat import (
    CodatAuthError,
    CodatError,
    CodatQuotaExhaustedError,
    Company,
    CompanySyncSettings,
    DataStatus,
    DataStatusEntryError,
    ParseIssues,
    PullOperation,
    SyncSettings,
)
from auditor.collector._errors import ErrorDetails, default_budget
from auditor.collector._frames import (
    BatchBuilder,
    ErrorRow,
    KnownPullOperations,
    KnownSettings,
    KnownSyncSettings,
    in_progress_syncs,
    sync_settings_frame,
)
from auditor.collector._frames import known_pull_operations as _known_from_frame
from auditor.collector._frames import known_sync_settings as _known_settings_from_frame
from auditor.collector._progress import CollectStats, ProgressMode, report_progress
from auditor.constants import IN_PROGRESS_STATUSES
from auditor.snapshot import SCHEMAS, Snapshot
from auditor.store import (
    SnapshotWriter,
    canonical,
    complete_stranded,
    frame_from_tables,
    list_snapshots,
    load_snapshot,
)
from auditor.store._fs import StoreDir, store_root
from auditor.store._integrity import completable
from auditor.store._snapshots import StorePath, finished_shard

__all__ = [
    "DEFAULT_COMPANY_SETTINGS_EVERY_DAYS",
    "CollectClient",
    "StoreRun",
    "collect",
    "collect_sync",
    "collect_to_store",
    "default_snapshot_id",
    "is_fatal",
    "parse_shard",
    "reads_settings_tonight",
    "settings_day_of",
    "shard_of",
]

log = logging.getLogger("auditor.collector")

Sink = Callable[[dict[str, pd.DataFrame]], Awaitable[None]]

#: Operation ids of the spec, used as ``endpoint`` in the errors frame.
EP_DATA_STATUS = "get-company-data-status"
EP_PULL_OPERATION = "get-pull-operation"
EP_LIST_PULL_OPERATIONS = "list-pull-operations"
#: Codat query selecting the pull operations still running (at most one per data type).
IN_PROGRESS_QUERY = "||".join(f"status={s}" for s in sorted(IN_PROGRESS_STATUSES))
_LIST_PAGE = 100
EP_SYNC_SETTINGS = "get-profile-syncSettings"
EP_COMPANY_SYNC_SETTINGS = "get-company-syncSettings"


class CollectClient(Protocol):
    """What the collector needs from :class:`auditor.codat.CodatClient`."""

    def iter_companies(self, *, page_size: int = ...) -> Any: ...

    async def get_data_status(self, company_id: str) -> dict[str, DataStatus]: ...

    async def get_pull_operation(self, company_id: str, dataset_id: str) -> PullOperation: ...

    async def list_pull_operations(
        self,
        company_id: str,
        *,
        page_size: int = ...,
        query: str | None = ...,
        order_by: str | None = ...,
        max_results: int | None = ...,
    ) -> list[PullOperation]: ...

    async def get_sync_settings(self) -> SyncSettings: ...

    async def get_company_sync_settings(self, company_id: str) -> CompanySyncSettings: ...


def shard_of(company_id: str, shards: int) -> int:
    """The shard (0..shards-1) of a company: blake2b of its id, stable across machines."""
    digest = hashlib.blake2b(company_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


#: Nights between two reads of a company's own sync settings, unless configured.
DEFAULT_COMPANY_SETTINGS_EVERY_DAYS = 7


def settings_day_of(company_id: str, every_days: int) -> int:
    """The night (0..every_days-1) on which a company's own sync settings are read: blake2b
    of its id, salted so that the slices do not line up with the shards of :func:`shard_of`."""
    digest = hashlib.blake2b(company_id.encode(), digest_size=8, person=b"syncset").digest()
    return int.from_bytes(digest, "big") % every_days


def reads_settings_tonight(company_id: str, snapshot_at: datetime, every_days: int) -> bool:
    """Whether the snapshot taken at ``snapshot_at`` reads the company's own sync settings:
    its :func:`settings_day_of` equals the snapshot's UTC day number (days since 1970-01-01)
    modulo ``every_days``. ``every_days`` 1: every night; 0: never."""
    if every_days <= 0:
        return False
    day = (snapshot_at.astimezone(UTC).date() - _EPOCH).days
    return settings_day_of(company_id, every_days) == day % every_days


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).date()


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``; :class:`ValueError` otherwise."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"shard must look like K/N (e.g. 0/3), not {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard {text!r}: need 0 <= K < N")
    return k, n


def default_snapshot_id(snapshot_at: datetime, shard: tuple[int, int] | None = None) -> str:
    """``20240501T020000Z``; for a sharded run ``20240501-3shards`` so all shards agree."""
    at = snapshot_at.astimezone(UTC)
    if shard is not None and shard[1] > 1:
        return f"{at:%Y%m%d}-{shard[1]}shards"
    return f"{at:%Y%m%dT%H%M%SZ}"


def is_fatal(exc: BaseException) -> bool:
    """An error that ends the whole run instead of costing one company: Codat refusing the
    API key (401), or the daily quota spent or down to its reserve
    (:class:`~auditor.codat.CodatQuotaExhaustedError`). Every later request would be refused
    too, and a snapshot of 100,000 "401" or "429" rows is not a night's data: every worker
    stops at once, nothing is committed as complete (the batches already written stay, so
    ``--resume`` continues where it stopped), and the error reaches the caller (the nightly
    job and ``auditor snapshot`` exit 2 with one message)."""
    if isinstance(exc, CodatQuotaExhaustedError):
        return True
    return isinstance(exc, CodatAuthError) and exc.status_code == 401


def _error_row(company: Company | None, exc: BaseException, endpoint: str) -> ErrorRow:
    if isinstance(exc, CodatError):
        return ErrorRow(
            company_id=company.id if company else None,
            company_name=company.name if company else None,
            endpoint=getattr(exc, "endpoint", None) or endpoint,
            status_code=getattr(exc, "status_code", None),
            error=getattr(exc, "error", None) or str(exc),
            correlation_id=getattr(exc, "correlation_id", None),
            attempts=getattr(exc, "attempts", None),
        )
    return ErrorRow(
        company_id=company.id if company else None,
        company_name=company.name if company else None,
        endpoint=endpoint,
        status_code=None,
        error=f"{type(exc).__name__}: {exc}",
        attempts=None,
    )


@dataclass
class _Options:
    page_size: int = 5000
    concurrency: int = 64
    batch_size: int = 1000
    flush_seconds: float = 60.0
    pull_operations: bool = True
    company_settings_every_days: int = DEFAULT_COMPANY_SETTINGS_EVERY_DAYS
    progress: ProgressMode = "auto"
    #: Error-detail requests allowed tonight (None: 3 % of the companies, at least 10; 0: off).
    error_details_budget: int | None = None


class _Run:
    """One collection run over the companies of one shard."""

    def __init__(
        self,
        client: CollectClient,
        *,
        snapshot_at: datetime,
        shard: tuple[int, int] | None,
        skip: frozenset[str],
        sink: Sink,
        options: _Options,
        known_pulls: KnownPullOperations | None = None,
        known_settings: KnownSyncSettings | None = None,
    ) -> None:
        self.client = client
        self.snapshot_at = snapshot_at
        self.shard = shard
        self.skip = skip
        self.sink = sink
        self.opt = options
        self.known_pulls: KnownPullOperations = known_pulls or {}
        self.error_details = ErrorDetails.start(self.known_pulls, 0)
        self.known_settings: KnownSyncSettings = known_settings or {}
        self.stats = CollectStats()
        self._builder = BatchBuilder(snapshot_at)
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()
        self.settings: SyncSettings | None = None
        self.settings_errors: list[ErrorRow] = []
        found = getattr(client, "parse_issues", None)
        self._issues: ParseIssues | None = found if isinstance(found, ParseIssues) else None
        self._issues_before = self._issues.copy() if self._issues is not None else None

    def parse_issues(self) -> ParseIssues:
        """What the client's parsers could not read during this run (fields left missing,
        records skipped); empty for a client that does not count them."""
        if self._issues is None or self._issues_before is None:
            return ParseIssues()
        return self._issues.since(self._issues_before)

    async def run(self) -> None:
        """List the companies and collect them at once, page by page: the list is streamed to
        the workers through a bounded queue (memory follows the queue, not the fleet)."""
        reporter: asyncio.Task[None] | None = None
        n_workers = max(1, self.opt.concurrency)
        queue: asyncio.Queue[Company | None] = asyncio.Queue(
            maxsize=max(self.opt.page_size, 2 * n_workers)
        )
        settings = asyncio.create_task(self._settings())
        tasks: list[asyncio.Task[None]] = []
        try:
            reporter = asyncio.create_task(report_progress(self.stats, self.opt.progress))
            tasks = [asyncio.create_task(self._list(queue, n_workers))]
            tasks += [asyncio.create_task(self._worker(queue)) for _ in range(n_workers)]
            try:
                await asyncio.gather(*tasks)
            except BaseException as exc:
                # A fatal error (see is_fatal) or a cancellation: stop the lister and every
                # worker, and wait until they have stopped, before the error goes up.
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if isinstance(exc, CodatQuotaExhaustedError):
                    # The companies already collected are kept (no request is made for
                    # them again on --resume: the quota is what ran out).
                    await self._flush(force=True)
                raise
            finally:
                await settings
            await self._flush(force=True)
        finally:
            if not settings.done():
                settings.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await settings
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter

    async def _settings(self) -> None:
        try:
            self.stats.requests += 1
            self.settings = await self.client.get_sync_settings()
        except Exception as exc:  # the run goes on without them
            if is_fatal(exc):
                raise
            log.warning("could not read sync settings: %s", exc)
            self.settings_errors.append(_error_row(None, exc, EP_SYNC_SETTINGS))
            self.stats.errors += 1

    async def _list(self, queue: asyncio.Queue[Company | None], n_workers: int) -> None:
        """Put every company to collect on ``queue`` as its page arrives, then one ``None``
        per worker. ``stats.total`` and the error-text budget grow with the list."""
        seen: set[str] = set()
        k, n = self.shard if self.shard is not None else (0, 1)
        budget = self.opt.error_details_budget
        if budget is not None:
            self.error_details.budget = max(0, budget)
        async for company in self.client.iter_companies(page_size=self.opt.page_size):
            self.stats.listed += 1
            cid = company.id
            if cid in seen:
                continue
            seen.add(cid)
            if n > 1 and shard_of(cid, n) != k:
                continue
            if cid in self.skip:
                self.stats.skipped += 1
                continue
            self.stats.total += 1
            if budget is None:  # the default share of the companies listed so far
                self.error_details.budget = default_budget(self.stats.total)
            await queue.put(company)
        self.stats.requests += max(1, -(-self.stats.listed // self.opt.page_size))
        log.info(
            "listed %d companies; collecting %d%s%s",
            self.stats.listed,
            self.stats.total,
            f" (shard {k}/{n})" if n > 1 else "",
            f", {self.stats.skipped} already written" if self.stats.skipped else "",
        )
        for _ in range(n_workers):
            await queue.put(None)

    async def _worker(self, queue: asyncio.Queue[Company | None]) -> None:
        while (company := await queue.get()) is not None:
            await self._company(company)
            self.stats.done += 1
            if (
                self._builder.companies >= self.opt.batch_size
                or time.monotonic() - self._last_flush >= self.opt.flush_seconds
            ):
                await self._flush()

    async def _company(self, company: Company) -> None:
        errors: list[ErrorRow] = []
        statuses: Mapping[str, DataStatus] | None = None
        self.stats.requests += 1
        try:
            statuses = await self.client.get_data_status(company.id)
        except DataStatusEntryError as exc:
            # Some entries unreadable: keep the others, record each bad one.
            statuses = exc.statuses
            for data_type, reason in exc.invalid.items():
                errors.append(
                    ErrorRow(
                        company_id=company.id,
                        company_name=company.name,
                        endpoint=EP_DATA_STATUS,
                        status_code=None,
                        error=f"unreadable dataStatus entry {data_type!r}: {reason}",
                        attempts=exc.attempts,
                    )
                )
        except Exception as exc:  # never lose the run over one company
            if is_fatal(exc):
                raise
            errors.append(_error_row(company, exc, EP_DATA_STATUS))
        pulls: list[PullOperation] = []
        if statuses and self.opt.pull_operations:
            ids = in_progress_syncs(statuses)
            if ids:
                known = self.known_pulls.get(company.id)
                if known:
                    pulls = [known[i] for i in ids if i in known]
                    ids = [i for i in ids if i not in known]
                    self.stats.pulls_reused += len(pulls)
                if ids:
                    pulls += await self._pull_operations(company, ids, errors)
            pulls += await self._error_pull_operations(company, statuses, errors)
        own = await self._own_settings(company, errors)
        if errors:
            self.stats.errors += 1
        self._builder.add_company(company, statuses, pulls, errors, own)

    async def _own_settings(
        self, company: Company, errors: list[ErrorRow]
    ) -> CompanySyncSettings | KnownSettings | None:
        """The company's own sync settings: read tonight if the company is in tonight's
        slice (:func:`reads_settings_tonight`), else (or if the read fails) the latest known
        override carried with its ``read_at``; None when it has none (or reads are off)."""
        every = self.opt.company_settings_every_days
        if every <= 0:
            return None
        known = self.known_settings.get(company.id)
        if reads_settings_tonight(company.id, self.snapshot_at, every):
            self.stats.requests += 1
            self.stats.settings_read += 1
            try:
                return await self.client.get_company_sync_settings(company.id)
            except Exception as exc:
                if is_fatal(exc):
                    raise
                errors.append(_error_row(company, exc, EP_COMPANY_SYNC_SETTINGS))
        if known is not None:
            self.stats.settings_carried += 1
        return known

    async def _error_pull_operations(
        self, company: Company, statuses: Mapping[str, DataStatus], errors: list[ErrorRow]
    ) -> list[PullOperation]:
        """The latest pull operations of the data types in a sync error: carried from the
        previous snapshot, or fetched (one request each) within the night's budget."""
        plan = self.error_details.plan(company.id, statuses)
        found = list(plan.carried)
        if plan.fetch:
            self.stats.requests += len(plan.fetch)
            results = await asyncio.gather(
                *(self.client.get_pull_operation(company.id, i) for i in plan.fetch),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, PullOperation):
                    found.append(result)
                elif isinstance(result, Exception) and not is_fatal(result):
                    errors.append(_error_row(company, result, EP_PULL_OPERATION))
                else:
                    raise result
        return found

    async def _pull_operations(
        self, company: Company, ids: list[str], errors: list[ErrorRow]
    ) -> list[PullOperation]:
        """The pull operations ``ids`` of ``company``: one request whatever their number.

        One id: ``get pull operation``. Several: one page of the company's running pull
        operations (``list pull operations`` with a status query); any id missing from that
        page is then fetched on its own.
        """
        wanted = set(ids)
        found: list[PullOperation] = []
        if len(ids) > 1:
            self.stats.requests += 1
            try:
                page = await self.client.list_pull_operations(
                    company.id,
                    page_size=_LIST_PAGE,
                    query=IN_PROGRESS_QUERY,
                    max_results=_LIST_PAGE,
                )
            except Exception as exc:
                if is_fatal(exc):
                    raise
                log.debug("listing pull operations of %s failed: %s", company.id, exc)
                page = []
            found = [op for op in page if op.id in wanted]
            wanted -= {op.id for op in found}
        rest = [i for i in ids if i in wanted]
        if rest:
            self.stats.requests += len(rest)
            results = await asyncio.gather(
                *(self.client.get_pull_operation(company.id, i) for i in rest),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, PullOperation):
                    found.append(result)
                elif isinstance(result, Exception) and not is_fatal(result):
                    errors.append(_error_row(company, result, EP_PULL_OPERATION))
                elif isinstance(result, Exception):
                    raise result
                else:
                    raise result
        return found

    async def _flush(self, *, force: bool = False) -> None:
        builder = self._builder
        if builder.companies == 0 and not force:
            return
        if builder.companies == 0 and not self.settings_errors:
            return
        self._builder = BatchBuilder(self.snapshot_at)
        self._last_flush = time.monotonic()
        if self.settings_errors:
            for err in self.settings_errors:
                builder.add_error(err)
            self.settings_errors = []
        async with self._flush_lock:
            frames = await asyncio.to_thread(builder.build)
            await self.sink(frames)


def _meta(run: _Run) -> dict[str, Any]:
    stats = run.stats
    issues = run.parse_issues()
    if issues.malformed_fields or issues.skipped_records:
        log.warning(
            "Codat sent data that could not be read: %d fields left missing (%s), "
            "%d records skipped (%s)",
            issues.malformed_fields.total(),
            _top(issues.malformed_fields),
            issues.skipped_records.total(),
            _top(issues.skipped_records),
        )
    return {
        "companies_listed": stats.listed,
        "companies_collected": stats.done,
        "companies_skipped": stats.skipped,
        "companies_with_errors": stats.errors,
        "requests": stats.requests,
        "pull_operations_reused": stats.pulls_reused,
        "error_details_fetched": run.error_details.fetched,
        "error_details_carried": run.error_details.carried,
        "error_details_over_budget": run.error_details.over_budget,
        "company_settings_read": stats.settings_read,
        "company_settings_carried": stats.settings_carried,
        "elapsed_seconds": round(stats.elapsed, 3),
        # What could not be read (docs/collector.md): {"company.name": 3, ...} and
        # {"company": 1, ...}; empty mappings on a clean night.
        **issues.as_meta(),
    }


def _top(counts: Mapping[str, int], n: int = 5) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k}: {v}" for k, v in items[:n])
    return text + (", ..." if len(items) > n else "") if text else "none"


async def collect(
    client: CollectClient,
    *,
    snapshot_at: datetime,
    snapshot_id: str | None = None,
    shard: tuple[int, int] | None = None,
    page_size: int = 5000,
    concurrency: int = 64,
    batch_size: int = 1000,
    pull_operations: bool = True,
    company_settings_every_days: int = DEFAULT_COMPANY_SETTINGS_EVERY_DAYS,
    progress: ProgressMode = "off",
    known_pull_operations: KnownPullOperations | pd.DataFrame | None = None,
    error_details_budget: int | None = None,
    known_sync_settings: KnownSyncSettings | pd.DataFrame | None = None,
) -> Snapshot:
    """Snapshot every company (of ``shard`` = ``(K, N)``, if given) into memory.

    ``concurrency`` worker tasks share the client's rate limiter. A company whose requests
    fail after the client's retries becomes a row of the ``errors`` frame; the run goes on,
    except when Codat refuses the API key (401) or the daily quota is spent (see
    :func:`is_fatal`): every worker stops and the error is raised (nothing is committed as
    complete).
    ``company_settings_every_days`` (N, default 7): each night reads the own sync settings
    of the companies in tonight's slice (:func:`reads_settings_tonight`, about 1/N of the
    fleet: +1/N request per company) and keeps those that override the defaults; 1 reads
    every company, 0 none. ``known_sync_settings`` (``{company_id: KnownSettings}`` or a
    ``sync_settings`` frame such as the previous snapshot's): the latest known overrides of
    the companies not read tonight, carried into this snapshot with their ``read_at``.
    ``known_pull_operations`` (``{company_id: {dataset_id: PullOperation}}``, or a
    ``pull_operations`` frame such as the previous snapshot's): a data type in progress whose
    ``latestSyncId`` is known takes its ``requested`` time from there, and the operation is
    carried into this snapshot's ``pull_operations``, without a request; so is the error pull
    operation of a data type still in error. ``error_details_budget``: how many pull
    operations of sync errors new tonight may be fetched for their error text (None: 3 % of
    the companies, at least 10; 0: none).
    Frames come back in canonical form (see :func:`auditor.store.canonical`).
    """
    if snapshot_at.tzinfo is None:
        raise ValueError("snapshot_at must be timezone-aware")
    at = snapshot_at.astimezone(UTC)
    # Batches are kept as Arrow tables and turned into one DataFrame per frame at the end
    # without a second copy (see auditor.store.frame_from_tables).
    parts: dict[str, list[pa.Table]] = {}

    def to_arrow(frames: dict[str, pd.DataFrame]) -> None:
        for name, frame in frames.items():
            if len(frame):
                parts.setdefault(name, []).append(pa.Table.from_pandas(frame, preserve_index=False))

    async def sink(frames: dict[str, pd.DataFrame]) -> None:
        await asyncio.to_thread(to_arrow, frames)

    run = _Run(
        client,
        snapshot_at=at,
        shard=shard,
        skip=frozenset(),
        sink=sink,
        known_pulls=(
            _known_from_frame(known_pull_operations)
            if isinstance(known_pull_operations, pd.DataFrame)
            else known_pull_operations
        ),
        known_settings=(
            _known_settings_from_frame(known_sync_settings)
            if isinstance(known_sync_settings, pd.DataFrame)
            else known_sync_settings
        ),
        options=_Options(
            page_size=page_size,
            concurrency=concurrency,
            batch_size=batch_size,
            flush_seconds=float("inf"),
            pull_operations=pull_operations,
            company_settings_every_days=company_settings_every_days,
            progress=progress,
            error_details_budget=error_details_budget,
        ),
    )
    await run.run()
    frames: dict[str, pd.DataFrame] = {}
    overrides = parts.pop("sync_settings", [])
    to_arrow({"sync_settings": sync_settings_frame(run.settings, read_at=at)})
    parts.setdefault("sync_settings", []).extend(overrides)  # the profile's rows first
    for name, schema in SCHEMAS.items():
        got = parts.pop(name, [])
        merged = frame_from_tables(got) if got else pd.DataFrame({c: [] for c in schema})
        frames[name] = canonical(merged, schema)
        del merged
    meta = _meta(run)
    if shard is not None:
        meta["shard"] = f"{shard[0]}/{shard[1]}"
    return Snapshot(
        snapshot_id=snapshot_id or default_snapshot_id(at, shard),
        snapshot_at=at,
        meta=meta,
        **frames,
    )


def collect_sync(client: CollectClient, **kwargs: Any) -> Snapshot:
    """:func:`collect` for synchronous callers (runs its own event loop)."""
    return asyncio.run(collect(client, **kwargs))


@dataclass(frozen=True)
class StoreRun:
    """What :func:`collect_to_store` did."""

    snapshot_id: str
    path: StoreDir
    complete: bool
    shard: tuple[int, int]
    companies_collected: int
    companies_skipped: int
    companies_with_errors: int
    requests: int
    elapsed_seconds: float
    pull_operations_reused: int = 0
    #: Companies whose own sync settings were read tonight (the rolling slice).
    company_settings_read: int = 0
    #: Companies whose override was carried from the previous snapshot (not read tonight).
    company_settings_carried: int = 0
    #: Fields Codat sent that could not be read and were left missing, by ``kind.field``.
    malformed_fields: Mapping[str, int] = field(default_factory=dict)
    #: Records skipped because they could not be identified (no usable id), by kind.
    skipped_records: Mapping[str, int] = field(default_factory=dict)


def _unfinished(store: StoreDir, shard: tuple[int, int]) -> pd.Series:
    snaps = list_snapshots(store)
    todo = snaps.loc[~snaps["complete"] & (snaps["shards"] == shard[1])]
    keep = []
    for row in todo.itertuples(index=False):
        path = store_root(str(row.path))
        done = path / "_shards" / f"s{shard[0]}of{shard[1]}.json"
        keep.append(not done.exists() or completable(path))
    return todo.loc[keep, "snapshot_id"] if keep else todo["snapshot_id"]


def _previous_known(
    store: StoreDir, snapshot_id: str, snapshot_at: datetime, *, pulls: bool, settings: bool
) -> tuple[KnownPullOperations, KnownSyncSettings]:
    """The pull operations (if ``pulls``) and company sync-settings overrides (if
    ``settings``) of the latest complete snapshot taken before ``snapshot_at`` (other than
    ``snapshot_id``), by company; empty if there is none or it cannot be read."""
    frames = (*(("pull_operations",) if pulls else ()), *(("sync_settings",) if settings else ()))
    if not frames:
        return {}, {}
    snaps = list_snapshots(store, include_incomplete=False)
    before = snaps.loc[(snaps["snapshot_id"] != snapshot_id) & (snaps["snapshot_at"] < snapshot_at)]
    if before.empty:
        return {}, {}
    previous = str(before["snapshot_id"].iloc[-1])
    try:
        snap = load_snapshot(store, previous, frames=frames)
    except Exception as exc:  # a damaged old snapshot costs requests, never the run
        log.warning("could not read the %s of snapshot %s: %s", " and ".join(frames), previous, exc)
        return {}, {}
    known = _known_from_frame(snap.pull_operations) if pulls else {}
    overrides = _known_settings_from_frame(snap.sync_settings) if settings else {}
    log.info(
        "%d pull operations and %d company sync-settings overrides known from snapshot %s",
        sum(len(v) for v in known.values()),
        len(overrides),
        previous,
    )
    return known, overrides


def _finished_run(root: StoreDir, sid: str, shard: tuple[int, int]) -> StoreRun | None:
    """This shard of ``sid`` already finished (a run killed after its shard record): nothing
    to collect; the snapshot is completed if every shard has finished."""
    done = finished_shard(root, sid, shard)
    if done is None:
        return None
    path, complete, meta = done

    def count(key: str) -> int:
        value = meta.get(key, 0)
        return int(value) if isinstance(value, int | float) else 0

    log.info(
        "snapshot %s shard %d/%d had already finished; %s",
        sid,
        shard[0],
        shard[1],
        "completed its manifest" if complete else "waiting for the other shards",
    )
    return StoreRun(
        snapshot_id=sid,
        path=path,
        complete=complete,
        shard=shard,
        companies_collected=0,
        companies_skipped=count("companies_collected") + count("companies_skipped"),
        companies_with_errors=count("companies_with_errors"),
        requests=0,
        elapsed_seconds=0.0,
    )


async def collect_to_store(
    client: CollectClient,
    store: StorePath,
    *,
    snapshot_at: datetime | None = None,
    snapshot_id: str | None = None,
    resume: bool = False,
    shard: tuple[int, int] | None = None,
    page_size: int = 5000,
    concurrency: int = 64,
    batch_size: int = 1000,
    flush_seconds: float = 60.0,
    pull_operations: bool = True,
    company_settings_every_days: int = DEFAULT_COMPANY_SETTINGS_EVERY_DAYS,
    progress: ProgressMode = "auto",
    reuse_pull_operations: bool = True,
    error_details_budget: int | None = None,
) -> StoreRun:
    """Snapshot the fleet into ``store`` batch by batch; resumable and shardable.

    * ``snapshot_id`` given and unfinished in the store: continue it (companies already
      written are skipped; the original ``snapshot_at`` is kept).
    * ``resume`` without ``snapshot_id``: continue the latest unfinished snapshot (of the
      same shard count); :class:`LookupError` if there is none.
    * ``company_settings_every_days`` (N, default 7): read the own sync settings of tonight's
      slice of companies (:func:`reads_settings_tonight`: each company once every N nights,
      +1/N request per company per night); those that override the defaults go into
      ``sync_settings`` with ``read_at`` = this snapshot's time, and the other companies'
      overrides are carried from the previous complete snapshot with their own ``read_at``.
      1: every company every night; 0: never (no company overrides in the snapshot).
    * ``shard`` = ``(K, N)``: collect only companies with :func:`shard_of` == K; the snapshot
      becomes complete (manifest written) when the last of the N shards finishes.
    * ``reuse_pull_operations``: take the pull operations of the previous complete snapshot
      (its ``pull_operations`` frame) as known, so that a sync still in progress with the
      same ``latestSyncId`` (a stuck sync) costs no request; only syncs that started since
      then are fetched; the error pull operations of incidents still open are carried
      the same way.
    * ``error_details_budget``: pull operations of sync errors new tonight fetched for their
      error text (None: 3 % of the companies, at least 10; 0: none).
    """
    root = store_root(store)
    k_n = shard if shard is not None else (0, 1)
    at = (snapshot_at or datetime.now(UTC)).astimezone(UTC)
    if resume and snapshot_id is None:
        candidates = _unfinished(root, k_n)
        if candidates.empty:
            raise LookupError(f"no unfinished snapshot to resume in {root}")
        snapshot_id = str(candidates.iloc[-1])
    sid = snapshot_id or default_snapshot_id(at, shard)
    finished = _finished_run(root, sid, k_n)
    if finished is not None:
        return finished
    complete_stranded(root)  # other nights killed between their last shard record and manifest
    writer = SnapshotWriter.open(root, snapshot_id=sid, snapshot_at=at, shard=k_n, resume=True)
    try:

        async def sink(frames: dict[str, pd.DataFrame]) -> None:
            await asyncio.to_thread(writer.write_batch, frames)

        known_pulls, known_settings = _previous_known(
            root,
            sid,
            writer.snapshot_at,
            pulls=pull_operations and reuse_pull_operations,
            settings=company_settings_every_days > 0,
        )
        run = _Run(
            client,
            snapshot_at=writer.snapshot_at,
            shard=shard,
            skip=writer.done_company_ids,
            sink=sink,
            known_pulls=known_pulls,
            known_settings=known_settings,
            options=_Options(
                page_size=page_size,
                concurrency=concurrency,
                batch_size=batch_size,
                flush_seconds=flush_seconds,
                pull_operations=pull_operations,
                company_settings_every_days=company_settings_every_days,
                progress=progress,
                error_details_budget=error_details_budget,
            ),
        )
        await run.run()
        writer.write_profile_settings(sync_settings_frame(run.settings, read_at=writer.snapshot_at))
        meta = _meta(run)
        complete = writer.finish(meta)
    finally:
        writer.close()
    log.info(
        "snapshot %s shard %d/%d written to %s (%s)",
        sid,
        k_n[0],
        k_n[1],
        writer.path,
        "complete" if complete else "waiting for the other shards",
    )
    return StoreRun(
        snapshot_id=sid,
        path=writer.path,
        complete=complete,
        shard=k_n,
        companies_collected=run.stats.done,
        companies_skipped=run.stats.skipped,
        companies_with_errors=run.stats.errors,
        requests=run.stats.requests,
        elapsed_seconds=round(run.stats.elapsed, 3),
        pull_operations_reused=run.stats.pulls_reused,
        company_settings_read=run.stats.settings_read,
        company_settings_carried=run.stats.settings_carried,
        malformed_fields=meta["malformed_fields"],
        skipped_records=meta["skipped_records"],
    )
