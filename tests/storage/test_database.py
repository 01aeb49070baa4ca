"""Database opening: folder creation, pragmas, numbered migrations, refusing newer files."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage import Database, Migration, MigrationError, SchemaTooNewError, load_migrations
from storage.sqlite.database import DEFAULT_DATABASE_PATH


@pytest.fixture
def engine() -> str:
    """These tests look inside the SQLite file; PostgreSQL's are in test_postgres.py."""
    return "sqlite"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    return [version for (version,) in rows]


async def test_default_path_is_under_data() -> None:
    """The default DATABASE_PATH is data/happyhorse.sqlite3."""
    assert Path("data/happyhorse.sqlite3") == DEFAULT_DATABASE_PATH


async def test_migrations_apply_on_empty_file(db_path: Path) -> None:
    """Opening a path that does not exist creates its folder, the file and the schema."""
    assert not db_path.parent.exists()
    db = await Database.open(db_path)
    await db.close()
    latest = load_migrations()[-1].version
    assert db.schema_version == latest
    assert versions(db_path) == list(range(1, latest + 1))
    assert {"jobs", "guild_settings", "user_allowances", "audit_log"} <= tables(db_path)


async def test_migrations_rerun_is_a_no_op(db_path: Path) -> None:
    """Opening an up-to-date file again applies nothing and keeps the data."""
    db = await Database.open(db_path)
    await db.execute(
        "INSERT INTO guild_settings (guild_id, default_credits, updated_at) VALUES (1, 7, 0)"
    )
    await db.close()
    with sqlite3.connect(db_path) as conn:
        applied_before = conn.execute("SELECT * FROM schema_version").fetchall()
    db = await Database.open(db_path)
    row = await db.fetch_one("SELECT default_credits FROM guild_settings WHERE guild_id = 1")
    await db.close()
    assert row is not None and row[0] == 7
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT * FROM schema_version").fetchall() == applied_before


async def test_newer_schema_is_refused_unchanged(db_path: Path) -> None:
    """A file with a schema version above the code's is refused and left untouched."""
    db = await Database.open(db_path)
    await db.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 0)"
    )
    await db.close()
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNewError) as caught:
        await Database.open(db_path)
    assert caught.value.found == 99
    assert caught.value.supported == load_migrations()[-1].version
    assert "newer" in str(caught.value) or "only knows" in str(caught.value)
    assert "DATABASE_PATH" in str(caught.value)
    assert versions(db_path)[-1] == 99
    assert db_path.read_bytes() == before


async def test_migrations_apply_in_order_each_in_a_transaction(db_path: Path) -> None:
    """Later migrations apply on top of earlier ones; a failing one is rolled back whole."""
    first = Migration(1, "first", "CREATE TABLE a (x INTEGER);")
    broken = Migration(
        2, "broken", "CREATE TABLE b (x INTEGER);\nINSERT INTO missing_table VALUES (1);"
    )
    with pytest.raises(MigrationError, match="0002_broken"):
        await Database.open(db_path, migrations=[first, broken])
    assert versions(db_path) == [1]
    assert "a" in tables(db_path) and "b" not in tables(db_path)

    fixed = Migration(2, "fixed", "CREATE TABLE b (x INTEGER);\nINSERT INTO a VALUES (1);")
    db = await Database.open(db_path, migrations=[first, fixed])
    await db.close()
    assert db.schema_version == 2
    assert versions(db_path) == [1, 2]
    assert "b" in tables(db_path)


async def test_migration_numbering_gaps_are_refused(db_path: Path) -> None:
    """Migrations numbered with a gap are a programming error, caught before any change."""
    with pytest.raises(MigrationError, match="without gaps"):
        await Database.open(
            db_path, migrations=[Migration(1, "a", "SELECT 1;"), Migration(3, "c", "SELECT 1;")]
        )


