"""The PostgreSQL connection: an asyncpg pool, portable parameters, locks and migrations.

``PostgresDatabase`` runs the shared stores' SQL (``storage.sql``) unchanged:

* ``:name`` and ``?`` parameters become ``$n``, each cast to the type of the Python value
  it carries (``int`` -> ``bigint``, ``float`` -> ``double precision``, ``str`` -> ``text``;
  ``bool`` is sent as ``0``/``1`` like SQLite stores it). The casts let PostgreSQL type
  expressions SQLite never needed typed (``:now + :lease``, ``SELECT :a ... WHERE``).
  ``None`` carries no cast and takes its type from where it is used, so a parameter that
  is *only* ever compared with ``IS NULL`` must be written ``CAST(:x AS INTEGER) IS NULL``.
* ``numeric`` results (``SUM`` of a ``BIGINT``) come back as ``int`` (or ``float``), as on
  SQLite, rather than ``Decimal``.
* The transaction isolation is PostgreSQL's default, READ COMMITTED. Every statement runs
  on a pooled connection in its own transaction unless it is inside ``transaction()``.
  Transactions and locked statements take advisory locks (see ``storage.sql.database``):
  an unkeyed transaction takes the "writer" lock exclusively, so read-then-write blocks
  behave as under SQLite's single writer; a keyed one takes the writer lock shared and
  its key's lock exclusively, so one member's reservations serialise and nothing else
  waits for them.

Migrations run under a session advisory lock, so processes opening a new database at
once apply each migration exactly once; a database newer than the code is refused.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from storage.sql.database import (
    Engine,
    LockKey,
    Params,
    Program,
    StoreUnavailableError,
    T,
    drive,
)
from storage.sqlite.database import (
    Migration,
    MigrationError,
    SchemaTooNewError,
    check_numbering,
    load_migrations,
)

DEFAULT_POOL_SIZE = 10
"""Connections each process keeps open at most."""

CONNECT_TIMEOUT_SECONDS = 10.0
"""How long opening a connection may take."""

COMMAND_TIMEOUT_SECONDS = 30.0
"""How long one statement (including waiting for a lock) may take before it is cancelled."""

ACQUIRE_TIMEOUT_SECONDS = 30.0
"""How long a caller waits for a free pooled connection."""

MIGRATION_TIMEOUT_SECONDS = 600.0
"""How long one migration step (or waiting for another process's migration) may take."""


def lock_id(key: LockKey) -> int:
    """A signed 64-bit advisory lock id for ``key`` (stable across processes and runs)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_WRITER_LOCK = lock_id(("happyhorse", "writer"))
_MIGRATION_LOCK = lock_id(("happyhorse", "migrations"))

# String literals, quoted identifiers and comments are copied as they are; ``::`` is a
# PostgreSQL cast, not a parameter; what is left is ``:name`` or ``?``.
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|::|:([A-Za-z_][A-Za-z0-9_]*)|\?",
    re.S,
)

_CASTS: dict[type, str] = {
    bool: "::bigint",
    int: "::bigint",
    float: "::double precision",
    str: "::text",
    bytes: "::bytea",
}


@lru_cache(maxsize=1024)
def _split(sql: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """Cut ``sql`` around its parameters: text pieces and, between them, names (``None`` = ?)."""
    pieces: list[str] = []
    refs: list[str | None] = []
    last = 0
    for match in _TOKEN.finditer(sql):
        if match.group(0) != "?" and match.group(1) is None:
            continue
        pieces.append(sql[last : match.start()])
        refs.append(match.group(1))
        last = match.end()
    pieces.append(sql[last:])
    if None in refs and any(ref is not None for ref in refs):
        raise ValueError("a statement cannot mix ?-parameters and :named parameters")
    return tuple(pieces), tuple(refs)


@lru_cache(maxsize=2048)
def _render(sql: str, slots: tuple[int, ...], casts: tuple[str, ...]) -> str:
    pieces, _ = _split(sql)
    out = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out.append(f"${slot + 1}{casts[slot]}")
        out.append(piece)
    return "".join(out)


def translate(sql: str, params: Params = ()) -> tuple[str, list[Any]]:
    """Rewrite portable SQL and its parameters for asyncpg: ``(sql with $n, arguments)``."""
    _, refs = _split(sql)
    args: list[Any] = []
    slots: list[int] = []
    if isinstance(params, Mapping):
        index: dict[str, int] = {}
        for ref in refs:
            if ref is None:
                raise ValueError("?-parameters need a sequence of values, not a mapping")
            if ref not in index:
                if ref not in params:
                    raise ValueError(f"no value for parameter :{ref}")
                index[ref] = len(args)
                args.append(params[ref])
            slots.append(index[ref])
    else:
        if any(ref is not None for ref in refs):
            raise ValueError(":named parameters need a mapping of values")
        if len(refs) != len(params):
            raise ValueError(f"statement has {len(refs)} parameters, got {len(params)} values")
        args = list(params)
        slots = list(range(len(args)))
    casts = tuple(_CASTS.get(type(value), "") for value in args)
    args = [int(value) if isinstance(value, bool) else value for value in args]
    return _render(sql, tuple(slots), casts), args


def _rowcount(status: str) -> int:
    """Rows changed, from a command status such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _decode_numeric(text: str) -> int | float:
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "numeric", schema="pg_catalog", encoder=str, decoder=_decode_numeric, format="text"
    )


