"""The PostgreSQL engine's own parts: parameter translation, migrations, locks, errors.

The store contract itself runs on PostgreSQL through the parametrised ``engine`` fixture;
these tests cover what only this engine has.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from core.settings import BotSettings, SettingsError
from storage import (
    Migration,
    MigrationError,
    SchemaTooNewError,
    SQLStore,
    StoreUnavailableError,
    open_store,
    open_store_from_settings,
)
from storage.postgres import PostgresDatabase, describe, translate
from storage.postgres.database import lock_id
from storage.sqlite.database import load_migrations
from tests.storage.helpers import GUILD, USER, new_job


@pytest.fixture
def engine() -> str:
    """Only PostgreSQL here."""
    return "postgres"


# --- parameter translation (pure) ---------------------------------------------------


def test_named_parameters_become_numbered_and_typed() -> None:
    """Each name gets one $n (reused), cast to its value's type; bools travel as 0/1."""
    sql, args = translate(
        "UPDATE jobs SET a = :now, b = :now + :lease, c = :flag, d = :text, e = :none"
        " WHERE id = :id",
        {"now": 1.5, "lease": 30.0, "flag": True, "text": "x", "none": None, "id": 7, "extra": 1},
    )
    assert sql == (
        "UPDATE jobs SET a = $1::double precision, b = $1::double precision"
        " + $2::double precision, c = $3::bigint, d = $4::text, e = $5 WHERE id = $6::bigint"
    )
    assert args == [1.5, 30.0, 1, "x", None, 7]


def test_positional_parameters_and_literals() -> None:
    """? becomes $n in order; quoted text, comments and :: casts are left alone."""
    sql, args = translate(
        "SELECT ':no', \"a:b\", x::text -- :nope ?\n FROM t WHERE a = ? AND b = ?", (1, "s")
    )
    assert sql == (
        "SELECT ':no', \"a:b\", x::text -- :nope ?\n FROM t WHERE a = $1::bigint AND b = $2::text"
    )
    assert args == [1, "s"]


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("SELECT :a", {}, "no value for parameter :a"),
        ("SELECT ?, ?", (1,), "2 parameters, got 1"),
        ("SELECT :a, ?", {"a": 1}, "cannot mix"),
        ("SELECT :a", (1,), "need a mapping"),
    ],
)
def test_parameter_mistakes_are_refused(sql: str, params: object, message: str) -> None:
    """A missing value or mixed styles is an error, never a silently wrong statement."""
    with pytest.raises(ValueError, match=message):
        translate(sql, params)  # type: ignore[arg-type]


def test_lock_ids_are_stable_and_distinct() -> None:
    """The same key gives the same 64-bit id in every process; members differ."""
    assert lock_id(("member", 1, 2)) == lock_id(("member", 1, 2))
    assert lock_id(("member", 1, 2)) != lock_id(("member", 2, 1))
    assert -(2**63) <= lock_id(("member", 1, 2)) < 2**63


def test_urls_are_described_without_credentials() -> None:
    """Error messages name the server and database, never the user or password."""
    assert describe("postgresql://bot:s3cret@db.example:5433/hh") == (
        "postgresql://db.example:5433/hh"
    )


# --- migrations --------------------------------------------------------------------------


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return {row["table_name"] for row in rows}
    finally:
        await conn.close()


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        return [row["version"] for row in rows]
    finally:
        await conn.close()


async def test_migrations_apply_on_an_empty_database(pg_empty_database: str) -> None:
    """The schema mirrors SQLite's tables; the version table records each migration."""
    shipped = [m.version for m in load_migrations("storage.postgres")]
    db = await PostgresDatabase.open(pg_empty_database)
    await db.close()
    assert db.schema_version == shipped[-1]
    assert await _tables(pg_empty_database) == {
        "schema_version", "jobs", "guild_settings", "user_allowances", "usage_resets",
        "allowed_channels", "blocked_words", "audit_log", "role_allowances", "completion_times",
        "processes", "command_sync", "submit_gate", "queue_members", "queue_guilds",
    }  # fmt: skip
    assert await _versions(pg_empty_database) == shipped