async def test_statement_splitting_handles_semicolons_in_strings() -> None:
    """Statements split on complete statements, not on every semicolon."""
    migration = Migration(
        1, "x", "-- comment; here\nINSERT INTO t VALUES ('a;b');\n\nCREATE TABLE u (x);\n"
    )
    assert migration.statements() == ["INSERT INTO t VALUES ('a;b');", "CREATE TABLE u (x);"]


async def test_pragmas_and_reopen_keeps_wal(db_path: Path) -> None:
    """WAL, foreign keys and the busy timeout are on, and WAL survives a reopen."""
    for _ in range(2):
        db = await Database.open(db_path)
        try:
            journal = await db.fetch_one("PRAGMA journal_mode")
            foreign_keys = await db.fetch_one("PRAGMA foreign_keys")
            busy = await db.fetch_one("PRAGMA busy_timeout")
            synchronous = await db.fetch_one("PRAGMA synchronous")
        finally:
            await db.close()
        assert journal is not None and journal[0] == "wal"
        assert foreign_keys is not None and foreign_keys[0] == 1
        assert busy is not None and busy[0] >= 1000
        assert synchronous is not None and synchronous[0] == 2  # FULL
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_foreign_keys_are_enforced(db_path: Path) -> None:
    """A row pointing at a guild that does not exist is rejected."""
    db = await Database.open(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            await db.execute("INSERT INTO allowed_channels (guild_id, channel_id) VALUES (1, 2)")
    finally:
        await db.close()


async def test_transaction_rolls_back_on_error(db_path: Path) -> None:
    """A block that raises leaves nothing behind."""
    db = await Database.open(db_path)
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO guild_settings (guild_id, updated_at) VALUES (5, 0)")
                raise RuntimeError("abort")
        assert await db.fetch_one("SELECT * FROM guild_settings WHERE guild_id = 5") is None
    finally:
        await db.close()


async def test_statements_sent_together_commit_together_but_fail_alone(db_path: Path) -> None:
    """Statements queued at once share one commit; one that fails is undone alone and its
    caller gets the error, the others are committed and answered."""
    db = await Database.open(db_path)
    try:
        results = await asyncio.gather(
            db.execute("INSERT INTO guild_settings (guild_id, updated_at) VALUES (1, 0)"),
            db.execute("INSERT INTO allowed_channels (guild_id, channel_id) VALUES (99, 2)"),
            db.execute("INSERT INTO guild_settings (guild_id, updated_at) VALUES (2, 0)"),
            db.fetch_all("SELECT guild_id FROM guild_settings ORDER BY guild_id"),
            return_exceptions=True,
        )
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert [row["guild_id"] for row in results[3]] == [1, 2]  # type: ignore[index]
    finally:
        await db.close()
    assert {
        row for row in sqlite3.connect(db_path).execute("SELECT guild_id FROM guild_settings")
    } == {(1,), (2,)}


def test_storage_imports_neither_discord_nor_happyhorse() -> None:
    """The storage package stays Discord-free and API-free."""
    code = (
        "import sys, storage, storage.sqlite, storage.store\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('discord', 'happyhorse')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


async def test_concurrent_first_opens_migrate_once(db_path: Path) -> None:
    """Several connections opening a new file at once apply each migration exactly once."""
    opened = await asyncio.gather(*(Database.open(db_path) for _ in range(4)))
    for db in opened:
        await db.close()
    latest = load_migrations()[-1].version
    assert {db.schema_version for db in opened} == {latest}
    assert versions(db_path) == list(range(1, latest + 1))


async def test_many_concurrent_first_opens_never_report_locked(tmp_path: Path) -> None:
    """Many connections racing to create and switch a new file to WAL all open it."""
    for round_number in range(15):
        path = tmp_path / f"race{round_number}.sqlite3"
        opened = await asyncio.gather(*(Database.open(path) for _ in range(8)))
        for db in opened:
            await db.close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert versions(path) == list(range(1, load_migrations()[-1].version + 1))