def describe(url: str) -> str:
    """``host:port/database`` of a URL, without the user or password (safe to log)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path or '/'}"


_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _unavailable(url: str, exc: BaseException) -> StoreUnavailableError:
    """A connection failure as one clear error that names the server, never the password."""
    reason = f"{type(exc).__name__}: {exc}"
    password = urlsplit(url).password
    if password:
        reason = reason.replace(password, "***")
    return StoreUnavailableError(f"cannot connect to {describe(url)}: {reason}")


class _Connection:
    """Statements on one connection (inside a transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement and return how many rows it changed."""
        query, args = translate(sql, params)
        return _rowcount(await self._conn.execute(query, *args))

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Any]:
        """Run a query and return every row."""
        query, args = translate(sql, params)
        return list(await self._conn.fetch(query, *args))

    async def fetch_one(self, sql: str, params: Params = ()) -> Any | None:
        """Run a query and return its first row, or ``None``."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None


class PostgresDatabase:
    """A migrated PostgreSQL database behind an asyncpg pool.

    Open it with ``await PostgresDatabase.open(url)``; ``close()`` closes the pool.
    """

    def __init__(self, pool: asyncpg.Pool, url: str, schema_version: int) -> None:
        """Wrap an open pool; use ``PostgresDatabase.open`` instead."""
        self._pool = pool
        self.engine: Engine = "postgres"
        self.location = describe(url)
        self.schema_version = schema_version

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrations: Sequence[Migration] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> PostgresDatabase:
        """Connect, migrate to the latest schema and open a pool of ``pool_size``.

        ``migrations`` defaults to ``storage/postgres/migrations``. Raises
        ``SchemaTooNewError`` if the database was migrated by a newer version of the code.
        """
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if migrations is None:
            migrations = load_migrations(__package__ or "storage.postgres")
        else:
            check_numbering(migrations)
        try:
            conn = await asyncpg.connect(
                url, timeout=CONNECT_TIMEOUT_SECONDS, command_timeout=MIGRATION_TIMEOUT_SECONDS
            )
        except _CONNECT_ERRORS as exc:
            raise _unavailable(url, exc) from None
        try:
            version = await _migrate(conn, describe(url), migrations)
        finally:
            await conn.close()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
                init=_init_connection,
            )
        except _CONNECT_ERRORS as exc:
            raise _unavailable(url, exc) from None
        return cls(pool, url, version)

    async def close(self) -> None:
        """Wait for borrowed connections to come back, then close the pool."""
        await self._pool.close()

    async def __aenter__(self) -> PostgresDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def execute(self, sql: str, params: Params = (), *, lock: LockKey | None = None) -> int:
        """Run one statement in its own transaction (under ``lock``); return rows changed."""
        query, args = translate(sql, params)
        async with self._statement(lock) as conn:
            return _rowcount(await conn.execute(query, *args))

    async def fetch_all(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> list[Any]:
        """Run a query or ``RETURNING`` statement (under ``lock``); return every row."""
        query, args = translate(sql, params)
        async with self._statement(lock) as conn:
            return list(await conn.fetch(query, *args))

    async def fetch_one(
        self, sql: str, params: Params = (), *, lock: LockKey | None = None
    ) -> Any | None:
        """Run a query or ``RETURNING`` statement (under ``lock``); return its first row."""
        rows = await self.fetch_all(sql, params, lock=lock)
        return rows[0] if rows else None

    @asynccontextmanager
    async def transaction(self, *, lock: LockKey | None = None) -> AsyncIterator[_Connection]:
        """``BEGIN`` + advisory lock(s) ... ``COMMIT`` (``ROLLBACK`` if the block raises).

        Without ``lock`` the block excludes every other transaction and locked statement
        (SQLite's ``BEGIN IMMEDIATE``); with ``lock``, only unkeyed transactions and those
        holding the same key. The locks end with the transaction, however it ends.
        """
        async with (
            self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn,
            conn.transaction(),
        ):
            await _take_locks(conn, lock)
            yield _Connection(conn)

    async def run(self, program: Callable[[], Program[T]], *, lock: LockKey | None = None) -> T:
        """Run a transaction program (see ``storage.sql.database``) as one transaction
        under ``lock``: one pooled connection, rolled back if the program raises."""
        async with self.transaction(lock=lock) as tx:
            return await drive(program(), tx)

    @asynccontextmanager
    async def _statement(self, lock: LockKey | None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one statement: autocommit, or a locked transaction."""
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
            if lock is None:
                yield conn
                return
            async with conn.transaction():
                await _take_locks(conn, lock)
                yield conn


async def _take_locks(conn: asyncpg.Connection, lock: LockKey | None) -> None:
    """Unkeyed: the writer lock, exclusive. Keyed: the writer lock shared, then the key's.

    Always in that order (writer lock first), so two transactions cannot deadlock on them.
    """
    if lock is None:
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", _WRITER_LOCK)
    else:
        await conn.execute(
            "SELECT pg_advisory_xact_lock_shared($1::bigint), pg_advisory_xact_lock($2::bigint)",
            _WRITER_LOCK,
            lock_id(lock),
        )


async def _migrate(conn: asyncpg.Connection, where: str, migrations: Sequence[Migration]) -> int:
    """Apply every migration newer than the database, each in its own transaction."""
    supported = migrations[-1].version if migrations else 0
    await conn.execute("SELECT pg_advisory_lock($1::bigint)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = await _current_version(conn)
        if current > supported:
            raise SchemaTooNewError(
                where, current, supported, elsewhere="point DATABASE_URL at another database"
            )
        for migration in migrations[current:]:
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_version (version, name, applied_at)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        time.time(),
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed on {where}: {exc}"
                ) from exc
        return await _current_version(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1::bigint)", _MIGRATION_LOCK)


async def _current_version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
