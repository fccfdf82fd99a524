"""The store's webhook event log: append-only, fsync'ed, one partition per UTC day.

Layout (see ``docs/listen.md``)::

    STORE/events/date=YYYY-MM-DD/log-<opened>-<pid>.jsonl   one segment per listener run and day
    STORE/events/date=YYYY-MM-DD/part-00000.parquet          the day compacted, once it is closed

A segment line is ``<crc32 of JSON, 8 hex digits> <JSON>\\n`` where the JSON is
``{"id": <webhook-id>, "received_at": <ISO-8601>, "body": <raw request body>}``. A line is
only trusted when it ends in ``\\n`` and its CRC matches: the tail a kill tore off a write
that was never fsync'ed (so never acknowledged) is skipped by every reader.

:class:`EventLog` is the writer. Requests call :meth:`EventLog.append`, which returns only
once the event is on disk (``write`` + ``fdatasync``); one writer task writes and syncs
whatever has queued up while the previous sync ran (group commit), so the cost of a sync
is shared by every request that arrived during it. Ids already stored (rebuilt from the
recent partitions at start) or still in flight are acknowledged as duplicates and never
written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

__all__ = [
    "EVENTS_DIR",
    "EVENT_COLUMNS",
    "EventLog",
    "EventLogError",
    "LogScan",
    "compact",
    "compact_day",
    "decode_line",
    "encode_record",
    "iter_segment_ids",
    "load_events",
    "load_raw_events",
    "read_segment",
]

log = logging.getLogger("auditor.listen")

EVENTS_DIR: Final = "events"
COMPACTED: Final = "part-00000.parquet"

# One row per event in the compacted Parquet files (and in the raw scan).
RAW_SCHEMA: Final = pa.schema(
    [
        ("event_id", pa.string()),
        ("codat_event_id", pa.string()),
        ("event_type", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("generated_at", pa.timestamp("us", tz="UTC")),
        ("company_id", pa.string()),
        ("raw", pa.string()),
    ]
)

# What load_events returns: one row per event and data type (read.completed carries several).
EVENT_COLUMNS: Final = (
    "event_id",
    "codat_event_id",
    "event_type",
    "received_at",
    "generated_at",
    "company_id",
    "connection_id",
    "data_type",
    "status",
    "issues",
    "raw",
)

Outcome = Literal["stored", "duplicate"]


class EventLogError(RuntimeError):
    """The event log cannot take events (a write or sync failed, or it is closed)."""


# --------------------------------------------------------------------------- framing


def encode_record(webhook_id: str, received_at: datetime, body: str) -> bytes:
    """One framed segment line (ASCII-only JSON, so a line never holds a raw newline)."""
    payload = json.dumps(
        {"id": webhook_id, "received_at": received_at.isoformat(), "body": body},
        separators=(",", ":"),
    ).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The record of one segment line (without its ``\\n``), or ``None`` when it is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict) or not all(
        isinstance(record.get(k), str) for k in ("id", "received_at", "body")
    ):
        return None
    return record


@dataclass
class LogScan:
    """What reading segments found: good records, and the damaged lines it skipped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_tails: int = 0  # a last line without its newline: a write cut short by a kill
    damaged_lines: int = 0  # complete lines whose CRC or JSON did not check out


def read_segment(path: Path, scan: LogScan | None = None) -> LogScan:
    """Every intact record of one segment file (a torn or damaged line is skipped)."""
    scan = scan if scan is not None else LogScan()
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:  # a write cut short, or a zero-filled tail (blocks allocated, never written)
        scan.torn_tails += 1
    for line in lines:
        record = decode_line(line)
        if record is None:
            if line.strip(b"\x00"):
                scan.damaged_lines += 1
            continue
        scan.records.append(record)
    return scan


# --------------------------------------------------------------------------- layout


def _events_root(store: Path) -> Path:
    return Path(store) / EVENTS_DIR


