"""The SQLite connection: pragmas, numbered migrations and serialised writes.

``Database`` owns one aiosqlite connection in autocommit mode (``isolation_level=None``):
the Python ``sqlite3`` module never opens a transaction behind our back, so a single
statement commits by itself and a multi-statement change is written explicitly as
``BEGIN IMMEDIATE ... COMMIT`` inside ``transaction()``.

Every statement goes through one ``asyncio.Lock``. The connection is shared by every
coroutine of the bot, and a statement issued by coroutine A while coroutine B holds an
open transaction would silently become part of B's transaction (and be rolled back with
it). Holding the lock for the whole of a transaction rules that out.

Single statements (``execute``, ``fetch_all``, ``run_sync``) are queued and run in
batches (group commit): one trip to the connection's thread runs every statement queued
meanwhile, in order, each in its own savepoint, and commits them together with one sync
to disk. Under a burst (hundreds of commands reserving credits while earlier ones record
their submits) each statement would otherwise wait for a lock hand-off, a thread round
trip and its own fsync, and that queue, not the work, would set the latency. A caller
hears back only after its batch committed, so every answer is as durable as before.

Only a batch's writes run inside ``BEGIN IMMEDIATE``; its plain reads (a ``SELECT``
through ``fetch_all``/``fetch_one``) run after the commit, each in its own read
transaction. A read holding SQLite's write lock would make every other process's writer
wait for it, and the bot's timed loops read every few seconds. Reordering within a batch
is safe: its items come from callers that were all waiting at once, none after another's
answer, so any order is one they could have seen (and a read still sees every write
queued before it). A batch of reads alone takes no write lock at all, so it answers even
while another process holds that lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import aiosqlite

from storage.sql.database import Engine, LockKey, Params, Program, T, drive_sync
from storage.sqlite.filelock import FileLock

DEFAULT_DATABASE_PATH = Path("data/happyhorse.sqlite3")
"""Where the bot keeps its database unless the ``DATABASE_PATH`` setting says otherwise."""

BUSY_TIMEOUT_MS = 5000
"""How long a writer waits for another connection's write lock before giving up."""

Row: TypeAlias = sqlite3.Row

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer version of the bot than this one."""

    def __init__(
        self,
        path: Path | str,
        found: int,
        supported: int,
        *,
        elsewhere: str = "point DATABASE_PATH at another file",
    ) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"database {path} has schema version {found}, but this version of the bot only "
            f"knows versions up to {supported}. Refusing to open it so it is not damaged: "
            f"upgrade the bot, or {elsewhere}."
        )


class MigrationError(RuntimeError):
    """A migration file is misnamed, misnumbered or failed to apply."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL migration file."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split the file into complete SQL statements (comments and blank lines dropped)."""
        statements: list[str] = []
        buffer = ""
        for line in self.sql.splitlines(keepends=True):
            if not buffer and (not line.strip() or line.lstrip().startswith("--")):
                continue
            buffer += line
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        if buffer.strip():
            raise MigrationError(
                f"migration {self.version:04d}_{self.name} ends with an incomplete statement"
            )
        return statements


def load_migrations(package: str | None = None) -> list[Migration]:
    """Read ``<package>/migrations/NNNN_name.sql`` in version order and check the numbering.

    ``package`` defaults to this engine's, ``storage.sqlite``.
    """
    folder = resources.files(package or __package__ or "storage.sqlite").joinpath("migrations")
    migrations: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        migrations.append(
            Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        )
    migrations.sort(key=lambda m: m.version)
    check_numbering(migrations)
    return migrations


def check_numbering(migrations: Sequence[Migration]) -> None:
    """Refuse gaps and duplicates: versions must be exactly 1, 2, 3, ... in order."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migrations must be numbered 1, 2, 3, ... without gaps; expected "
                f"{expected:04d} but found {migration.version:04d}_{migration.name}"
            )


