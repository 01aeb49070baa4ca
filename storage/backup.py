"""Backups of a SQLite database while the bot runs, and putting one back.

``backup`` copies the database with SQLite's online backup API in one step, inside one
read transaction: the copy is the database as of one instant, whatever the bot writes
meanwhile (WAL lets it carry on writing). The copy is checked (``integrity_check``), made
self-contained (rollback journal rather than WAL, so it is one file) and moved into place
atomically, so a half-written backup never carries the final name.

``restore`` puts a backup back, and refuses while a bot is running on the target: when
anything holds the database open (the shared lock every ``Database`` holds, see
``storage.sqlite.filelock``) or a process in the database's registry beat recently (a
bot on another machine sharing the file, or one that predates the lock). It keeps the
database it replaces beside it (``<file>.before-restore-<time>``) and copies the backup in
through the same backup API, so a stale WAL of the old file is never applied to the new
one.

All of it is synchronous sqlite3 work run in a worker thread (``asyncio.to_thread``), off
the event loop. PostgreSQL has its own tools: README ("Backups") gives the ``pg_dump`` and
``pg_restore`` commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from storage.sqlite.database import BUSY_TIMEOUT_MS, load_migrations
from storage.sqlite.filelock import DatabaseInUseError, FileLock

DEFAULT_LIVE_WITHIN_SECONDS = 60.0
"""A registered process that beat this recently counts as running (a restore refuses).

Three times the default liveness window (PROCESS_LIVENESS_SECONDS, 20 s), so a bot that
is merely slow to beat is not mistaken for a stopped one."""


class BackupError(RuntimeError):
    """A backup could not be taken, or a file cannot be restored; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    """What a backup (or a restored database) holds."""

    path: Path
    schema_version: int
    jobs: int
    size_bytes: int


@dataclass(frozen=True)
class RestoreInfo:
    """A finished restore: what is now in place, and where the replaced database went."""

    restored: BackupInfo
    previous: Path | None


async def backup(source: Path, destination: Path) -> BackupInfo:
    """Copy the SQLite database at ``source`` to ``destination``, consistently, while in use."""
    return await asyncio.to_thread(_backup, Path(source), Path(destination))


async def restore(
    backup_file: Path,
    target: Path,
    *,
    live_within_seconds: float = DEFAULT_LIVE_WITHIN_SECONDS,
) -> RestoreInfo:
    """Replace the database at ``target`` with ``backup_file``; refuse while a bot runs on it.

    Raises ``DatabaseInUseError`` when the target is open or a process beat within
    ``live_within_seconds``, ``BackupError`` when the file is not a usable backup.
    """
    return await asyncio.to_thread(
        _restore, Path(backup_file), Path(target), live_within_seconds
    )


# -- in the worker thread ------------------------------------------------------------------


def _connect(path: Path, *, must_exist: bool) -> sqlite3.Connection:
    if must_exist and not path.is_file():
        raise BackupError(f"{path} does not exist")
    uri = f"{path.resolve().as_uri()}?mode={'rw' if must_exist else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    return conn


def _describe(conn: sqlite3.Connection, path: Path) -> BackupInfo:
    """Check a database copy and say what it holds; ``BackupError`` if it is no good."""
    try:
        verdict = conn.execute("PRAGMA integrity_check").fetchall()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a SQLite database: {exc}") from None
    if verdict != [("ok",)]:
        raise BackupError(f"{path} is damaged: {'; '.join(str(r[0]) for r in verdict[:5])}")
    if not {"schema_version", "jobs"} <= tables:
        raise BackupError(f"{path} is not a HappyHorse bot database (no jobs table)")
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    version = int(row[0])
    supported = len(load_migrations())
    if version > supported:
        raise BackupError(
            f"{path} has schema version {version}, but this version of the bot only knows "
            f"versions up to {supported}: restore it with the newer bot that wrote it"
        )
    jobs = int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    return BackupInfo(path=path, schema_version=version, jobs=jobs, size_bytes=0)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem can sync a directory
        _sync_file(folder)


def _copy(source: sqlite3.Connection, destination: Path) -> BackupInfo:
    """Copy an open database into a new file at ``destination`` (atomically renamed)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            # pages=-1: every page in one step, under one read transaction of the source.
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode = DELETE")
            info = _describe(copy, destination)
        finally:
            copy.close()
        _sync_file(partial)
        os.replace(partial, destination)
        _sync_folder(destination.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupInfo(
        path=destination,
        schema_version=info.schema_version,
        jobs=info.jobs,
        size_bytes=destination.stat().st_size,
    )


def _backup(source: Path, destination: Path) -> BackupInfo:
    if destination.resolve() == source.resolve():
        raise BackupError("the backup file must not be the database itself")
    conn = _connect(source, must_exist=True)
    try:
        _describe(conn, source)
        return _copy(conn, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"could not back up {source}: {exc}") from None
    finally:
        conn.close()


def _live_processes(conn: sqlite3.Connection, within: float) -> list[tuple[str, float]]:
    """Registered processes that beat within ``within`` seconds: (id, seconds ago)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'processes'"
    ).fetchone()
    if exists is None:
        return []
    now = time.time()
    rows = conn.execute(
        "SELECT id, last_seen FROM processes WHERE last_seen > ? ORDER BY last_seen DESC",
        (now - within,),
    ).fetchall()
    return [(str(pid), max(0.0, now - float(seen))) for pid, seen in rows]


def _restore(backup_file: Path, target: Path, live_within: float) -> RestoreInfo:
    if backup_file.resolve() == target.resolve():
        raise BackupError("the backup file is the database itself")
    source = _connect(backup_file, must_exist=True)
    try:
        _describe(source, backup_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock.exclusive(target)
        if lock is None:
            raise DatabaseInUseError(
                f"refusing to restore: a bot (or another tool) has {target} open. Stop it "
                "first (systemctl stop happyhorse-bot, docker compose stop bot, or Ctrl-C)"
            )
        try:
            return _restore_locked(source, backup_file, target, live_within)
        finally:
            lock.release()
    except sqlite3.Error as exc:
        raise BackupError(f"could not restore {backup_file} to {target}: {exc}") from None
    finally:
        source.close()


def _restore_locked(
    source: sqlite3.Connection, backup_file: Path, target: Path, live_within: float
) -> RestoreInfo:
    previous: Path | None = None
    existed = target.exists()
    conn = _connect(target, must_exist=False)
    try:
        if existed:
            live = _live_processes(conn, live_within)
            if live:
                seen = ", ".join(f"{pid} ({ago:.0f} s ago)" for pid, ago in live)
                raise DatabaseInUseError(
                    f"refusing to restore: bot processes using {target} beat recently: {seen}. "
                    f"Stop them first; a process that was killed counts as running for "
                    f"{live_within:g} s after its last beat."
                )
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            previous = _copy(conn, target.with_name(f"{target.name}.before-restore-{stamp}")).path
        # Through SQLite, not a file copy: the target's WAL and locks stay coherent.
        source.backup(conn, pages=-1)
        conn.execute("PRAGMA journal_mode = WAL")
        info = _describe(conn, target)
    finally:
        conn.close()
    return RestoreInfo(
        restored=BackupInfo(
            path=target,
            schema_version=info.schema_version,
            jobs=info.jobs,
            size_bytes=target.stat().st_size,
        ),
        previous=previous,
    )