def _day_dir(store: Path, day: date) -> Path:
    return _events_root(store) / f"date={day.isoformat()}"


def _partitions(store: Path) -> list[tuple[date, Path]]:
    root = _events_root(store)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith("date="):
            try:
                found.append((date.fromisoformat(child.name[5:]), child))
            except ValueError:
                continue
    return sorted(found)


def _segments(day_dir: Path) -> list[Path]:
    return sorted(day_dir.glob("log-*.jsonl"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _company_id(event_type: str, payload: dict[str, Any]) -> str | None:
    ref = payload.get("referenceCompany")
    if isinstance(ref, dict) and isinstance(ref.get("id"), str):
        return str(ref["id"])
    if isinstance(payload.get("companyId"), str):
        return str(payload["companyId"])
    if event_type.startswith("company.") and isinstance(payload.get("id"), str):
        return str(payload["id"])
    return None


def _raw_row(record: dict[str, Any]) -> dict[str, Any]:
    """The event-level row of one log record (the body is kept verbatim in ``raw``)."""
    body = record["body"]
    try:
        event = json.loads(body)
    except ValueError:  # the listener stores only JSON objects; be lenient anyway
        event = {}
    if not isinstance(event, dict):
        event = {}
    payload = event.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    event_type = event.get("eventType")
    event_type = event_type if isinstance(event_type, str) else ""
    codat_id = event.get("id")
    return {
        "event_id": record["id"],
        "codat_event_id": codat_id if isinstance(codat_id, str) else None,
        "event_type": event_type or None,
        "received_at": _parse_time(record["received_at"]),
        "generated_at": _parse_time(event.get("generatedDate")),
        "company_id": _company_id(event_type, payload),
        "raw": body,
    }


def _raw_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


def _read_day(day_dir: Path, scan: LogScan | None = None) -> pa.Table:
    """Every event of one partition (Parquet part and segments), de-duplicated by id.

    A compaction running at the same time may swap segments for the Parquet part between
    the listing and the reading: the day is then read again (the result is the same)."""
    for _attempt in range(5):
        try:
            tables = [
                pq.read_table(part, schema=RAW_SCHEMA)
                for part in sorted(day_dir.glob("part-*.parquet"))
            ]
            day_scan = LogScan()
            for segment in _segments(day_dir):
                read_segment(segment, day_scan)
        except FileNotFoundError:
            continue
        if scan is not None:
            scan.records.extend(day_scan.records)
            scan.torn_tails += day_scan.torn_tails
            scan.damaged_lines += day_scan.damaged_lines
        tables.append(_raw_table([_raw_row(r) for r in day_scan.records]))
        return _dedupe(pa.concat_tables(tables))
    raise EventLogError(f"{day_dir}: kept changing while being read")


def _dedupe(table: pa.Table) -> pa.Table:
    """One row per ``event_id``: the earliest received (then the first read)."""
    if table.num_rows == 0:
        return table
    indexed = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
    ordered = indexed.sort_by(
        [("event_id", "ascending"), ("received_at", "ascending"), ("_i", "ascending")]
    )
    ids = ordered.column("event_id").to_pylist()
    keep = [i for i, event_id in enumerate(ids) if i == 0 or ids[i - 1] != event_id]
    if len(keep) == table.num_rows:
        return table
    kept = ordered.take(pa.array(keep)).sort_by("_i")
    return kept.drop_columns(["_i"])


def _utc(moment: datetime | str | pd.Timestamp | None) -> pd.Timestamp | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def load_raw_events(
    store: Path | str,
    *,
    since: datetime | str | pd.Timestamp | None = None,
    until: datetime | str | pd.Timestamp | None = None,
    scan: LogScan | None = None,
) -> pa.Table:
    """One row per stored event (``RAW_SCHEMA``) received in ``[since, until)``."""
    lo, hi = _utc(since), _utc(until)
    tables = []
    for day, day_dir in _partitions(Path(store)):
        # A partition is the day an event was *written*, a few ms after it was received:
        # keep a day of margin on each side and filter on received_at below.
        if lo is not None and day < (lo - pd.Timedelta(days=1)).date():
            continue
        if hi is not None and day > (hi + pd.Timedelta(days=1)).date():
            continue
        tables.append(_read_day(day_dir, scan))
    if not tables:
        return _raw_table([])
    table = _dedupe(pa.concat_tables(tables))
    frame_mask = None
    received = table.column("received_at").to_pandas()
    if lo is not None:
        frame_mask = received >= lo
    if hi is not None:
        upper = received < hi
        frame_mask = upper if frame_mask is None else frame_mask & upper
    if frame_mask is not None:
        table = table.filter(pa.array(frame_mask.to_numpy()))
    return table.sort_by([("received_at", "ascending"), ("event_id", "ascending")])


def _items(event_type: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The (connection, data type, status, issues) items an event is about."""
    data_types = payload.get("dataTypes")
    if isinstance(data_types, list) and data_types:
        items = []
        for item in data_types:
            item = item if isinstance(item, dict) else {}
            items.append(
                {
                    "connection_id": item.get("connectionId"),
                    "data_type": item.get("dataType"),
                    "status": item.get("status"),
                    "issues": item.get("issues"),
                }
            )
        return items
    connection = payload.get("connection")
    connection = connection if isinstance(connection, dict) else {}
    data_type = payload.get("dataType")
    if data_type is None and ".write." in event_type:
        data_type = event_type.split(".write.", 1)[0]
    return [
        {
            "connection_id": connection.get("id", payload.get("connectionId")),
            "data_type": data_type,
            "status": connection.get("status", payload.get("status")),
            "issues": payload.get("issues"),
        }
    ]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def load_events(
    store: Path | str,
    *,
    since: datetime | str | pd.Timestamp | None = None,
    until: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The webhook events the listener stored, received in ``[since, until)`` (UTC).

    One row per event and data type: a ``read.completed`` event reporting three data types
    gives three rows sharing its ``event_id``; any other event gives one row. Columns are
    ``EVENT_COLUMNS``: ``event_id`` (the ``webhook-id``, unique per event), ``codat_event_id``
    (the body's ``id``), ``event_type``, ``received_at``/``generated_at`` (UTC), ``company_id``,
    ``connection_id``, ``data_type``, ``status``, ``issues`` (JSON text, or null) and ``raw``
    (the request body exactly as signed). Reads compacted days and live segments alike.
    """
    raw = load_raw_events(store, since=since, until=until)
    rows: list[dict[str, Any]] = []
    for event_id, codat_id, event_type, received, generated, company, body in zip(
        *(raw.column(name).to_pylist() for name in RAW_SCHEMA.names), strict=True
    ):
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        payload = event.get("payload") if isinstance(event, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        for item in _items(event_type or "", payload):
            issues = item["issues"]
            rows.append(
                {
                    "event_id": event_id,
                    "codat_event_id": codat_id,
                    "event_type": event_type,
                    "received_at": received,
                    "generated_at": generated,
                    "company_id": company,
                    "connection_id": _text(item["connection_id"]),
                    "data_type": _text(item["data_type"]),
                    "status": _text(item["status"]),
                    "issues": None if issues is None else json.dumps(issues, sort_keys=True),
                    "raw": body,
                }
            )
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    for column in ("received_at", "generated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    for column in EVENT_COLUMNS:
        if column not in ("received_at", "generated_at"):
            frame[column] = frame[column].astype("string")
    return frame


# --------------------------------------------------------------------------- compaction


def compact_day(day_dir: Path) -> int:
    """Fold one closed day's segments into its Parquet part; returns the events it holds.

    Crash-safe and idempotent: the day (existing part + segments, de-duplicated) is written
    to a temporary file, fsync'ed and renamed over the part; only then are the segments
    deleted. A crash before the rename leaves the old state; after it, part and segments
    overlap and every reader (and the next compaction) de-duplicates by id."""
    segments = _segments(day_dir)
    if not segments:
        return 0
    table = _read_day(day_dir).sort_by([("received_at", "ascending"), ("event_id", "ascending")])
    tmp = day_dir / f".{COMPACTED}.{os.getpid()}.tmp"
    for stale in day_dir.glob(".part-*.tmp"):  # left by a compaction that crashed
        if stale != tmp:
            stale.unlink(missing_ok=True)
    with tmp.open("wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, day_dir / COMPACTED)
    _fsync_dir(day_dir)
    for segment in segments:
        segment.unlink(missing_ok=True)
    _fsync_dir(day_dir)
    return int(table.num_rows)


def compact(
    store: Path | str, *, before: date | None = None, skip: Iterable[date | None] = ()
) -> dict[str, int]:
    """Compact every partition older than ``before`` (default: today, UTC) that has segments,
    except the days in ``skip`` (the running listener's open segment). Only one process may
    write into a store's event log at a time: the listener, or ``auditor listen
    --compact-only``, both under the store's listener lock."""
    before = before or datetime.now(UTC).date()
    skipped = set(skip)
    done = {}
    for day, day_dir in _partitions(Path(store)):
        if day < before and day not in skipped and _segments(day_dir):
            done[day.isoformat()] = compact_day(day_dir)
    return done


# --------------------------------------------------------------------------- writing


def _recent_ids(store: Path, days: int, today: date) -> tuple[dict[date, set[str]], LogScan]:
    """The ids stored in each partition of the last ``days`` days, and what the scan skipped."""
    scan = LogScan()
    by_day: dict[date, set[str]] = {}
    first = today - timedelta(days=days)
    for day, day_dir in _partitions(store):
        if day < first:
            continue
        ids = by_day.setdefault(day, set())
        for part in sorted(day_dir.glob("part-*.parquet")):
            ids.update(pq.read_table(part, columns=["event_id"]).column(0).to_pylist())
        day_scan = LogScan()
        for segment in _segments(day_dir):
            read_segment(segment, day_scan)
        ids.update(r["id"] for r in day_scan.records)
        scan.torn_tails += day_scan.torn_tails
        scan.damaged_lines += day_scan.damaged_lines
    return by_day, scan


class _Segment:
    """The open segment file of one day (O_APPEND, created exclusively, directory synced)."""

    def __init__(self, store: Path, day: date) -> None:
        day_dir = _day_dir(store, day)
        created_root = not _events_root(store).is_dir()
        created_day = not day_dir.is_dir()
        day_dir.mkdir(parents=True, exist_ok=True)
        opened = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.day = day
        self.path = day_dir / f"log-{opened}-{os.getpid()}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        # The new names must survive a crash too, not only the bytes in the file.
        _fsync_dir(day_dir)
        if created_day:
            _fsync_dir(day_dir.parent)
        if created_root:
            _fsync_dir(Path(store))

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        if hasattr(os, "fdatasync"):
            os.fdatasync(self.fd)
        else:  # pragma: no cover - macOS
            os.fsync(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class EventLog:
    """The durable, de-duplicating writer of webhook events into ``STORE/events``.

    ``await append(...)`` returns ``"stored"`` once the event is written and synced, or
    ``"duplicate"`` when its id is already stored (or being stored: it then waits for that
    write). It raises :class:`EventLogError` when the write failed: the event must not be
    acknowledged, and the log takes nothing more (the process should restart, which rebuilds
    the set of stored ids from disk, so whatever did reach the disk is never stored twice).
    """

    def __init__(
        self,
        store: Path | str,
        *,
        dedup_days: int = 7,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = Path(store)
        self.dedup_days = dedup_days
        # The day a batch is written under (default: the real date; a demo's sandbox clock).
        self._clock = clock or (lambda: datetime.now(UTC))
        # Stored ids by partition day; days older than dedup_days are dropped as they age,
        # so a listener running for months holds only the window.
        self._seen: dict[date, set[str]] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._queue: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._segment: _Segment | None = None
        self._closing = False
        self.failure: BaseException | None = None
        self.stored = 0
        self.batches = 0
        self.startup_scan = LogScan()

    @property
    def known_ids(self) -> int:
        return sum(len(ids) for ids in self._seen.values())

    @property
    def open_day(self) -> date | None:
        """The day of the segment being written (never compacted while open)."""
        segment = self._segment
        return segment.day if segment is not None else None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def load(self) -> None:
        """Rebuild the set of stored ids from the last ``dedup_days`` days (blocking)."""
        self._seen, self.startup_scan = _recent_ids(
            self.store, self.dedup_days, self._clock().astimezone(UTC).date()
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="event-log-writer")

    async def close(self) -> None:
        """Write what is queued, then stop the writer and close the segment."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._segment is not None:
            self._segment.close()
            self._segment = None

    def is_known(self, webhook_id: str) -> bool:
        """Whether ``webhook_id`` is stored (within the de-duplication window)."""
        return any(webhook_id in ids for ids in self._seen.values())

    def _remember(self, day: date, ids: Iterable[str]) -> None:
        self._seen.setdefault(day, set()).update(ids)
        first = day - timedelta(days=self.dedup_days)
        for old in [d for d in self._seen if d < first]:
            del self._seen[old]

    async def append(self, webhook_id: str, received_at: datetime, body: str) -> Outcome:
        if self.failure is not None or self._wake is None or self._closing:
            raise EventLogError("the event log is not accepting events")
        if self.is_known(webhook_id):
            return "duplicate"
        pending = self._pending.get(webhook_id)
        if pending is not None:
            await asyncio.shield(pending)
            return "duplicate"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[webhook_id] = future
        self._queue.append((webhook_id, encode_record(webhook_id, received_at, body), future))
        self._wake.set()
        # Shielded: a client that hangs up must not cancel the write others may wait on.
        await asyncio.shield(future)
        return "stored"

    def _write_batch(self, data: bytes) -> None:
        day = self._clock().astimezone(UTC).date()
        if self._segment is None or self._segment.day != day:
            if self._segment is not None:
                self._segment.close()
            self._segment = None
            self._segment = _Segment(self.store, day)
        self._segment.write(data)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if batch:
                try:
                    await asyncio.to_thread(self._write_batch, b"".join(b for _, b, _ in batch))
                except BaseException as exc:  # an OSError, or a cancellation mid-write
                    self.failure = exc
                    log.error("event log write failed; taking no more events: %s", exc)
                    self._fail([*batch, *self._queue])
                    self._queue = []
                    return
                assert self._segment is not None
                self._remember(self._segment.day, (webhook_id for webhook_id, _, _ in batch))
                for webhook_id, _, future in batch:
                    del self._pending[webhook_id]
                    if not future.done():
                        future.set_result(None)
                self.stored += len(batch)
                self.batches += 1
            if self._closing and not self._queue:
                return

    def _fail(self, batch: Iterable[tuple[str, bytes, asyncio.Future[None]]]) -> None:
        for webhook_id, _, future in batch:
            self._pending.pop(webhook_id, None)
            if not future.done():
                future.set_exception(EventLogError("the event could not be stored"))
                future.exception()  # retrieved: a caller that hung up must not warn


def iter_segment_ids(store: Path | str) -> Iterator[str]:
    """Every id in every segment of the store, in file order, repeats included (for tests
    and the benchmark, which count duplicates on disk)."""
    for _day, day_dir in _partitions(Path(store)):
        for segment in _segments(day_dir):
            for record in read_segment(segment).records:
                yield str(record["id"])