class Transaction:
    """Statements inside one ``BEGIN IMMEDIATE`` transaction (see ``Database.transaction``)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement and return how many rows it changed."""
        return await _execute(self._conn, sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return every row."""
        return await _fetch_all(self._conn, sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        rows = await _fetch_all(self._conn, sql, params)
        return rows[0] if rows else None


class Database:
    """One SQLite file: WAL, busy timeout, foreign keys, migrated to the latest schema.

    Open it with ``await Database.open(path)`` and close it with ``await db.close()``
    (or use it as an async context manager).
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        schema_version: int,
        file_lock: FileLock | None = None,
    ) -> None:
        """Wrap an already configured connection; use ``Database.open`` instead."""
        self._conn = conn
        # Shared while open: a restore (which takes it exclusively) waits for no one.
        self._file_lock = file_lock
        self._lock = asyncio.Lock()
        self.engine: Engine = "sqlite"
        self.path = path
        self.schema_version = schema_version
        self._queued: list[_Work] = []
        self._runner: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, path: str | Path, *, migrations: Sequence[Migration] | None = None
    ) -> Database:
        """Open (creating the file and its folder) and migrate the database at ``path``.

        ``migrations`` defaults to the files shipped in ``storage/sqlite/migrations``. Raises
        ``SchemaTooNewError`` if the file was written by a newer version of the code, and
        ``DatabaseInUseError`` while ``python -m storage restore`` is replacing it.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if migrations is None:
            migrations = load_migrations()
        else:
            check_numbering(migrations)
        file_lock = FileLock.shared(path)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            file_lock.release()
            raise
        try:
            conn.row_factory = sqlite3.Row
            await _execute(conn, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}", ())
            await _switch_to_wal(conn, path)
            await _execute(conn, "PRAGMA foreign_keys = ON", ())
            # FULL: every commit is on disk before the statement returns, so a reservation
            # or a "delivered" mark survives even a power cut. (NORMAL would only survive
            # a process crash.) The bot commits a few rows a second; the fsync is cheap.
            await _execute(conn, "PRAGMA synchronous = FULL", ())
            version = await _migrate(conn, path, migrations)
        except BaseException:
            await conn.close()
            file_lock.release()
            raise
        return cls(conn, path, version, file_lock)

    async def close(self) -> None:
        """Wait for running statements, then close the connection."""
        while self._queued:
            await asyncio.sleep(0)
            if self._runner is None or self._runner.done():
                break
        async with self._lock:
            if self._runner is not None:
                self._runner.cancel()
                await asyncio.gather(self._runner, return_exceptions=True)
                self._runner = None
            for _, future, _ in self._queued:
                if not future.done():
                    future.set_exception(ValueError("the database is closed"))
            self._queued.clear()
            try:
                await self._conn.close()
            finally:
                if self._file_lock is not None:
                    self._file_lock.release()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ``lock`` (see ``storage.sql.database``) needs nothing here: SQLite runs every write
    # statement under its one write lock, which excludes every other writer anyway.

    async def execute(self, sql: str, params: Params = (), *, lock: LockKey | None = None) -> int:
        """Run one statement in its own (autocommit) transaction; return rows changed."""
        changed: int = await self._submit(partial(_execute_sync, sql=sql, params=params))
        return changed

    async def fetch_all(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> list[Row]:
        """Run a query and return every row."""
        rows: list[Row] = await self._submit(
            partial(_fetch_all_sync, sql=sql, params=params), read_only=_is_read(sql)
        )
        return rows

    async def fetch_one(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> Row | None:
        """Run a query (or a statement with ``RETURNING``) and return its first row."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def run_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` on the database thread, under the lock, in one hop.

        For a hot path that would otherwise pay one event-loop round trip per statement
        (the reservation before a command is acknowledged, which hundreds of commands can
        queue for at once). `work` is plain synchronous sqlite3 code; it runs inside the
        batch's transaction, in its own savepoint (an exception undoes it alone and is
        raised here), so it must not begin or end transactions itself, nor call back
        into this object.
        """
        result: T = await self._submit(work)
        return result

    async def run(self, program: Callable[[], Program[T]], *, lock: LockKey | None = None) -> T:
        """Run a transaction program (see ``storage.sql.database``) in one trip to the
        database thread, in its own savepoint of the group commit (``run_sync``)."""

        def work(conn: sqlite3.Connection) -> T:
            return drive_sync(
                program(), lambda sql, params: _fetch_all_sync(conn, sql=sql, params=params)
            )

        return await self.run_sync(work)

    async def _submit(
        self, work: Callable[[sqlite3.Connection], Any], *, read_only: bool = False
    ) -> Any:
        """Queue `work` for the next batch and wait for its result (see the docstring).

        ``read_only`` work runs after the batch's write transaction, outside it.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((work, future, read_only))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_batches(), name="sqlite-batches")
        return await future

    async def _run_batches(self) -> None:
        """The one task that runs queued statements; ends when the queue is empty."""
        while self._queued:
            async with self._lock:
                batch = [item for item in self._queued if not item[1].cancelled()]
                self._queued.clear()
                if not batch:
                    continue
                # aiosqlite runs every call through its queue onto its thread and has no
                # public way to run several statements in one trip.
                try:
                    raw: sqlite3.Connection = self._conn._conn
                    outcomes: list[tuple[bool, Any]] = await self._conn._execute(  # type: ignore[no-untyped-call]
                        _run_all, raw, [(w, read) for w, _, read in batch]
                    )
                except BaseException as exc:
                    # The whole batch failed (locked past the busy timeout, closed, or
                    # cancelled at shutdown): every caller in it hears so.
                    failure = (
                        exc if isinstance(exc, Exception) else ValueError("the database is closing")
                    )
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    @asynccontextmanager
    async def transaction(self, *, lock: LockKey | None = None) -> AsyncIterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises.

        ``IMMEDIATE`` takes SQLite's write lock up front (waiting up to the busy timeout
        for other connections), so what the block reads cannot change before it writes.
        That lock excludes every other writer, so a ``lock`` key (which on PostgreSQL
        narrows the exclusion to one key) needs nothing more here.
        Not re-entrant: do not call ``Database`` methods inside the block, use the
        ``Transaction`` it yields.
        """
        async with self._lock:
            await _execute(self._conn, "BEGIN IMMEDIATE", ())
            try:
                yield Transaction(self._conn)
            except BaseException:
                await _execute(self._conn, "ROLLBACK", ())
                raise
            await _execute(self._conn, "COMMIT", ())


_Work: TypeAlias = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", bool]
"""A queued statement: the work, its caller's future, and whether it only reads."""


