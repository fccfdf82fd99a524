"""Locks that work where the store is: ``filelock`` locally, a lease object on object storage.

Locally nothing changed: :class:`filelock.FileLock` (an OS lock: a killed process releases
it at once).

On an object store a lock is an object created with a conditional PUT (``If-None-Match: *``:
only one of any number of concurrent writers succeeds; AWS S3 since August 2024, MinIO,
moto). It is a *lease*: its JSON holds the holder (host, pid, a random token), when it was
taken and when it expires. While held, a daemon thread renews it every ``ttl / 4`` seconds
with a compare-and-swap (``If-Match: <its ETag>``), so a second run never sees it expire.
A killed run cannot release its lease: the next run refuses while it is valid and takes it
over once it has expired (again by compare-and-swap on the expired object's ETag, so of two
runs taking over at once only one wins). ``AUDITOR_STORE_LOCK_TTL`` sets the lease in seconds
(default 300: a run killed by ``kill -9`` or a lost node blocks the store for at most five
minutes). A holder whose renewal finds the lease taken by another run stops writing
(:meth:`ObjectLock.check` raises before the next batch and before the manifest).

Other fsspec object stores (GCS, Azure) create the lease with their backend's
``mode="create"``; takeover and renewal there are read-check-write (not compare-and-swap):
rely on the scheduler's single-run policy (``concurrencyPolicy: Forbid``) as well.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any, Final

import filelock
from upath import UPath

from auditor.store._fs import StoreDir, create_exclusive, is_remote

__all__ = ["LOCK_TTL_ENV", "LockHeldError", "ObjectLock", "StoreLock", "store_lock"]

log = logging.getLogger("auditor.store")

#: Environment variable: the lease of an object-store lock, in seconds.
LOCK_TTL_ENV: Final = "AUDITOR_STORE_LOCK_TTL"
DEFAULT_LOCK_TTL: Final = 300.0


class LockHeldError(filelock.Timeout):
    """Another run holds the lock (a :class:`filelock.Timeout`, so an :class:`OSError`)."""

    def __init__(self, lock_file: str, holder: str = "") -> None:
        super().__init__(lock_file)
        self.holder = holder

    def __str__(self) -> str:
        held = f" (held by {self.holder})" if self.holder else ""
        return f"the lock {self.lock_file} is held by another run{held}"


def _ttl() -> float:
    raw = os.environ.get(LOCK_TTL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LOCK_TTL
    except ValueError:
        value = DEFAULT_LOCK_TTL
    return value if value > 0 else DEFAULT_LOCK_TTL


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class ObjectLock:
    """A lease on an object store (see the module's docstring); the API of
    :class:`filelock.FileLock` that the store uses (``acquire``, ``release``, ``is_locked``,
    a context manager)."""

    def __init__(self, path: UPath, *, ttl: float | None = None) -> None:
        self.path = path
        self.ttl = ttl if ttl is not None else _ttl()
        self.token = secrets.token_hex(8)
        self._etag: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # ---------------------------------------------------------------- the object itself

    @property
    def _s3(self) -> bool:
        return hasattr(self.path.fs, "call_s3")

    def _body(self) -> bytes:
        now = time.time()
        doc = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed_at": _iso(now),
            "expires_at": _iso(now + self.ttl),
            "expires_at_epoch": now + self.ttl,
        }
        return json.dumps(doc).encode()

    def _key(self) -> tuple[str, str]:
        bucket, key, _ = self.path.fs.split_path(self.path.path)
        return str(bucket), str(key)

    def _create(self) -> bool:
        if self._s3:
            bucket, key = self._key()
            try:
                out = self.path.fs.call_s3(
                    "put_object", Bucket=bucket, Key=key, Body=self._body(), IfNoneMatch="*"
                )
            except FileExistsError:
                return False
            self._etag = str(out.get("ETag"))
            return True
        if not create_exclusive(self.path, self._body()):
            return False
        self._etag = None
        return True

    def _read(self) -> tuple[dict[str, Any], str | None] | None:
        """The lease's document and ETag; None if there is none."""
        fs = self.path.fs
        try:
            etag = fs.info(self.path.path).get("ETag") if self._s3 else None
            raw = fs.cat_file(self.path.path)
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            doc = {}
        return (doc if isinstance(doc, dict) else {}), (str(etag) if etag else None)

    def _replace(self, etag: str | None) -> bool:
        """Overwrite the lease if it is still the version ``etag`` (compare-and-swap on S3)."""
        if self._s3 and etag is not None:
            bucket, key = self._key()
            try:
                out = self.path.fs.call_s3(
                    "put_object", Bucket=bucket, Key=key, Body=self._body(), IfMatch=etag
                )
            except OSError:  # 412 PreconditionFailed / 409 ConditionalRequestConflict / 404
                return False
            self._etag = str(out.get("ETag"))
            return True
        self.path.fs.pipe_file(self.path.path, self._body())
        if self._s3:
            self._etag = str(self.path.fs.info(self.path.path).get("ETag"))
        return True

    # ---------------------------------------------------------------- filelock's API

    @property
    def lock_file(self) -> str:
        return str(self.path)

    @property
    def is_locked(self) -> bool:
        return self._thread is not None

    def acquire(self, timeout: float | None = 0) -> ObjectLock:
        """Take the lease, or raise :class:`LockHeldError` naming its holder. ``timeout``:
        seconds to keep trying (0: one attempt)."""
        deadline = time.monotonic() + (timeout or 0)
        while True:
            holder = self._try_acquire()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise LockHeldError(self.lock_file, holder)
            time.sleep(min(1.0, max(0.05, self.ttl / 10)))
        self._lost = None
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lease {self.path.name}", daemon=True
        )
        self._thread.start()
        return self

    def _try_acquire(self) -> str | None:
        """None when taken; else who holds it."""
        if self._create():
            return None
        current = self._read()
        if current is None:  # released between our PUT and our read: try once more
            return None if self._create() else "another run"
        doc, etag = current
        expires = doc.get("expires_at_epoch")
        holder = f"{doc.get('host', '?')} pid {doc.get('pid', '?')}, until {doc.get('expires_at')}"
        expired = isinstance(expires, int | float) and expires < time.time()
        if expired and self._replace(etag):
            log.warning(
                "took over the expired lock %s (its holder %s stopped renewing it)",
                self.path,
                holder,
            )
            return None
        return holder

    def _renew_loop(self) -> None:
        interval = max(0.05, self.ttl / 4)
        last_ok = time.time()
        while not self._stop.wait(interval):
            with self._mutex:
                if self._stop.is_set():
                    return
                try:
                    # S3: one conditional PUT on our own ETag (fails if anyone replaced it).
                    if self._s3 and self._replace(self._etag):
                        last_ok = time.time()
                        continue
                    current = self._read()
                    ours = current is not None and current[0].get("token") == self.token
                    if ours and self._replace(None if self._s3 else self._etag):
                        last_ok = time.time()
                        continue
                    if not ours:
                        self._lost = "another run took the lock over"
                        log.error("lost the lock %s: %s", self.path, self._lost)
                        return
                except OSError as exc:  # a network hiccup: retried at the next interval
                    log.warning("could not renew the lock %s: %s", self.path, exc)
                if time.time() - last_ok > self.ttl:
                    self._lost = "its lease expired before it could be renewed"
                    log.error("lost the lock %s: %s", self.path, self._lost)
                    return

    def check(self) -> None:
        """Raise :class:`LockHeldError` if the lease was lost (taken over, or expired)."""
        if self._lost is not None:
            raise LockHeldError(self.lock_file, f"no longer this run: {self._lost}")

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        if self._thread is None:
            return
        with self._mutex:
            self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        if self._lost is not None:
            return
        try:
            current = self._read()
            if current is not None and current[0].get("token") == self.token:
                self.path.fs.rm_file(self.path.path)
        except OSError as exc:  # it then expires by itself
            log.warning("could not delete the lock %s: %s", self.path, exc)

    def __enter__(self) -> ObjectLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


StoreLock = filelock.FileLock | ObjectLock


def store_lock(path: StoreDir) -> StoreLock:
    """The lock at ``path``: a :class:`filelock.FileLock` locally, an :class:`ObjectLock`
    (a renewed lease) on an object store."""
    if is_remote(path):
        assert isinstance(path, UPath)
        return ObjectLock(path)
    return filelock.FileLock(str(path))


def check_lock(lock: StoreLock) -> None:
    """Raise if ``lock`` is a lease this run has lost (no-op for a local lock)."""
    if isinstance(lock, ObjectLock):
        lock.check()