async def test_postgres_schema_has_every_sqlite_column(pg_empty_database: str) -> None:
    """The engines' schemas stay in step: same tables, same columns (names)."""
    import sqlite3

    sqlite_db = sqlite3.connect(":memory:")
    for migration in load_migrations():
        for statement in migration.statements():
            sqlite_db.execute(statement)
    expected = {
        (table, column)
        for (table,) in sqlite_db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        for (_, column, *_) in sqlite_db.execute(f"PRAGMA table_info({table})").fetchall()
    }
    await (await PostgresDatabase.open(pg_empty_database)).close()
    conn = await asyncpg.connect(pg_empty_database)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'schema_version'"
        )
    finally:
        await conn.close()
    assert {(row["table_name"], row["column_name"]) for row in rows} == expected


async def test_concurrent_first_opens_migrate_once(pg_empty_database: str) -> None:
    """Four processes' worth of first opens at once: each migration is applied once."""
    shipped = [m.version for m in load_migrations("storage.postgres")]
    opened = await asyncio.gather(*(PostgresDatabase.open(pg_empty_database) for _ in range(4)))
    for db in opened:
        assert db.schema_version == shipped[-1]
        await db.close()
    assert await _versions(pg_empty_database) == shipped


async def test_reopen_is_a_no_op(pg_database: str) -> None:
    """Opening a migrated database applies nothing and keeps the data."""
    store = await open_store(pg_database, default_daily_credits=3)
    await store.credits.reserve(new_job())
    await store.close()
    store = await open_store(pg_database, default_daily_credits=3)
    try:
        assert (await store.credits.balance(GUILD, USER)).used == 1
    finally:
        await store.close()
    assert await _versions(pg_database) == [m.version for m in load_migrations("storage.postgres")]


async def test_newer_schema_is_refused(pg_database: str) -> None:
    """A database migrated by newer code is refused, naming DATABASE_URL, not the password."""
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 0)"
        )
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNewError, match="DATABASE_URL") as caught:
        await PostgresDatabase.open(pg_database)
    latest = load_migrations("storage.postgres")[-1].version
    assert caught.value.found == 99 and caught.value.supported == latest


async def test_failed_migration_rolls_back_and_names_itself(pg_empty_database: str) -> None:
    """A failing migration leaves nothing half-applied; fixed, it applies next time."""
    first = Migration(1, "first", "CREATE TABLE a (x INTEGER);")
    broken = Migration(2, "broken", "CREATE TABLE b (x INTEGER); SELECT no_such_function();")
    with pytest.raises(MigrationError, match="0002_broken"):
        await PostgresDatabase.open(pg_empty_database, migrations=[first, broken])
    assert await _tables(pg_empty_database) == {"schema_version", "a"}
    fixed = Migration(2, "broken", "CREATE TABLE b (x INTEGER);")
    db = await PostgresDatabase.open(pg_empty_database, migrations=[first, fixed])
    await db.close()
    assert await _tables(pg_empty_database) == {"schema_version", "a", "b"}


# --- transactions and locks ----------------------------------------------------------


async def test_transaction_rolls_back_on_error(pg_database: str) -> None:
    """An exception inside the block undoes its statements."""
    db = await PostgresDatabase.open(pg_database)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            async with db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO guild_settings (guild_id, updated_at) VALUES (:g, :t)",
                    {"g": GUILD, "t": 0.0},
                )
                raise RuntimeError("boom")
        assert await db.fetch_all("SELECT * FROM guild_settings") == []
    finally:
        await db.close()


async def test_keyed_transactions_exclude_the_same_key_only(pg_database: str) -> None:
    """While one member's lock is held, another member's transaction still runs."""
    db = await PostgresDatabase.open(pg_database)
    try:
        held = asyncio.Event()
        release = asyncio.Event()

        async def hold(key: tuple[str | int, ...]) -> None:
            async with db.transaction(lock=key):
                held.set()
                await release.wait()

        holder = asyncio.create_task(hold(("member", 1, 1)))
        await held.wait()
        # A different member is not blocked by the held lock ...
        async with db.transaction(lock=("member", 1, 2)) as tx:
            assert await tx.fetch_one("SELECT 1 AS one") is not None
        # ... the same member is, until the holder commits.
        same = asyncio.create_task(_in_transaction(db, ("member", 1, 1)))
        while await _advisory_waiters(db) == 0:
            await asyncio.sleep(0.01)
        assert not same.done()
        release.set()
        await holder
        await same
    finally:
        await db.close()