def _is_read(sql: str) -> bool:
    """Whether ``sql`` is a plain query (``SELECT``), which writes nothing."""
    return sql.lstrip()[:6].upper() == "SELECT"


def _run_all(
    conn: sqlite3.Connection, works: list[tuple[Callable[[sqlite3.Connection], Any], bool]]
) -> list[tuple[bool, Any]]:
    """On the database thread: run a batch's writes as one transaction, then its reads.

    The writes run inside ``BEGIN IMMEDIATE``, each in its own savepoint, so one that
    fails is undone alone and its error goes to its caller; the rest commit together,
    with one sync to disk for the whole batch. If the transaction itself fails (the write
    lock stayed busy past the timeout, the commit failed) every write hears that error.
    The reads (``works`` flagged read-only) then run, each in its own read transaction
    (autocommit), holding no write lock, and seeing every write the batch committed.
    Callers hear back only after the commit, so what they are told is durable. Outcomes
    are returned in the order of ``works``.
    """
    outcomes: list[tuple[bool, Any]] = [(False, None)] * len(works)
    writes = [index for index, (_, read_only) in enumerate(works) if not read_only]
    if writes:
        try:
            _write_all(conn, works, writes, outcomes)
        except sqlite3.Error as exc:
            for index in writes:
                outcomes[index] = (False, exc)
    for index, (work, read_only) in enumerate(works):
        if read_only:
            try:
                outcomes[index] = (True, work(conn))
            except Exception as exc:  # handed to the waiting caller, raised there
                outcomes[index] = (False, exc)
    return outcomes


