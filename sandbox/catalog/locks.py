"""Per-table commit locks held through the catalog: one Delta writer per table at a time.

    with commit_lock(db, "s3://bucket/tables/market/loans"):
        storage.write_batches(...)          # reads the latest version, writes, commits N+1

A Delta commit is "create ``_delta_log/N.json`` only if absent". Local disks do that atomically;
an object store does it only if it honours conditional writes (``If-None-Match: *``) — the S3
server the tests use (s3proxy) ignores them, as do some S3-compatible stores. There, two writers
that both read version N-1 would both "win" N and one load would silently vanish. So every
writer of an object-storage table (delta-rs and delta-spark, ingest and migration, on any
machine) holds this lock from opening the table until its commit is written:

* **PostgreSQL** (every machine shares the catalog): a session-level advisory lock,
  ``pg_advisory_lock(COMMIT_LOCK_CLASS, hash(uri))``, on a connection held for the duration. A
  writer that dies loses its connection, and PostgreSQL releases the lock at once.
* **SQLite** (one machine by construction): an exclusive ``flock`` on a file beside the catalog
  database, one per table (released by the kernel when the process dies). Not the database's own
  write lock: a load can take minutes, and holding SQLite's single write lock that long would stall
  every other catalog write (leases, audit records) on the machine.

Locks are per table: loads into different tables run side by side; two loads into one table run
one after the other. Waiting longer than ``timeout`` raises :class:`Conflict` (retry).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from ..errors import Conflict
from .db import Database

#: first key of the two-integer advisory lock space: commit locks (migrations use the one-bigint form)
COMMIT_LOCK_CLASS = 0x74776863  # "twhc"
_LOCAL = threading.Lock()  # in-memory SQLite catalogs (tests): one process, so a process lock


def lock_key(uri: str) -> int:
    """A signed 32-bit key for the table (collisions only make two tables wait for each other)."""
    return int.from_bytes(hashlib.sha256(uri.encode()).digest()[:4], "big", signed=True)


@contextmanager
def commit_lock(db: Database, uri: str, *, timeout: float = 600.0, poll: float = 0.05) -> Iterator[None]:
    if db.engine.dialect.name == "postgresql":
        with _pg_lock(db, uri, timeout, poll):
            yield
        return
    with _file_lock(db, uri, timeout, poll):
        yield


def _busy(uri: str, timeout: float) -> Conflict:
    return Conflict(f"another writer has held the commit lock of this table for over {timeout:.0f} s; retry",
                    details={"rule": "commit_lock"})


@contextmanager
def _pg_lock(db: Database, uri: str, timeout: float, poll: float) -> Iterator[None]:
    key = lock_key(uri)
    conn = db.engine.connect()
    try:
        deadline = time.monotonic() + timeout
        while not conn.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": COMMIT_LOCK_CLASS, "k": key}).scalar():
            conn.rollback()
            if time.monotonic() > deadline:
                raise _busy(uri, timeout)
            time.sleep(poll)
        conn.commit()  # session-level lock: it outlives the transaction, not the connection
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": COMMIT_LOCK_CLASS, "k": key})
                conn.commit()
            except Exception:  # noqa: BLE001 - the connection is broken: closing it releases the lock
                conn.invalidate()
    finally:
        conn.close()


def _lock_dir(db: Database) -> Path | None:
    database = db.engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database).absolute().parent / "commit-locks"


@contextmanager
def _file_lock(db: Database, uri: str, timeout: float, poll: float) -> Iterator[None]:
    folder = _lock_dir(db)
    if folder is None:
        if not _LOCAL.acquire(timeout=timeout):
            raise _busy(uri, timeout)
        try:
            yield
        finally:
            _LOCAL.release()
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(uri.encode()).hexdigest()[:32]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # one open file per holder: flock excludes threads too
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _busy(uri, timeout) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