async def test_unkeyed_transaction_excludes_locked_statements(pg_database: str) -> None:
    """A moderator's transaction (unkeyed) holds off every member's locked statement."""
    db = await PostgresDatabase.open(pg_database)
    try:
        held = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with db.transaction():
                held.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await held.wait()
        locked = asyncio.create_task(db.fetch_one("SELECT 1 AS one", lock=("member", 3, 4)))
        while await _advisory_waiters(db) == 0:
            await asyncio.sleep(0.01)
        assert not locked.done()
        # An unlocked statement is not held up.
        assert await db.fetch_one("SELECT 1 AS one") is not None
        release.set()
        await holder
        assert (await locked)["one"] == 1
    finally:
        await db.close()


async def _advisory_waiters(db: PostgresDatabase) -> int:
    row = await db.fetch_one(
        "SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    assert row is not None
    return int(row["n"])


async def _in_transaction(db: PostgresDatabase, key: tuple[str | int, ...]) -> None:
    async with db.transaction(lock=key) as tx:
        await tx.fetch_one("SELECT 1 AS one")


async def test_sums_come_back_as_int(store: SQLStore) -> None:
    """SUM over BIGINT is numeric on PostgreSQL; rows still carry ints, as on SQLite."""
    row = await store.database.fetch_one(
        "SELECT SUM(guild_id) AS total, SUM(0.5) AS half FROM (SELECT :g AS guild_id) AS t",
        {"g": GUILD},
    )
    assert row is not None
    assert row["total"] == GUILD and type(row["total"]) is int
    assert row["half"] == 0.5


# --- opening from settings and errors -------------------------------------------------


async def test_database_url_selects_postgres(pg_database: str) -> None:
    """DATABASE_URL wins over DATABASE_PATH; without it the SQLite file is used."""
    settings = BotSettings.from_env({"DISCORD_TOKEN": "t", "DATABASE_URL": pg_database})
    assert settings.database_url == pg_database
    assert pg_database not in repr(settings)
    store = await open_store_from_settings(settings)
    try:
        assert isinstance(store.database, PostgresDatabase)
        assert store.database.engine == "postgres"
    finally:
        await store.close()


async def test_without_database_url_the_sqlite_file_is_used(tmp_path: Path) -> None:
    """DATABASE_PATH stays the default engine."""
    path = tmp_path / "bot.sqlite3"
    settings = BotSettings.from_env({"DISCORD_TOKEN": "t", "DATABASE_PATH": str(path)})
    store = await open_store_from_settings(settings)
    try:
        assert store.database.engine == "sqlite"
        assert path.exists()
    finally:
        await store.close()


def test_database_url_must_be_postgres() -> None:
    """A URL of another scheme is refused with what is allowed."""
    with pytest.raises(SettingsError, match="DATABASE_URL must be a PostgreSQL URL"):
        BotSettings.from_env({"DISCORD_TOKEN": "t", "DATABASE_URL": "mysql://x/y"})


async def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    """Nothing listening: StoreUnavailableError naming host and database, not credentials."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailableError) as caught:
        await open_store(f"postgresql://bot:hunter2@127.0.0.1:{port}/hh", default_daily_credits=1)
    assert f"127.0.0.1:{port}/hh" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_wrong_password_and_missing_database_are_clear_errors(pg_cluster: object) -> None:
    """A server that refuses us: the reason is given, the password is not."""
    from tests.pg_cluster import TempCluster

    assert isinstance(pg_cluster, TempCluster)
    url = pg_cluster.url("no_such_database").replace("postgres@", "postgres:hunter2@")
    with pytest.raises(StoreUnavailableError, match="no_such_database") as caught:
        await open_store(url, default_daily_credits=1)
    assert "hunter2" not in str(caught.value)