def _write_all(
    conn: sqlite3.Connection,
    works: list[tuple[Callable[[sqlite3.Connection], Any], bool]],
    writes: list[int],
    outcomes: list[tuple[bool, Any]],
) -> None:
    """The writes of ``_run_all``: one ``BEGIN IMMEDIATE``, a savepoint each, one commit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for index in writes:
            conn.execute("SAVEPOINT batch_item")
            try:
                value = works[index][0](conn)
            except Exception as exc:  # handed to the waiting caller, raised there
                conn.execute("ROLLBACK TO batch_item")
                conn.execute("RELEASE batch_item")
                outcomes[index] = (False, exc)
                continue
            conn.execute("RELEASE batch_item")
            outcomes[index] = (True, value)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _execute_sync(conn: sqlite3.Connection, *, sql: str, params: Params) -> int:
    cursor = conn.execute(sql, params)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _fetch_all_sync(conn: sqlite3.Connection, *, sql: str, params: Params) -> list[Row]:
    # fetchall() steps the statement to completion, so one with RETURNING is committed.
    return list(conn.execute(sql, params).fetchall())


async def _execute(conn: aiosqlite.Connection, sql: str, params: Params) -> int:
    cursor = await conn.execute(sql, params)
    try:
        return cursor.rowcount
    finally:
        await cursor.close()


async def _fetch_all(conn: aiosqlite.Connection, sql: str, params: Params = ()) -> list[Row]:
    # One hop to the connection thread: the statement runs to completion there, so a
    # statement with RETURNING is finished (and committed) before we look at the rows.
    rows: Iterable[Row] = await conn.execute_fetchall(sql, params)
    return list(rows)


async def _switch_to_wal(conn: aiosqlite.Connection, path: Path) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds the file.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is
    locked" at once instead of honouring the busy timeout, so connections opening a new
    file together would fail. Retry with backoff for up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            mode = await _fetch_all(conn, "PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        else:
            if str(mode[0][0]).lower() == "wal":
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"could not switch {path} to WAL journal mode")
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.2)


async def _migrate(conn: aiosqlite.Connection, path: Path, migrations: Sequence[Migration]) -> int:
    """Apply every migration newer than the file, each in its own transaction."""
    supported = migrations[-1].version if migrations else 0
    for migration in migrations:
        # The version is re-read inside each write transaction, so two processes
        # starting at once cannot both apply the same migration.
        await _execute(conn, "BEGIN IMMEDIATE", ())
        try:
            await _execute(
                conn,
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)",
                (),
            )
            current = await _current_version(conn)
            if current > supported:
                raise SchemaTooNewError(path, current, supported)
            if current >= migration.version:
                await _execute(conn, "COMMIT", ())
                continue
            for statement in migration.statements():
                await _execute(conn, statement, ())
            await _execute(
                conn,
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        except BaseException as exc:
            await _execute(conn, "ROLLBACK", ())
            if isinstance(exc, sqlite3.Error):
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed on {path}: {exc}"
                ) from exc
            raise
        await _execute(conn, "COMMIT", ())
    # Also covers an empty migration list meeting a file that already has a schema.
    current = await _current_version(conn)
    if current > supported:
        raise SchemaTooNewError(path, current, supported)
    return current


async def _current_version(conn: aiosqlite.Connection) -> int:
    rows = await _fetch_all(
        conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
    )
    if not rows:
        return 0
    rows = await _fetch_all(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(rows[0][0])
